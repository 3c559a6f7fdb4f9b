"""Tests of simwall.plan: resolution of dp/nodes, validity checks, layer split, placement."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.config import ClusterSpec, bundled_names, load_cluster, load_workload
from simwall.errors import ConfigError
from simwall.plan import Plan, balanced_split, cluster_devices, resolve

AUTO = ClusterSpec(name="auto-8", nodes="auto", devices_per_node=8)


def fixed(nodes: int, per_node: int = 8) -> ClusterSpec:
    return ClusterSpec(name=f"fixed-{nodes}", nodes=nodes, devices_per_node=per_node)


def error_of(workload, cluster) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        resolve(workload, cluster)
    return info.value


def test_gpt3_resolves_like_the_paper():
    plan, cluster = resolve(load_workload("gpt3-175b"), load_cluster("dgx-a100"))
    assert (plan.tp, plan.pp, plan.dp, plan.world) == (8, 8, 24, 1536)
    assert cluster.nodes == 192 and plan.micro_batches == 64
    assert plan.stage_layers == (12,) * 8 and plan.sequence_parallel


@pytest.mark.parametrize("name", bundled_names("workload"))
def test_every_bundled_workload_resolves(name):
    w = load_workload(name)
    plan, _ = resolve(w, ClusterSpec(name="like-default", nodes="auto", devices_per_node=8))
    assert plan.world == w.defaults.devices
    assert sum(plan.stage_layers) == w.model.layers
    assert plan.micro_batches * plan.dp * plan.micro_batch == w.training.global_batch
    if w.defaults.cluster in bundled_names("cluster"):  # the clusters are another module's
        plan2, cluster = resolve(w, load_cluster(w.defaults.cluster))
        assert plan2.world == cluster.nodes * cluster.devices_per_node


def test_llama3_405b_split_matches_the_paper():
    """Dubey et al. 2024 Sec. 3.3.2: 126 layers on 16 stages, one fewer on first and last."""
    plan, _ = resolve(load_workload("llama3-405b"), AUTO)
    assert plan.stage_layers == (7,) + (8,) * 14 + (7,)
    assert balanced_split(126, 16) == plan.stage_layers


@settings(deadline=None, derandomize=True, max_examples=80)
@given(layers=st.integers(1, 300), chunks=st.integers(1, 64))
def test_balanced_split_properties(layers, chunks):
    if layers < chunks:
        return
    split = balanced_split(layers, chunks)
    assert len(split) == chunks and sum(split) == layers
    assert max(split) - min(split) <= 1
    if chunks > 2 and max(split) != min(split):
        # The ends (embedding, LM head) never carry more than the middle.
        assert split[0] <= min(split[1:-1]) or split[0] == min(split)
        assert split[-1] == min(split) or split[-1] <= max(split[1:-1])


@settings(deadline=None, derandomize=True, max_examples=40)
@given(stage=st.integers(0, 7), dp_rank=st.integers(0, 23), tp_rank=st.integers(0, 7))
def test_device_order_is_tp_fastest_then_dp_then_pp(stage, dp_rank, tp_rank):
    plan, _ = resolve(load_workload("gpt3-175b"), AUTO)
    dev = plan.device_of(stage, dp_rank, tp_rank)
    assert divmod(dev, plan.tp) == (stage * plan.dp + dp_rank, tp_rank)
    assert 0 <= dev < plan.world


def test_interleaved_chunks_round_robin():
    w = load_workload("gpt3-175b", [("plan.schedule", "interleaved"), ("plan.virtual_stages", 2)])
    plan, _ = resolve(w, AUTO)
    assert plan.chunks == 16 and plan.chunk_layers(0) == (6, 6)
    assert plan.layers_on_stage(3) == 12


@pytest.mark.parametrize("overrides, key, pattern", [
    ([("plan.tp", 7)], "plan.tp", "must divide model.heads (96), got 7"),
    ([("plan.tp", 12)], "plan.tp", "span whole nodes"),
    ([("plan.pp", 100)], "plan.pp", "must be at least plan.pp x plan.virtual_stages"),
    ([("plan.virtual_stages", 2)], "plan.virtual_stages", "unless plan.schedule is interleaved"),
    ([("plan.stage_layers", [12] * 7)], "plan.stage_layers", "must list 8 entries"),
    ([("plan.stage_layers", [10] * 8)], "plan.stage_layers", "must sum to model.layers (96), got 80"),
    ([("plan.stage_layers", [0, 24] + [12] * 6)], "plan.stage_layers", "at least 1 layer"),
    ([("training.global_batch", 1537)], "training.global_batch", "must be divisible by plan.dp"),
    ([("plan.dp", 3)], "plan.dp", "= 192 must equal the cluster's 1536 devices"),
    ([("defaults.devices", 100)], "defaults.devices", "must be a multiple of plan.tp x plan.pp"),
    ([("plan.schedule", "interleaved"), ("plan.pp", 1)], "plan.schedule", "needs plan.pp > 1"),
])
def test_plan_errors_name_the_key(overrides, key, pattern):
    err = error_of(load_workload("gpt3-175b", overrides), AUTO)
    assert err.key == key and pattern in err.message, str(err)
    assert err.source == "workloads/gpt3-175b.yaml" and "\n" not in str(err)


def test_plan_errors_carry_the_file_line(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text("name: t\nmodel: {layers: 4, hidden: 64, heads: 4, vocab: 10, seq_len: 8}\n"
                    "training: {global_batch: 8}\nplan:\n  tp: 3\n")
    err = error_of(load_workload(str(path)), AUTO)
    assert str(err) == f"{path}:5: plan.tp: must divide model.heads (4), got 3"


def test_fixed_cluster_world_must_match():
    w = load_workload("gpt3-175b", [("plan.dp", 2)])
    err = error_of(w, fixed(4))
    assert "must equal the cluster's 32 devices" in err.message
    w = load_workload("gpt3-175b", [("defaults.devices", None)])
    err = error_of(w, fixed(3))  # 24 devices, tp x pp = 64
    assert err.key == "nodes" and "not divisible by plan.tp x plan.pp = 64" in err.message


def test_nodes_auto_sizing():
    w = load_workload("gpt3-175b", [("defaults.devices", None)])
    assert cluster_devices(AUTO, w) == 64  # one replica
    w = load_workload("gpt3-175b", [("defaults.devices", None), ("plan.dp", 3)])
    assert cluster_devices(AUTO, w) == 192
    assert cluster_devices(fixed(5), w) == 40
    _, cluster = resolve(load_workload("gpt3-175b"), load_cluster("dgx-a100", [("nodes", "auto")]))
    assert cluster.nodes == 192 and cluster.file == "topologies/dgx-a100.yaml"


def test_set_overrides_reach_the_plan():
    plan, cluster = resolve(load_workload("gpt3-175b", [("plan.tp", 4)]),
                            load_cluster("dgx-a100", [("nodes", 64)]))
    assert (plan.tp, plan.dp, plan.world, cluster.nodes) == (4, 16, 512, 64)


def test_plan_is_frozen_and_serialisable():
    plan, _ = resolve(load_workload("gpt3-175b"), AUTO)
    assert isinstance(plan, Plan)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.tp = 2  # type: ignore[misc]
    d = plan.as_dict()
    assert d["world"] == 1536 and d["stage_layers"] == [12] * 8


def test_a_set_device_count_the_cluster_would_not_honour_is_refused():
    # Without --set the cluster decides (gpt3-175b names 1536 devices; single-node has 8).
    assert cluster_devices(load_cluster("single-node"), load_workload("gpt3-175b")) == 8
    wl = load_workload("gpt2", [("defaults.devices", 16)])
    with pytest.raises(ConfigError, match=r"defaults.devices: 16 \(from --set\) is not "
                                          r"used: cluster single-node has a fixed 8"):
        cluster_devices(load_cluster("single-node"), wl)
    # nodes: auto rounds up to whole nodes (the rest idle, as on NVL72 racks).
    assert cluster_devices(load_cluster("dgx-a100"),
                           load_workload("gpt2", [("defaults.devices", 12)])) == 16
    assert cluster_devices(load_cluster("dgx-a100"),
                           load_workload("gpt2", [("defaults.devices", 16)])) == 16
