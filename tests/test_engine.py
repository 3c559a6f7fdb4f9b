"""The SimPy engine: bubbles from the schedule, PP exposure, DP bucket overlap."""

from dataclasses import replace

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.costing import ChunkCost, StageCost
from simwall.engine.pipeline import GradSegment, run_pipeline
from simwall.engine.step import estimate_step, simulate_step, step_timing
from simwall.engine.sync import bucket_ready_times, dp_reduction
from simwall.engine.trace import Recorder
from simwall.plan import Plan, balanced_split
from simwall.plan.schedules import SCHEDULES, tasks_for


def _plan(pp, m, schedule="1f1b", v=1, dp=1):
    return Plan(tp=1, pp=pp, dp=dp, virtual_stages=v, sequence_parallel=False, zero=0,
                recompute="none", schedule=schedule, micro_batch=1, global_batch=m * dp,
                stage_layers=balanced_split(pp * v * 2, pp * v))


def _costs(plan, tf, tb, pp_s=0.0, act=1.0):
    out = {}
    for stage in range(plan.pp):
        chunks = tuple(
            ChunkCost(chunk=c * plan.pp + stage, layers=2, fwd_compute_s=tf / plan.virtual_stages,
                      fwd_tp_s=0.0, bwd_compute_s=tb / plan.virtual_stages, bwd_tp_s=0.0,
                      zero3_fwd_exposed_s=0.0, zero3_bwd_exposed_s=0.0, grad_bytes=100.0,
                      activation_bytes=act)
            for c in range(plan.virtual_stages))
        out[(stage, 0)] = StageCost(stage=stage, chunks=chunks, pp_fwd_s=pp_s, pp_bwd_s=pp_s,
                                    bucket_bytes=(), bucket_s=(), tied_embedding_s=0.0,
                                    optimizer_s=0.0, post_optimizer_s=0.0)
    return out


@settings(deadline=None, derandomize=True, max_examples=40)
@given(pp=st.integers(2, 8), k=st.integers(1, 8))
def test_1f1b_bubble_is_p_minus_1_over_m(pp, k):
    m = pp * k
    plan = _plan(pp, m)
    run = run_pipeline(plan, _costs(plan, 1.0, 2.0))
    st0 = run.stats[(0, 0)]
    assert st0.compute_s == pytest.approx(m * 3.0)
    assert st0.bubble_s / st0.compute_s == pytest.approx((pp - 1) / m)
    assert st0.pp_wait_s == 0.0
    assert st0.compute_end_s == pytest.approx((m + pp - 1) * 3.0)


@settings(deadline=None, derandomize=True, max_examples=30)
@given(pp=st.integers(2, 6), k=st.integers(1, 4), v=st.integers(2, 4))
def test_interleaved_bubble_is_p_minus_1_over_vm(pp, k, v):
    m = pp * k
    plan = _plan(pp, m, "interleaved", v)
    run = run_pipeline(plan, _costs(plan, 1.0, 2.0))
    st0 = run.stats[(0, 0)]
    assert st0.bubble_s / st0.compute_s == pytest.approx((pp - 1) / (v * m))


def test_gpipe_bubble_matches_1f1b_but_holds_all_micro_batches():
    plan = _plan(4, 8, "gpipe")
    run = run_pipeline(plan, _costs(plan, 1.0, 2.0))
    st0 = run.stats[(0, 0)]
    assert st0.bubble_s / st0.compute_s == pytest.approx(3 / 8)
    assert st0.activation_peak_bytes == pytest.approx(8.0)
    plan = _plan(4, 8, "1f1b")
    assert run_pipeline(plan, _costs(plan, 1.0, 2.0)).stats[(0, 0)].activation_peak_bytes \
        == pytest.approx(4.0)


def test_pp_transfer_time_shows_as_pp_comm_not_bubble():
    plan = _plan(2, 4)
    base = run_pipeline(plan, _costs(plan, 1.0, 2.0)).stats[(0, 0)]
    slow = run_pipeline(plan, _costs(plan, 1.0, 2.0, pp_s=0.25)).stats[(0, 0)]
    assert slow.pp_wait_s > 0
    assert slow.compute_end_s > base.compute_end_s
    assert slow.compute_end_s == pytest.approx(slow.compute_s + slow.bubble_s + slow.pp_wait_s)


def test_bucket_ready_times_follow_backward():
    # One 10 s backward producing 100 bytes; buckets of 25 bytes fill every 2.5 s.
    ready = bucket_ready_times([(0.0, 10.0, 100.0)], (25.0, 25.0, 25.0, 25.0), True)
    assert ready == pytest.approx([2.5, 5.0, 7.5, 10.0])
    assert bucket_ready_times([(0.0, 10.0, 100.0)], (50.0, 50.0), False) == [10.0, 10.0]


def _dp_end(bucket_s, overlap):
    """Stage 0's DP process alone: one 10 s backward (announced as it starts) producing
    100 bytes in 4 buckets of 25 bytes. Returns (DP end, [(start, end) of each bucket])."""
    env = simpy.Environment()
    chunk = ChunkCost(chunk=0, layers=1, fwd_compute_s=0.0, fwd_tp_s=0.0, bwd_compute_s=10.0,
                      bwd_tp_s=0.0, zero3_fwd_exposed_s=0.0, zero3_bwd_exposed_s=0.0,
                      grad_bytes=100.0, activation_bytes=0.0)
    sc = StageCost(stage=0, chunks=(chunk,), pp_fwd_s=0.0, pp_bwd_s=0.0,
                   bucket_bytes=(25.0,) * 4, bucket_s=bucket_s, tied_embedding_s=0.0,
                   optimizer_s=0.0, post_optimizer_s=0.0)
    grads = simpy.Store(env)
    rec = Recorder(True, 1)

    def backward():
        grads.put(GradSegment(0, 0.0, 10.0, 100.0))
        yield env.timeout(10.0)

    stream = env.process(backward())
    dp = env.process(dp_reduction(env, sc, 1, overlap, grads, [stream], lambda: 10.0, rec))
    env.run()
    spans = [(e["ts"] / 1e6, (e["ts"] + e["dur"]) / 1e6) for e in rec.events]
    return dp.value, spans


