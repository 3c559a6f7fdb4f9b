"""Pipeline schedules: every task exactly once, valid orders (Narayanan et al. 2021)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.plan.schedules import SCHEDULES, interleaved, one_f_one_b


@settings(deadline=None, derandomize=True, max_examples=60)
@given(pp=st.integers(1, 8), k=st.integers(1, 6), v=st.integers(1, 4),
       name=st.sampled_from(sorted(SCHEDULES)))
def test_every_task_once_and_forward_before_backward(pp, k, v, name):
    m = pp * k
    v = v if name == "interleaved" else 1
    # A zero-bubble schedule splits the backward into B (input grad.) and W (weight grad.).
    passes = "FBW" if name == "zero_bubble" else "FB"
    for stage in range(pp):
        tasks = SCHEDULES[name](pp, stage, m, v)
        assert sorted(tasks) == sorted([(p, i, c) for p in passes for i in range(m)
                                        for c in range(v)])
        seen = {"F": set(), "B": set()}
        for p, i, c in tasks:
            if p in seen:
                seen[p].add((i, c))
            if p == "B":
                assert (i, c) in seen["F"]
            if p == "W":
                assert (i, c) in seen["B"]


def test_1f1b_warmup_and_in_flight():
    # Stage i keeps at most pp - i micro-batches in flight (Sec. 2.2.1).
    pp, m = 4, 8
    for stage in range(pp):
        in_flight = peak = 0
        for p, _, _ in one_f_one_b.tasks(pp, stage, m):
            in_flight += 1 if p == "F" else -1
            peak = max(peak, in_flight)
        assert peak == pp - stage


def test_interleaved_chunk_order():
    # Forward chunk order on stage 0 with pp=2, v=2: mb0 c0, mb1 c0, mb0 c1, mb1 c1, ...
    tasks = interleaved.tasks(2, 0, 4, 2)
    fwd = [(i, c) for p, i, c in tasks if p == "F"]
    assert fwd[:4] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    bwd = [(i, c) for p, i, c in tasks if p == "B"]
    assert bwd[:2] == [(0, 1), (1, 1)]
