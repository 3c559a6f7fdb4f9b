"""Mixed clusters (issue 19): nodes of another device kind, placed per plan."""

from __future__ import annotations

import pytest

from simwall import simulate
from simwall.cli.main import main
from simwall.costing import stage_cost
from simwall.engine.prepare import prepare
from simwall.errors import ConfigError
from simwall.hardware.catalog import get_device

MIXED = {"cluster.nodes": 4, "plan.tp": 8, "plan.pp": 1, "training.global_batch": 64,
         "cluster.mixed": [{"nodes": [2], "device": "A100-SXM4-80GB"}]}
SAME = {k: v for k, v in MIXED.items() if k != "cluster.mixed"}


def test_an_older_node_paces_its_replica_and_is_named(capsys):
    mixed = simulate("llama2-7b", "dgx-h100", **MIXED)
    fast = simulate("llama2-7b", "dgx-h100", **SAME)
    assert mixed.engine["mode"] == "per-device"
    assert mixed.step_time_s > 1.5 * fast.step_time_s          # A100: ~1/3 of H100 FLOP/s
    assert mixed.critical["replica"] == 2                       # TP 8: replica r = node r
    assert mixed.critical["device_kind"] == "A100-SXM4-80GB"
    assert mixed.critical["nodes"] == [2]
    # The per-device engine's pace: the A100 replica's compute, whatever the others do.
    prep = prepare("llama2-7b", "dgx-h100", MIXED)
    a100 = stage_cost(prep.workload.model, prep.workload.training, prep.plan,
                      get_device("A100-SXM4-80GB"), prep.topology, 0)
    per_mb = sum(c.fwd_compute_s + c.bwd_compute_s for c in a100.chunks)
    assert mixed.step_time_s >= prep.plan.micro_batches * per_mb
    assert main(["run", "llama2-7b", "--cluster", "dgx-h100", "--set", "cluster.nodes=4",
                 "--set", "plan.tp=8", "--set", "plan.pp=1", "--set",
                 "training.global_batch=64", "--set",
                 "cluster.mixed=[{nodes: [2], device: A100-SXM4-80GB}]"]) == 0
    assert "paced by node(s) 2 of A100-SXM4-80GB" in capsys.readouterr().out


def test_a_smaller_device_bounds_the_capacity():
    mixed = simulate("llama2-7b", "dgx-h100", **{
        **MIXED, "cluster.mixed": [{"nodes": [1], "device": "A100-SXM4-40GB"}]})
    assert mixed.memory["capacity_bytes"] == get_device("A100-SXM4-40GB").memory_capacity_bytes


@pytest.mark.parametrize("mixed, key", [
    ([{"nodes": [9], "device": "A100-SXM4-80GB"}], "mixed[0].nodes[0]"),
    ([{"nodes": [1], "device": "A100-SXM4-80GB"},
      {"nodes": [1], "device": "H200-SXM-141GB"}], "mixed[1].nodes[0]"),
    ([{"nodes": [1], "device": "A999"}], "mixed[0].device"),
])
def test_bad_mixed_nodes_are_refused(mixed, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        simulate("llama2-7b", "dgx-h100", **{**MIXED, "cluster.mixed": mixed})
