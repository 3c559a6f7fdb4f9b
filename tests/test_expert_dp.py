"""Expert gradients are reduced over the expert-data-parallel groups (issue 16).

Megatron-Core keeps the routed experts' parameters (``allreduce`` False) in buffers of
their own, reduced and sharded over the expert-DP group (``intra_expt_dp_group``,
``world / (expert TP x EP x PP)`` ranks), the dense parameters over DP x CP
(``intra_dp_cp_group``): megatron/core/distributed/distributed_data_parallel.py,
megatron/core/parallel_state.py. Checked here by hand on a small Mixtral-like model: which
groups reduce how many bytes.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

import pytest

from simwall.config import PRECISION_BYTES
from simwall.costing.groups import dp_groups, expert_dp_groups
from simwall.costing.optimizer import parameter_gather_cost
from simwall.costing.stage import stage_cost
from simwall.engine.prepare import prepare

# Mixtral 8x7B's layer (Jiang et al. 2024, Table 1) cut to 2 layers and a 1024-token
# sequence: 8 experts, top-2, SwiGLU experts 14336 wide.
SMALL = {"model.layers": 2, "model.seq_len": 1024, "plan.pp": 1, "plan.recompute": "none",
         "plan.zero": 1, "training.global_batch": 16, "cluster.nodes": 1}


def _prep(**over):
    return prepare("mixtral-8x7b", "dgx-h100", {**SMALL, **over})


def _by_group_size(traffic, kind, plan):
    """Bytes per rank the step runs ``kind`` with over DP or expert-DP groups (not TP's
    sequence-parallel collectives), by group size, and the groups."""
    mine = {tuple(g) for g in dp_groups(plan, 0) + expert_dp_groups(plan, 0)}
    out, groups = defaultdict(float), defaultdict(set)
    for t in traffic:
        if t.kind == kind and set(t.groups) <= mine:
            out[len(t.groups[0])] += t.bytes_ * t.count
            groups[len(t.groups[0])].update(t.groups)
    return dict(out), groups


def _hand_counts(prep):
    """(dense, expert) gradient bytes per device, by hand: an expert is three h x f
    matrices (gate, up, down), each device holds experts / ep of them per layer."""
    m, tr, plan = prep.workload.model, prep.workload.training, prep.plan
    grad_b = PRECISION_BYTES[tr.grad_reduce_precision_]
    h, f = m.hidden, m.moe_ffn_hidden or m.ffn
    expert = m.layers * (m.experts // plan.ep) * 3 * h * f // plan.tp
    # Dense: attention (GQA), two RMSNorms, the router, embedding, final norm, LM head.
    kv = m.kv_heads * m.head_dim
    attention = (h * (h + 2 * kv) + h * h) // plan.tp
    dense = (m.layers * (attention + 2 * h + h * m.experts)
             + 2 * m.vocab * h // plan.tp + h)
    return dense * grad_b, expert * grad_b


@pytest.mark.parametrize("tp, dp, ep", [(1, 8, 2), (2, 4, 2), (1, 8, 4)])
def test_expert_gradients_reduce_over_expert_dp(tp, dp, ep):
    prep = _prep(**{"plan.tp": tp, "plan.dp": dp, "plan.ep": ep,
                    "plan.sequence_parallel": tp > 1})
    plan = prep.plan
    sc = stage_cost(prep.workload.model, prep.workload.training, plan, prep.device,
                    prep.topology, 0, 1.0, False)
    dense, expert = _hand_counts(prep)
    reduced, groups = _by_group_size(sc.traffic, "reduce_scatter", plan)
    edp = dp // ep
    assert reduced == {dp: pytest.approx(dense), edp: pytest.approx(expert)}
    # The expert-DP groups: ranks ep x tp apart, one per (TP rank, EP rank).
    assert groups[edp] == {tuple(g) for g in expert_dp_groups(plan, 0)}
    assert len(groups[edp]) == tp * ep
    assert all(b - a == ep * tp for g in groups[edp] for a, b in pairwise(g))
    assert groups[dp] == {tuple(g) for g in dp_groups(plan, 0)}
    # Every gradient byte is in one bucket.
    assert sum(sc.bucket_bytes) == pytest.approx(dense + expert)
    # The parameter all-gather after the distributed optimizer's step: same split.
    gathered, _ = _by_group_size(parameter_gather_cost(
        prep.workload.model, prep.workload.training, plan, prep.topology, 0, False).traffic,
        "all_gather", plan)
    w = prep.workload.training.weight_bytes
    grad_b = PRECISION_BYTES[prep.workload.training.grad_reduce_precision_]
    assert gathered == {dp: pytest.approx(dense / grad_b * w),
                        edp: pytest.approx(expert / grad_b * w)}


def test_experts_need_no_reduction_when_ep_spans_dp():
    """ep = dp: every expert lives on one rank of the DP group, nothing to reduce."""
    prep = _prep(**{"plan.tp": 1, "plan.dp": 8, "plan.ep": 8})
    sc = stage_cost(prep.workload.model, prep.workload.training, prep.plan, prep.device,
                    prep.topology, 0, 1.0, False)
    dense, expert = _hand_counts(prep)
    reduced, _ = _by_group_size(sc.traffic, "reduce_scatter", prep.plan)
    assert reduced == {8: pytest.approx(dense)}
    assert sum(sc.bucket_bytes) == pytest.approx(dense + expert)
    assert min(sc.bucket_s) == 0.0          # the expert buckets cost nothing


@pytest.mark.parametrize("over", [
    {"plan.tp": 1, "plan.dp": 8, "plan.ep": 2},
    {"plan.tp": 1, "plan.dp": 16, "plan.cp": 2, "plan.ep": 8, "cluster.nodes": 4,
     "training.global_batch": 64},
    {"plan.tp": 2, "plan.sequence_parallel": True, "plan.dp": 16, "plan.ep": 4,
     "cluster.nodes": 4, "training.global_batch": 64}])
def test_symmetric_costing_matches_per_device_groups(over):
    """The symmetric run costs the groups near the first: the same expert-DP groups'
    bytes, and the same bucket times, on one node and across four (expert-DP groups one
    device per node)."""
    prep = _prep(**over)
    args = (prep.workload.model, prep.workload.training, prep.plan, prep.device,
            prep.topology, 0, 1.0)
    per_device, symmetric = stage_cost(*args, False), stage_cost(*args, True)
    assert per_device.bucket_bytes == symmetric.bucket_bytes
    assert per_device.bucket_s == pytest.approx(symmetric.bucket_s)
    assert (_by_group_size(per_device.traffic, "reduce_scatter", prep.plan)[0]
            == pytest.approx(_by_group_size(symmetric.traffic, "reduce_scatter",
                                            prep.plan)[0]))


@pytest.mark.parametrize("over", [{"plan.tp": 1, "plan.ep": 8},
                                  {"plan.tp": 2, "plan.ep": 2, "plan.sequence_parallel": True}])
def test_optimizer_step_updates_experts_over_expert_dp(over):
    """The optimizer step updates what the device's optimizer state holds: its dense
    parameters over DP x CP, its routed experts over expert DP (dp x cp / ep), by hand."""
    from simwall.model import memory

    prep = _prep(**over)
    m, tr, plan = prep.workload.model, prep.workload.training, prep.plan
    grad_b = PRECISION_BYTES[tr.grad_reduce_precision_]
    dense_b, expert_b = _hand_counts(prep)
    expected = dense_b / grad_b / plan.dp_cp + expert_b / grad_b / (plan.dp_cp // plan.ep)
    shard = memory.stage_optimizer_shard_params(m, plan, 0)
    assert shard == pytest.approx(expected, rel=1e-12)
    assert shard > memory.optimizer_shard_params(memory.stage_params(m, plan, 0), plan)


def test_per_device_buckets_run_over_their_own_groups():
    # Dense and expert buckets of the same size (full buckets) run over different groups:
    # per-device runs must put each on its own (they once ran every full bucket over DP x
    # CP, 7 % slower than the symmetric run of this plan).
    from simwall import simulate
    from simwall.api import prepare
    from simwall.costing.stage import stage_cost

    over = {"model.layers": 8, "model.dense_layers": 1, "cluster.nodes": 16, "plan.pp": 2,
            "plan.ep": 16, "training.global_batch": 256}
    p = prepare("deepseek-v3", None, over)
    wl, plan = p.workload, p.plan
    sc = stage_cost(wl.model, wl.training, plan, p.device, p.topology, 1, symmetric=False)
    sizes = {len(t.groups[0]) for parts in sc.transfers.buckets for t in parts}
    assert sizes == {plan.dp_cp, plan.dp_cp // plan.ep}
    sym = simulate("deepseek-v3", **over)
    dev = simulate("deepseek-v3", per_device=True, **over)
    assert dev.step_time_s == pytest.approx(sym.step_time_s, rel=0.005)
