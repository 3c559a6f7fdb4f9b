"""The plan search's step bound (``Searcher.step_bound``: compute plus the layers' exposed
TP collectives) and the pruning it allows: it must never exceed the estimate, and
skipping the plans it puts above the limit must leave ``check``'s rank and best plan and
``plan``'s best K exactly as estimating every plan below the compute bound gives them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.engine.prepare import load_inputs
from simwall.model.limits import resolve_checked
from simwall.studies.search import Searcher, enumerate_plans

#: (workload, cluster, overrides): TP inside and across nodes, SP with and without TP
#: overlap, ZB-H1 and interleaved schedules, CP, and an MoE model (which gets the compute
#: bound).
CASES = [
    ("gpt3-175b", "dgx-a100", {"cluster.nodes": 4, "model.layers": 8,
                               "training.global_batch": 64}),
    ("llama2-7b", "dgx-a100", {"cluster.nodes": 2, "plan.tp_comm_overlap": False,
                               "model.layers": 8, "training.global_batch": 64}),
    ("llama3-8b", "dgx-h100", {"cluster.nodes": 1, "model.layers": 4,
                               "training.global_batch": 16}),
    ("mixtral-8x7b", "dgx-h100", {"cluster.nodes": 1, "model.layers": 4,
                                  "training.global_batch": 16, "model.dense_layers": 1}),
]

_searchers: dict = {}


def _searcher(workload: str, cluster: str, over: dict) -> Searcher:
    key = (workload, cluster, tuple(sorted(over.items())))
    if key not in _searchers:
        wl, cl = load_inputs(workload, cluster, over)
        _searchers[key] = Searcher(wl, cl)
    return _searchers[key]


@pytest.mark.parametrize("workload, cluster, over", CASES)
def test_step_bound_lies_between_the_compute_bound_and_the_estimate(workload, cluster,
                                                                     over):
    s = _searcher(workload, cluster, over)
    tighter = 0
    schedules = set()
    plans = list(enumerate_plans(s.workload, s.cluster))
    for plan in plans[::max(1, len(plans) // 400)]:    # every schedule, degree and ZeRO
        cb, sb = s.compute_bound(plan), s.step_bound(plan)
        est = s.estimate(plan)[0]
        assert cb <= sb * (1 + 1e-12), plan
        assert sb <= est * (1 + 1e-12), (plan, sb, est)
        tighter += sb > cb * (1 + 1e-6)
        schedules.add(plan.schedule)
    if s.workload.model.moe:
        return
    assert tighter > 0, "the TP term never raised the bound"
    assert {"1f1b", "interleaved", "zero_bubble"} <= schedules


def _pruned_and_full(s: Searcher, **limits):
    _, fitting = s.fitting()
    return s.estimated(fitting, **limits), s._estimated(
        fitting, limits.get("need"), limits.get("below_s"), prune=False)


@pytest.mark.parametrize("workload, cluster, over", CASES[:3])
def test_pruning_keeps_every_candidate_at_or_below_the_limit(workload, cluster, over):
    s = _searcher(workload, cluster, over)
    _, fitting = s.fitting()
    ests = sorted(s.estimate(plan)[0] for _, _, plan, _, _ in fitting[::10])
    for below in (ests[len(ests) // 20], ests[len(ests) // 4], ests[len(ests) // 2]):
        pruned, full = _pruned_and_full(s, below_s=below)
        kept = [c for c in pruned if c.estimate_s <= below]
        assert kept == [c for c in full if c.estimate_s <= below]
        assert kept and len(pruned) <= len(full)
    for need in (1, 3, 15):
        pruned, full = _pruned_and_full(s, need=need)
        assert pruned[:need] == full[:need]


def test_a_limit_below_every_estimate_estimates_as_before():
    """``check`` reads the best of the candidates even when none lies below its plan's
    estimate; then nothing may have been skipped."""
    s = _searcher(*CASES[0])
    _, fitting = s.fitting()
    least = min(s.estimate(plan)[0] for _, _, plan, _, _ in fitting)    # every one
    below = least * (1 - 1e-6)
    pruned, full = _pruned_and_full(s, below_s=below)
    assert pruned == full


def test_gpt3_check_and_plan_prune_without_changing_the_answer():
    """The default GPT-3 175B check (1,536 A100s): the same candidates at or below the
    checked plan's estimate, far fewer plans estimated; and the same best 15 (plan)."""
    wl, cl = load_inputs("gpt3-175b", None, {})
    s = Searcher(wl, cl)
    plan, _ = resolve_checked(wl, s.cluster)
    mine = s.estimate(plan)[0]
    pruned, full = _pruned_and_full(s, below_s=mine)
    assert [c for c in pruned if c.estimate_s <= mine] == [c for c in full
                                                            if c.estimate_s <= mine]
    assert any(c.plan == plan for c in pruned)
    assert len(pruned) < len(full) / 2
    pruned, full = _pruned_and_full(s, need=15)
    assert pruned[:15] == full[:15]


