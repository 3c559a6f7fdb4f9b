"""ZB-H1 (``plan.schedule: zero_bubble``; Qi et al. 2024, "Zero Bubble Pipeline
Parallelism", ICLR 2024, arXiv 2401.10241): the backward split into B (input gradient)
and W (weight gradient), W deferred into the bubbles.

Qi et al. (Sec. 2.1, Fig. 3; the comparison table of sail-sg/zero-bubble-pipeline-
parallelism's README) give the bubble of p stages as ``(p - 1)(T_F + T_B - T_W)`` for
ZB-H1 against ``(p - 1)(T_F + T_B + T_W)`` for 1F1B, whatever the number m >= p of
micro-batches, with the peak activation memory of 1F1B. Our derivation: stage i starts
its first forward i T_F late; its B chain then runs back from the last stage without
waiting for any W (B of stage i needs only B of stage i + 1), so the first B reaches
stage 0 (p - 1) T_B after the last stage's, and the i W passes each stage held back fill
(p - 1 - i) + i = p - 1 slots of T_W of what 1F1B would have waited: (p - 1)(T_F + T_B +
T_W) - 2 (p - 1) T_W. The engine reproduces it exactly on equal stages (first test)
and within 1 % on the op list's own durations (second).
"""

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall import ConfigError, simulate
from simwall.api import prepare
from simwall.costing import ChunkCost, StageCost, stage_cost
from simwall.engine.pipeline import run_pipeline
from simwall.engine.step import estimate_step, simulate_step, step_timing
from simwall.model import memory
from simwall.plan import Plan, balanced_split, frameworks_for
from simwall.plan.schedules import zero_bubble
from simwall.studies.search import enumerate_plans


def _plan(pp, m, schedule="zero_bubble"):
    return Plan(tp=1, pp=pp, dp=1, virtual_stages=1, sequence_parallel=False, zero=0,
                recompute="none", schedule=schedule, micro_batch=1, global_batch=m,
                stage_layers=balanced_split(pp * 2, pp))


def _costs(plan, per_stage, pp_s=0.0, act=1.0, w_act=0.5, buckets=((), ())):
    """``per_stage[s] = (T_F, T_B, T_W)``; the chunk's backward is B + W, W its weight part."""
    out = {}
    for s in range(plan.pp):
        f, b, w = per_stage[s]
        ch = ChunkCost(chunk=s, layers=2, fwd_compute_s=f, fwd_tp_s=0.0, bwd_compute_s=b + w,
                       bwd_tp_s=0.0, zero3_fwd_exposed_s=0.0, zero3_bwd_exposed_s=0.0,
                       grad_bytes=100.0, activation_bytes=act, bwd_weight_s=w,
                       wgrad_activation_bytes=w_act)
        out[(s, 0)] = StageCost(stage=s, chunks=(ch,), pp_fwd_s=pp_s, pp_bwd_s=pp_s,
                                bucket_bytes=buckets[0], bucket_s=buckets[1],
                                tied_embedding_s=0.0, optimizer_s=0.0, post_optimizer_s=0.0)
    return out


def _pipe(plan, costs):
    """(pipeline phase end, bubble of the stream that ends last) of an engine run."""
    run = run_pipeline(plan, costs)
    crit = max(run.stats.values(), key=lambda s: (s.compute_end_s, -s.stage))
    return crit.compute_end_s, crit.bubble_s, run


# -- the schedule --------------------------------------------------------------------


def test_w_passes_start_stage_micro_batches_late():
    # pp 4, m 8: stage i runs 1F1B's 3 - i warm-up forwards; its first W follows the B of
    # micro-batch i; after the last B come i + 1 W passes (Qi et al. Fig. 3 top).
    pp, m = 4, 8
    for stage in range(pp):
        order = zero_bubble.tasks(pp, stage, m)
        assert [t[0] for t in order[:pp - stage]] == ["F"] * (pp - stage)
        first_w = order.index(("W", 0, 0))
        assert order[first_w - 1] == ("B", stage, 0)
        last_b = order.index(("B", m - 1, 0))
        assert order[last_b + 1:] == tuple(("W", i, 0) for i in range(m - 1 - stage, m))
        # At most pp micro-batches between their F and their W (1F1B: pp - stage).
        pending = peak = 0
        for p_, _, _ in order:
            pending += {"F": 1, "B": 0, "W": -1}[p_]
            peak = max(peak, pending)
        assert peak == pp


# -- bubble: Qi et al.'s formula -----------------------------------------------------


@settings(deadline=None, derandomize=True, max_examples=60)
@given(pp=st.integers(2, 8), extra=st.integers(0, 24), tf=st.floats(0.1, 2.0),
       tb=st.floats(0.1, 2.0), w_frac=st.floats(0.0, 1.0))