def test_dp_overlap_hides_all_but_the_last_bucket():
    # Backward of 10 s makes 4 buckets; each takes 1 s to reduce, less than the 2.5 s
    # between buckets, so only the last bucket's reduction is exposed after backward.
    end, spans = _dp_end((1.0,) * 4, True)
    assert end == pytest.approx(10.0 + 1.0)
    assert [s for s, _ in spans] == pytest.approx([2.5, 5.0, 7.5, 10.0])
    # Without overlap all four are exposed.
    end, spans = _dp_end((1.0,) * 4, False)
    assert end == pytest.approx(14.0)
    assert [s for s, _ in spans] == pytest.approx([10.0, 11.0, 12.0, 13.0])
    # Reductions slower than backward queue up: exposure grows beyond one bucket.
    end, _ = _dp_end((4.0,) * 4, True)
    assert end == pytest.approx(2.5 + 16.0)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_every_schedule_consumes_each_chunks_inputs_in_production_order(schedule):
    """The engine's inputs are FIFO stores (one per receiving chunk, direction and
    replica): that holds when every stage runs each chunk's forwards, and its backwards,
    in micro-batch order, since the neighbouring chunk then produces them in the order
    they are consumed."""
    for pp in range(1, 7):
        for v in ((1,) if schedule != "interleaved" else (2, 3, 4)):
            for k in range(1, 5):
                m = pp * k
                for stage in range(pp):
                    order = tasks_for(schedule, pp, stage, m, v)
                    for local in range(v):
                        for pass_ in ("F", "B"):
                            mbs = [mb for p_, mb, c in order if p_ == pass_ and c == local]
                            assert mbs == list(range(m)), (pp, v, m, stage, local, pass_)


def _uniform_costs(plan, tf, tb, bucket_bytes=(), bucket_s=(), opt=0.0):
    costs = _costs(plan, tf, tb)
    return {k: replace(sc, bucket_bytes=bucket_bytes, bucket_s=bucket_s, optimizer_s=opt)
            for k, sc in costs.items()}


@pytest.mark.parametrize("loss", [0.0, 0.2])
@pytest.mark.parametrize("schedule", ["1f1b", "gpipe"])
def test_engine_and_analytic_estimate_share_the_step_assembly(schedule, loss):
    """On uniform stages without PP transfer time the closed-form pipeline is exact, so
    the search's estimate (estimate_step) and the engine (simulate_step), both assembled
    by step_timing, give the same step and breakdown. The DP reductions (0.5 s each,
    buckets every 0.5 s of a 2 s backward) leave the last bucket exposed, after the
    backward that the three before it slowed by ``loss`` of their 1.5 s
    (costing.contention)."""
    plan = _plan(4, 8, schedule)
    costs = {k: replace(sc, overlap_loss=loss) for k, sc in
             _uniform_costs(plan, 1.0, 2.0, (25.0,) * 4, (0.5,) * 4, opt=0.25).items()}
    sim = simulate_step(plan, costs, 1)
    crit = max(sim.stats, key=lambda k: (sim.stats[k].compute_end_s, -k[0], -k[1]))
    engine = step_timing(sim.stats[crit], sim.tail)
    est = estimate_step(plan, [(costs[(s, 0)], 1) for s in range(plan.pp)])
    assert engine.step_s == pytest.approx(est.step_s, rel=1e-12)
    for key, value in engine.breakdown_s.items():
        assert est.breakdown_s[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    assert sum(engine.breakdown_s.values()) == pytest.approx(engine.step_s, rel=1e-12)
    assert engine.breakdown_s["dp_comm"] == pytest.approx(0.5 + 1.5 * loss, rel=1e-12)


def test_a_step_collects_garbage_less_often_and_restores_the_callers_thresholds(monkeypatch):
    """While the step's events run, young-generation collections are spaced by
    GC_YOUNG_THRESHOLD allocations; the caller's thresholds are back afterwards, and also
    when the run fails."""
    import gc

    from simwall.engine import step as step_mod

    seen = []
    real_run = simpy.Environment.run

    def spy(env, *args, **kwargs):
        seen.append(gc.get_threshold())
        return real_run(env, *args, **kwargs)

    before = gc.get_threshold()
    monkeypatch.setattr(simpy.Environment, "run", spy)
    try:
        gc.set_threshold(700, 10, 10)
        plan = _plan(2, 4, "1f1b")
        simulate_step(plan, _uniform_costs(plan, 1.0, 2.0), 1)
        assert seen and seen[-1] == (step_mod.GC_YOUNG_THRESHOLD, 10, 10)
        assert gc.get_threshold() == (700, 10, 10)

        def broken(env, *args, **kwargs):
            raise RuntimeError("boom")
        monkeypatch.setattr(simpy.Environment, "run", broken)
        with pytest.raises(RuntimeError):
            simulate_step(plan, _uniform_costs(plan, 1.0, 2.0), 1)
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)
