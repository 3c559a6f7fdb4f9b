"""Tests of simwall.config.overrides: ``--set`` items -> override dict -> (workload, cluster)."""

from __future__ import annotations

import pytest

from simwall.config import cluster_overrides, set_overrides, split_key_overrides
from simwall.config.overrides import python_value
from simwall.errors import ConfigError


def test_set_items_become_the_override_dict_with_yaml_values():
    over = set_overrides(["plan.tp=4", "cluster.nodes=2", "plan.dp=auto",
                          "cluster.device.memory_bandwidth=4e12", "model.name="])
    assert over == {"plan.tp": 4, "cluster.nodes": 2, "plan.dp": "auto",
                    "cluster.device.memory_bandwidth": 4e12, "model.name": ""}


def test_a_key_set_twice_keeps_its_last_value_where_it_was_last_written():
    over = set_overrides(["cluster.device.memory_bandwidth=1e12", "cluster.device=H100-SXM5-80GB",
                          "cluster.device.memory_bandwidth=2e12"])
    assert list(over.items()) == [("cluster.device", "H100-SXM5-80GB"),
                                  ("cluster.device.memory_bandwidth", 2e12)]


@pytest.mark.parametrize("item", ["plan.tp", "=3", "plan..tp=3", ".tp=1"])
def test_bad_set_syntax_names_set(item):
    with pytest.raises(ConfigError, match="--set"):
        set_overrides([item])


def test_split_routes_cluster_keys_and_drops_the_prefix():
    wl, cl = split_key_overrides({"plan.tp": 4, "cluster.nodes": 2, "training.micro_batch": 1,
                                  "cluster.device.memory_bandwidth": 4e12, "cluster": "x"})
    assert wl == [("plan.tp", 4), ("training.micro_batch", 1), ("cluster", "x")]
    assert cl == [("nodes", 2), ("device.memory_bandwidth", 4e12)]


def test_set_items_split_between_workload_and_cluster():
    """The CLI's path: items -> dict -> (workload, cluster), each in the order written."""
    items = ["plan.tp=4", "cluster.nodes=2", "cluster.device.memory_bandwidth=4e12",
             "training.micro_batch=2"]
    assert split_key_overrides(set_overrides(items)) == (
        [("plan.tp", 4), ("training.micro_batch", 2)],
        [("nodes", 2), ("device.memory_bandwidth", 4e12)])


def test_cluster_overrides_take_the_prefix_as_optional():
    assert cluster_overrides({"nodes": 2, "cluster.intra.link": "NVLink4"}) == \
        [("nodes", 2), ("intra.link", "NVLink4")]


def test_numpy_values_are_taken_as_the_python_values_they_hold():
    import numpy as np

    import simwall

    plain = simwall.simulate("gpt2", "single-node", **{"plan.pp": 2,
                                                       "plan.sequence_parallel": False})
    from_numpy = simwall.simulate("gpt2", "single-node", **{
        "plan.pp": np.int64(2), "plan.sequence_parallel": np.bool_(False)})
    assert from_numpy.to_json() == plain.to_json()
    assert python_value(np.array([24, 24])) == [24, 24]
    assert type(python_value(np.float64(3e12))) is float


def test_a_workload_or_cluster_argument_of_the_wrong_kind_is_named():
    import simwall

    with pytest.raises(ConfigError, match=r"cluster: expected a bundled name, a YAML path "
                                          r"or a ClusterSpec, got dict \(overrides go as "
                                          r"keyword arguments"):
        simwall.simulate("gpt2", {"plan.tp": 2})
    with pytest.raises(ConfigError, match="workload: .* got NoneType"):
        simwall.simulate(None, "single-node")


def test_a_key_without_its_section_is_told_its_section():
    import simwall

    for key, meant in (("tp", "plan.tp"), ("micro_batch", "training.micro_batch"),
                       ("nodes", "cluster.nodes")):
        with pytest.raises(ConfigError, match=f"{key}: unknown key; did you mean '{meant}'"):
            simwall.simulate("gpt2", "single-node", **{key: 2})