def test_engine_bubble_is_qi_formula_on_equal_stages(pp, extra, tf, tb, w_frac):
    """Equal stages, no communication: the engine's bubble is (p - 1)(T_F + T_B - T_W)
    for every m >= p while T_W <= min(T_F, T_B) (Qi et al. 2024, Sec. 2.1), 1F1B's
    (p - 1)(T_F + T_B + T_W)."""
    m = pp + extra
    tw = w_frac * min(tf, tb)
    plan = _plan(pp, m)
    end, bubble, _ = _pipe(plan, _costs(plan, [(tf, tb, tw)] * pp))
    assert bubble == pytest.approx((pp - 1) * (tf + tb - tw), rel=1e-9, abs=1e-12)
    assert end == pytest.approx(m * (tf + tb + tw) + (pp - 1) * (tf + tb - tw), rel=1e-9)
    base = replace(plan, schedule="1f1b")
    _, bubble_1f1b, _ = _pipe(base, _costs(base, [(tf, tb, tw)] * pp))
    assert bubble_1f1b == pytest.approx((pp - 1) * (tf + tb + tw), rel=1e-9)


#: (workload, p, m) of the op-list comparison (docs/cost-model.md shows the table).
OP_LIST_CASES = [("gpt3-175b", 2, 8), ("gpt3-175b", 4, 8), ("gpt3-175b", 4, 16),
                 ("gpt3-175b", 8, 16), ("gpt3-175b", 8, 32), ("llama2-7b", 4, 8),
                 ("llama2-7b", 8, 32)]