@settings(deadline=None, derandomize=True, max_examples=200)
@given(st.floats(1e3, 1e10), st.floats(0.0, 300.0), st.floats(0.0, 300.0),
       st.lists(st.floats(1.0, 1e9), max_size=6))
def test_dense_buckets_keep_the_order_the_sort_gives(size, dense_n, expert_n, odd):
    """``costing.dp`` skips the sort when there are no expert buckets; the order (and
    so the bucket seconds) must be the sort's, including uneven hand-made sizes."""
    from simwall.costing import dp
    dense = dp.buckets(size * dense_n, size)
    for d in (dense, tuple(odd)):
        # What bucket_cost's dense-only path takes for granted: the sort keeps the order.
        assert dp._interleaved(d, ()) == tuple(("dp", x) for x in d)
        # With expert buckets, each kind keeps its own order in the interleaving.
        expert = dp.buckets(size * expert_n, size)
        both = dp._interleaved(d, expert)
        assert len(both) == len(d) + len(expert)
        assert tuple(x for axis, x in both if axis == "dp") == d
        assert tuple(x for axis, x in both if axis == "edp") == expert


def _compute_bound_stage_by_stage(s: Searcher, plan) -> float:
    """:meth:`Searcher.compute_bound` as it was first written: every stage computed on its
    own (the reference for the per-role shortcut, which must give the same float)."""
    from simwall.costing import op_times
    from simwall.model.memory import stage_layer_kinds
    from simwall.plan import Plan
    norm = Plan(tp=plan.tp, pp=1, dp=1, virtual_stages=1,
                sequence_parallel=plan.sequence_parallel, zero=0, recompute=plan.recompute,
                schedule="1f1b", micro_batch=plan.micro_batch, global_batch=plan.micro_batch,
                stage_layers=(s.workload.model.layers,), cp=plan.cp, ep=plan.ep)
    t = op_times(s.workload.model, s.workload.training, norm, s.device)
    kinds = [stage_layer_kinds(s.workload.model, plan, stage) for stage in range(plan.pp)]

    def layers(stage, part):
        dense, n_moe = kinds[stage]
        return dense * t["layer_" + part] + (n_moe * t["moe_layer_" + part] if n_moe
                                               else 0.0)
    per_stage, z = [], []
    for stage in range(plan.pp):
        c = layers(stage, "fwd") + layers(stage, "bwd") + layers(stage, "rec")
        if stage == 0:
            c += t["emb_fwd"] + t["emb_bwd"]
        if stage == plan.pp - 1:
            c += t["head_fwd"] + t["head_bwd"]
        per_stage.append(c)
        f, w = layers(stage, "fwd"), layers(stage, "wgrad")
        if stage == 0:
            f += t["emb_fwd"]
        if stage == plan.pp - 1:
            f += t["head_fwd"]
            w += t["head_wgrad"]
        b = c - f - w
        z.append(f + b - min(w, f, b))
    c_max = max(per_stage)
    if plan.schedule == "zero_bubble":
        return plan.micro_batches * c_max + sum(z) - max(z)
    return plan.micro_batches * c_max + (sum(per_stage) - c_max) / plan.virtual_stages


@pytest.mark.parametrize("workload, cluster, over", [CASES[0], CASES[3]])
def test_compute_bound_per_role_is_the_stage_by_stage_float(workload, cluster, over):
    """The fitting plans' order (and so ties among candidates) rests on these floats."""
    s = _searcher(workload, cluster, over)
    plans = list(enumerate_plans(s.workload, s.cluster))
    for plan in plans[::max(1, len(plans) // 600)]:
        assert s.compute_bound(plan) == _compute_bound_stage_by_stage(s, plan), plan
