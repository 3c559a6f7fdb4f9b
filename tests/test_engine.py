"""The SimPy engine: bubbles from the schedule, PP exposure, DP bucket overlap."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.engine.pipeline import bucket_ready_times, dp_stream, run_pipeline
from simwall.plan import Plan, balanced_split
from simwall.costing.stage import ChunkCost, StageCost


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


def test_dp_overlap_hides_all_but_the_last_bucket():
    # Backward of 10 s makes 4 buckets; each takes 1 s to reduce, less than the 2.5 s
    # between buckets, so only the last bucket's reduction is exposed after backward.
    ready = bucket_ready_times([(0.0, 10.0, 100.0)], (25.0,) * 4, True)
    spans = dp_stream(ready, (1.0,) * 4)
    assert spans[-1][1] == pytest.approx(10.0 + 1.0)
    # Without overlap all four are exposed.
    spans = dp_stream(bucket_ready_times([(0.0, 10.0, 100.0)], (25.0,) * 4, False),
                      (1.0,) * 4)
    assert spans[-1][1] == pytest.approx(14.0)
    # Reductions slower than backward queue up: exposure grows beyond one bucket.
    spans = dp_stream(ready, (4.0,) * 4)
    assert spans[-1][1] == pytest.approx(2.5 + 16.0)