def op_list_bubble(workload, pp, m):
    """(formula, engine) bubble of ZB-H1 on ``pp`` stages and ``m`` micro-batches with
    the op list's durations, communication-free: tp 1, dp 1, one node with pp devices,
    the PP sends zeroed; model.vocab set to 64 so the embedding and LM head (on the
    first and last stage only) do not unbalance the stages the formula assumes equal.
    T_F, T_B, T_W are a middle stage's (forward; backward less its weight-gradient
    GEMMs; those GEMMs)."""
    over = {"plan.tp": 1, "plan.pp": pp, "plan.dp": 1, "plan.zero": 0,
            "plan.schedule": "zero_bubble", "plan.sequence_parallel": False,
            "training.micro_batch": 1, "training.global_batch": m, "model.vocab": 64,
            "cluster.nodes": 1, "cluster.devices_per_node": pp}
    prep = prepare(workload, "single-node", over)
    wl, plan = prep.workload, prep.plan
    costs = {(s, 0): replace(stage_cost(wl.model, wl.training, plan, prep.device,
                                        prep.topology, s), pp_fwd_s=0.0, pp_bwd_s=0.0)
             for s in range(pp)}
    _, bubble, _ = _pipe(plan, costs)
    ch = costs[(pp // 2, 0)].chunks[0]
    tf, tw = ch.fwd_s, ch.bwd_weight_s
    tb = ch.bwd_s - tw
    return (pp - 1) * (tf + tb - tw), bubble


@pytest.mark.parametrize(("workload", "pp", "m"), OP_LIST_CASES)
def test_op_list_bubble_matches_qi_formula_within_1_percent(workload, pp, m):
    formula, engine = op_list_bubble(workload, pp, m)
    assert engine == pytest.approx(formula, rel=0.01)


def test_w_is_the_weight_gradient_gemms_of_the_op_list():
    # GPT-3 175B, tp 1, no recompute: every linear layer's backward is dgrad (B) + wgrad
    # (W) of equal FLOP, so W is about half the linear layers' backward and the
    # attention core, norms and elementwise gradients make B longer than W.
    prep = prepare("gpt3-175b", "single-node",
                   {"plan.tp": 1, "plan.pp": 8, "plan.dp": 1, "plan.zero": 0,
                    "plan.recompute": "none", "plan.sequence_parallel": False,
                    "training.micro_batch": 1, "training.global_batch": 8,
                    "cluster.nodes": 1, "cluster.devices_per_node": 8})
    wl, plan = prep.workload, prep.plan
    ch = stage_cost(wl.model, wl.training, plan, prep.device, prep.topology, 3).chunks[0]
    assert 0 < ch.bwd_weight_s < ch.bwd_compute_s - ch.bwd_weight_s
    # W's GEMMs have the FLOP of the forward's linear GEMMs: a bit less than the forward.
    assert 0.6 * ch.fwd_compute_s < ch.bwd_weight_s < ch.fwd_compute_s


@settings(deadline=None, derandomize=True, max_examples=40)
@given(pp=st.integers(2, 8), extra=st.integers(0, 12), tf=st.floats(0.1, 2.0),
       tb=st.floats(0.1, 2.0), w_frac=st.floats(1.0, 4.0))
def test_engine_bubble_when_w_outgrows_the_gaps(pp, extra, tf, tb, w_frac):
    """Past T_W = min(T_F, T_B) a W no longer fits the gap it fills; our derivation, as
    the engine runs it: (p - 1)(T_F + T_B - min(T_F, T_B)), which the analytic estimate
    of the plan search uses too."""
    plan = _plan(pp, pp + extra)
    _, bubble, _ = _pipe(plan, _costs(plan, [(tf, tb, w_frac * min(tf, tb))] * pp))
    assert bubble == pytest.approx((pp - 1) * max(tf, tb), rel=1e-9)


# -- memory ----------------------------------------------------------------------------


@settings(deadline=None, derandomize=True, max_examples=80)
@given(pp=st.integers(1, 8), m=st.integers(1, 24), act=st.floats(0.1, 10.0),
       w_act=st.floats(0.0, 20.0))
def test_engine_peak_is_the_closed_form(pp, m, act, w_act):
    """The engine's activation peak of every stage equals memory.zero_bubble_held's
    closed form (m < p, W holding more or less than B included)."""
    plan = _plan(pp, m)
    _, _, run = _pipe(plan, _costs(plan, [(1.0, 1.2, 0.8)] * pp, act=act, w_act=w_act))
    for s in range(pp):
        closed = max(b * act + w * w_act for b, w in memory.zero_bubble_held(pp, s, m))
        assert run.stats[(s, 0)].activation_peak_bytes == pytest.approx(closed, rel=1e-9)


def test_first_stage_holds_what_1f1b_holds():
    # m >= p and W holding less than B (Qi et al. Sec. 2.1): stage i holds
    # (p - i) M_B + i M_W, the first stage p M_B as under 1F1B.
    pp, m = 6, 12
    for s in range(pp):
        held = max(b * 34 + w * 32 for b, w in memory.zero_bubble_held(pp, s, m))
        assert held == (pp - s) * 34 + s * 32


@pytest.mark.parametrize("recompute", ["none", "selective", "full"])
@pytest.mark.parametrize(("pp", "m"), [(4, 2), (4, 4), (4, 12)])
def test_engine_memory_peak_equals_closed_form_on_a_workload(recompute, pp, m):
    """simwall run: each stage's engine activation peak is the closed form of
    model.memory.stage_activation_bytes; with M_W <= M_B (no / selective recompute) and
    m >= p no stage of transformer layers holds more than 1F1B's worst, the first (Qi et
    al. 2024, Sec. 2.1). The last stage is the exception: its W passes also keep the LM
    head's input and logit gradients (p - 1 micro-batches' worth)."""
    over = {"plan.tp": 2, "plan.pp": pp, "plan.dp": 1, "plan.zero": 0,
            "plan.sequence_parallel": True, "plan.recompute": recompute,
            "training.micro_batch": 1, "training.global_batch": m,
            "cluster.nodes": 1, "cluster.devices_per_node": 2 * pp}
    zb = simulate("llama2-7b", "single-node", **over, **{"plan.schedule": "zero_bubble"})
    prep = prepare("llama2-7b", "single-node", {**over, "plan.schedule": "zero_bubble"})
    wl = prep.workload
    for d in zb.memory["devices"]:
        closed = memory.stage_activation_bytes(wl.model, wl.training, prep.plan, d["stage"])
        assert d["activations_bytes"] == pytest.approx(closed, rel=1e-9)
    if recompute != "full" and m >= pp:
        base = simulate("llama2-7b", "single-node", **over, **{"plan.schedule": "1f1b"})
        body = [d["activations_bytes"] for d in zb.memory["devices"] if d["stage"] < pp - 1]
        one = [d["activations_bytes"] for d in base.memory["devices"]]
        assert max(body) == pytest.approx(one[0], rel=1e-9) and one[0] == max(one)


# -- never slower than 1F1B ---------------------------------------------------------------


@settings(deadline=None, derandomize=True, max_examples=80)
@given(pp=st.integers(2, 8), m=st.integers(1, 24),
       stages=st.lists(st.tuples(st.floats(0.1, 2.0), st.floats(0.1, 2.0),
                                 st.floats(0.0, 1.0)), min_size=8, max_size=8),
       pp_s=st.floats(0.0, 1.0))
def test_never_slower_than_1f1b(pp, m, stages, pp_s):
    """Whatever the stage durations (unequal stages included) and PP transfer time, ZB-H1
    ends the pipeline phase no later than 1F1B on the same plan: it runs the same tasks
    and B never waits for a W."""
    per_stage = [(f, b, w * (f + b)) for f, b, w in stages[:pp]]
    plan = _plan(pp, m)
    end_zb, _, _ = _pipe(plan, _costs(plan, per_stage, pp_s))
    base = replace(plan, schedule="1f1b")
    end_1f1b, _, _ = _pipe(base, _costs(base, per_stage, pp_s))
    assert end_zb <= end_1f1b * (1 + 1e-12)


@pytest.mark.parametrize(("workload", "over"), [
    ("llama2-7b", {"plan.pp": 4, "plan.tp": 2, "training.global_batch": 16}),
    ("gpt2", {"plan.pp": 2, "plan.tp": 1, "plan.recompute": "full",
              "training.global_batch": 8}),
    ("llama2-7b", {"plan.pp": 8, "plan.tp": 1, "training.global_batch": 32})])
def test_step_never_slower_than_1f1b_without_dp(workload, over):
    """Whole steps on one node with DP 1 (full stack: TP, PP sends, optimizer)."""
    base = {"plan.dp": 1, "plan.zero": 0, "training.micro_batch": 1, "cluster.nodes": 1,
            "cluster.devices_per_node": over["plan.pp"] * over["plan.tp"], **over}
    zb = simulate(workload, "single-node", **base, **{"plan.schedule": "zero_bubble"})
    one = simulate(workload, "single-node", **base, **{"plan.schedule": "1f1b"})
    assert zb.step_time_s < one.step_time_s
    assert zb.breakdown_s["bubble"] < one.breakdown_s["bubble"]
    assert zb.breakdown_s["compute"] == pytest.approx(one.breakdown_s["compute"], rel=1e-9)


# -- DP gradients after the last W; the analytic estimate ----------------------------------


def test_dp_reduction_waits_for_the_last_w():
    # The chunk's gradients are complete only after its last W: the engine announces that
    # W (not the last B) to the DP stream, so no bucket starts before it.
    pp, m = 4, 8
    plan = _plan(pp, m)
    costs = _costs(plan, [(1.0, 1.2, 0.8)] * pp, buckets=((25.0,) * 4, (0.1,) * 4))
    sim = simulate_step(plan, costs, 1, trace=True)
    for s in range(pp):
        stats = sim.stats[(s, 0)]
        (start, end, _), = stats.grad_segments
        assert end == pytest.approx(stats.compute_end_s)
        assert end - start == pytest.approx(0.8)          # the last W, not B + W
        buckets = [e for e in sim.trace_events if e.get("name", "").startswith("dp bucket")
                   and e["pid"] == s]
        assert buckets and min(e["ts"] for e in buckets) / 1e6 >= start


def test_estimate_matches_engine_on_equal_stages():
    """The plan search's analytic estimate is exact on equal stages without PP time, the
    DP buckets (0.1 s each, one every 0.2 s of the last 0.8 s W) leaving the last exposed."""
    plan = _plan(4, 8)
    costs = _costs(plan, [(1.0, 1.2, 0.8)] * 4, buckets=((25.0,) * 4, (0.1,) * 4))
    sim = simulate_step(plan, costs, 1)
    crit = max(sim.stats, key=lambda k: (sim.stats[k].compute_end_s, -k[0], -k[1]))
    engine = step_timing(sim.stats[crit], sim.tail)
    est = estimate_step(plan, [(costs[(s, 0)], 1) for s in range(plan.pp)])
    assert engine.step_s == pytest.approx(est.step_s, rel=1e-12)
    for key, value in engine.breakdown_s.items():
        assert est.breakdown_s[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


# -- plans, frameworks, search ---------------------------------------------------------


def test_frameworks_running_zero_bubble():
    plan = replace(_plan(4, 8), zero=2, dp=2, global_batch=16)
    assert frameworks_for(plan) == ("fsdp2",)        # torch.distributed.pipelining
    assert "megatron" not in frameworks_for(replace(plan, zero=1))
    assert frameworks_for(replace(plan, zero=1, schedule="1f1b"))[:2] == ("megatron",
                                                                           "deepspeed")


def test_validation_accepts_v1_and_rejects_virtual_stages():
    prep = prepare("gpt2", "single-node", {"plan.pp": 2, "plan.schedule": "zero_bubble"})
    assert prep.plan.schedule == "zero_bubble"
    with pytest.raises(ConfigError, match="virtual_stages"):
        prepare("gpt2", "single-node", {"plan.pp": 2, "plan.schedule": "zero_bubble",
                                        "plan.virtual_stages": 2})


def test_search_enumerates_zero_bubble_with_pipelines_only():
    prep = prepare("gpt2", "single-node")
    plans = list(enumerate_plans(prep.workload, prep.cluster))
    zb = [p for p in plans if p.schedule == "zero_bubble"]
    assert zb and all(p.pp > 1 and p.virtual_stages == 1 for p in zb)
