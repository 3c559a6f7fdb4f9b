"""plan.dp_shard (hybrid sharding, issue 15's framework semantics): ZeRO shards the model
states over a shard group of DP x CP ranks and replicates them across the groups; the
gradients are reduce-scattered inside the group, then all-reduced across the replicas."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall import simulate
from simwall.api import prepare
from simwall.config import PRECISION_BYTES
from simwall.costing.dp import bucket_cost
from simwall.costing.groups import replica_groups, shard_groups
from simwall.costing.traffic import run_collective
from simwall.costing.zero import units_per_layer, zero3_cost
from simwall.errors import ConfigError
from simwall.model import memory
from simwall.plan.frameworks import frameworks_for

# Llama 2 7B under FSDP on two DGX A100 nodes (16 GPUs, DP 16).
FSDP = {"plan.tp": 1, "plan.pp": 1, "plan.zero": 3, "plan.framework": "fsdp",
        "plan.sequence_parallel": False, "cluster.nodes": 2, "training.micro_batch": 1,
        "training.global_batch": 32, "model.attention": "flash", "plan.recompute": "none"}


def _prep(**over):
    return prepare("llama2-7b", "dgx-a100", {**FSDP, **over})


def test_full_sharding_spelled_out_is_the_default_plan():
    default = simulate("llama2-7b", "dgx-a100", **FSDP)
    spelled = simulate("llama2-7b", "dgx-a100", **FSDP, **{"plan.dp_shard": 16})
    assert spelled.plan["dp_shard"] == default.plan["dp_shard"] == 16
    assert spelled.to_record() == default.to_record()


def test_groups_are_nodes_and_their_replicas():
    plan = _prep(**{"plan.dp_shard": 8}).plan
    assert plan.shard == 8 and plan.dp_cp // plan.shard == 2
    assert shard_groups(plan, 0) == [list(range(8)), list(range(8, 16))]
    assert replica_groups(plan, 0) == [[i, i + 8] for i in range(8)]


def test_states_divide_by_the_shard_group():
    full = _prep().plan
    hybrid = _prep(**{"plan.dp_shard": 8}).plan
    wl = _prep().workload
    s_full = memory.device_memory(wl.model, wl.training, full)[0]
    s_hyb = memory.device_memory(wl.model, wl.training, hybrid)[0]
    for key in ("params_bytes", "grads_bytes", "optimizer_bytes"):
        assert getattr(s_hyb, key) == pytest.approx(2 * getattr(s_full, key))


def test_zero3_reduces_inside_the_group_then_across_replicas():
    prep = _prep(**{"plan.dp_shard": 8})
    wl, plan, topo = prep.workload, prep.plan, prep.topology
    z3 = zero3_cost(wl.model, wl.training, plan, topo, 0, symmetric=False)
    kinds = [(t.kind, {len(g) for g in t.groups}) for t in z3.traffic]
    assert kinds == [("all_gather", {8}), ("reduce_scatter", {8}), ("all_reduce", {2})]
    # By hand: the unit's reduce-scatter in the shard groups, then its 1/8 across replicas.
    k = units_per_layer(wl.model, plan)
    grad = (memory.layer_params(wl.model, plan.tp)
            * PRECISION_BYTES[wl.training.grad_reduce_precision_] / k)
    count = plan.micro_batches * plan.layers_on_stage(0) * k
    rs = run_collective(topo, "reduce_scatter", shard_groups(plan, 0), grad, count,
                        plan.collective, False)
    ar = run_collective(topo, "all_reduce", replica_groups(plan, 0), grad / 8, count,
                        plan.collective, False)
    assert z3.reduce_scatter_s == pytest.approx(rs.s + ar.s, rel=1e-12)
    assert z3.traffic[2].bytes_ == pytest.approx(grad / 8)


def test_zero1_bucket_is_reduce_scatter_then_all_reduce_of_its_shard():
    over = {**FSDP, "plan.zero": 1, "plan.framework": "megatron", "plan.dp_shard": 8}
    prep = prepare("llama2-7b", "dgx-a100", over)
    plan, topo = prep.plan, prep.topology
    assert "megatron" in frameworks_for(plan)
    cost = bucket_cost(plan, topo, 0, 4 * plan.dp_bucket_bytes, symmetric=False)
    size = plan.dp_bucket_bytes
    rs = run_collective(topo, "reduce_scatter", shard_groups(plan, 0), size, 4,
                        plan.collective, False)
    ar = run_collective(topo, "all_reduce", replica_groups(plan, 0), size / 8, 4,
                        plan.collective, False)
    assert cost.bucket_s == pytest.approx((rs.s + ar.s,) * 4, rel=1e-12)


def test_gathers_inside_a_node_beat_a_slow_network():
    slow = {"cluster.inter.link": "RoCE-400G", "cluster.inter.nics_per_node": 1}
    z3 = {}
    for shard in (16, 8):
        prep = _prep(**slow, **{"plan.dp_shard": shard})
        z3[shard] = zero3_cost(prep.workload.model, prep.workload.training, prep.plan,
                               prep.topology, 0, symmetric=True)
    assert z3[8].gather_s < z3[16].gather_s / 4     # NVLink against one NIC per node


@settings(max_examples=8, deadline=None)
@given(zero=st.sampled_from([1, 2, 3]), small=st.sampled_from([2, 4, 8]))
def test_a_smaller_shard_group_never_holds_less(zero, small):
    framework = "megatron" if zero == 1 else "fsdp"
    peaks = []
    for shard in (small, 16):
        r = simulate("llama2-7b", "dgx-a100", **{**FSDP, "plan.zero": zero,
                                                 "plan.framework": framework,
                                                 "plan.dp_shard": shard})
        peaks.append(r.memory["peak_bytes"])
    assert peaks[0] >= peaks[1]


def test_deepspeed_does_not_run_hybrid_sharding():
    plan = _prep(**{"plan.dp_shard": 8}).plan
    assert "deepspeed" not in frameworks_for(plan)
    assert {"fsdp", "fsdp2"} <= set(frameworks_for(plan))


@pytest.mark.parametrize("over,expected", [
    ({"plan.dp_shard": 3}, "plan.dp_shard: must divide plan.dp x plan.cp (16), got 3"),
    ({"plan.dp_shard": 1}, "plan.dp_shard: 1 shards nothing"),
    ({"plan.dp_shard": 8, "plan.zero": 0}, "needs plan.zero >= 1"),
    ({"plan.dp_shard": 8, "plan.offload": "optimizer"}, "with offload is not modelled"),
])
def test_bad_shard_groups_name_the_key(over, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        _prep(**over)


def test_hybrid_with_experts_is_refused():
    with pytest.raises(ConfigError, match="plan.dp_shard: hybrid sharding with expert"):
        prepare("mixtral-8x7b", None, {"plan.dp_shard": 2})


@pytest.mark.parametrize("zero,framework", [(3, "fsdp"), (2, "fsdp"), (1, "megatron")])
def test_per_device_run_agrees_with_the_symmetric_one(zero, framework):
    # Per-device runs put each bucket's two collectives on the shared network, one after
    # the other (StageTransfers.buckets): the same step as the symmetric costing.
    over = {**FSDP, "plan.zero": zero, "plan.framework": framework, "plan.dp_shard": 8}
    sym = simulate("llama2-7b", "dgx-a100", **over)
    dev = simulate("llama2-7b", "dgx-a100", per_device=True, **over)
    assert dev.engine["mode"] == "per-device" and sym.engine["mode"] == "symmetric"
    assert dev.step_time_s == pytest.approx(sym.step_time_s, rel=1e-9)
    assert dev.breakdown_s["dp_comm"] == pytest.approx(sym.breakdown_s["dp_comm"], rel=1e-9)


def _needs_gb(lines):
    line = next(ln for ln in lines if ln.startswith(("does not fit:", "fits:")))
    return float(line.split(" needs ")[1].split(" GB")[0] if " needs " in line
                 else line.split("peak ")[1].split(" GB")[0])


def test_check_offers_a_wider_shard_group_and_keeps_it_in_other_fixes():
    from simwall.studies.check import check

    over = {"plan.tp": 1, "plan.pp": 1, "plan.zero": 3, "plan.framework": "fsdp",
            "cluster.nodes": 16, "plan.dp_shard": 8, "plan.sequence_parallel": False}
    res = check("llama2-70b", None, over)
    assert res.status == "does-not-fit"
    fixes = [ln.strip() for ln in res.lines if ln.strip().startswith("fix:")]
    wider = next(f for f in fixes if f.startswith("fix: dp_shard 8 -> 16 saves"))
    wider_plan = check("llama2-70b", None, {**over, "plan.dp_shard": 16})
    saved = float(wider.split(" saves ")[1].split(" GB")[0])
    assert saved == pytest.approx(_needs_gb(res.lines) - _needs_gb(wider_plan.lines),
                                  abs=0.15)
    # Raising cp keeps the shard group of 8: the fix saves what CP saves, nothing more.
    cp_fix = next(f for f in fixes if f.startswith("fix: cp 1 -> 2 saves"))
    with_cp = check("llama2-70b", None, {**over, "plan.cp": 2})
    saved = float(cp_fix.split(" saves ")[1].split(" GB")[0])
    assert saved == pytest.approx(_needs_gb(res.lines) - _needs_gb(with_cp.lines), abs=0.15)
