"""Tests for simwall.net.flows: max-min fair rates, drain times, the SimPy fluid model."""

from __future__ import annotations

import math

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.errors import SimwallError
from simwall.net.flows import DONE_REL, TIE_REL, FlowNetwork, drain_time_s, maxmin_rates

PROPS = settings(deadline=None, derandomize=True, max_examples=40)


def test_two_flows_on_one_edge_get_half_each():
    assert maxmin_rates([(("e",), 1.0), (("e",), 1.0)], {"e": 10.0}) == [5.0, 5.0]


def test_textbook_maxmin_three_flows_two_links():
    # Bertsekas & Gallager, Data Networks, Sec. 6.5.2: a long flow crosses links a and b,
    # one short flow on each. With C_a = 1, C_b = 2: the long flow and the short flow on a
    # share a at 1/2 each; the short flow on b takes what is left of b, 2 - 1/2 = 3/2.
    rates = maxmin_rates([(("a", "b"), 1.0), (("a",), 1.0), (("b",), 1.0)],
                         {"a": 1.0, "b": 2.0})
    assert rates == pytest.approx([0.5, 0.5, 1.5])
    # Equal capacities: everyone gets 1/2 (both links saturate together).
    assert maxmin_rates([(("a", "b"), 1.0), (("a",), 1.0), (("b",), 1.0)],
                        {"a": 1.0, "b": 1.0}) == [0.5, 0.5, 0.5]


def test_weight_equals_enumerated_copies():
    cap = {"a": 6.0, "b": 4.0}
    weighted = maxmin_rates([(("a", "b"), 2.0), (("a",), 1.0)], cap)
    enumerated = maxmin_rates([(("a", "b"), 1.0), (("a", "b"), 1.0), (("a",), 1.0)], cap)
    assert weighted[0] == pytest.approx(enumerated[0])
    assert weighted[1] == pytest.approx(enumerated[2])
    assert weighted == pytest.approx([2.0, 2.0])      # b: 4/2 each; a left: 6 - 4 = 2


def test_local_flow_and_repeated_edge():
    assert maxmin_rates([((), 1.0)], {}) == [math.inf]
    assert maxmin_rates([((), 1.0)], {}, local_bandwidth_bytes_per_s=7.0) == [7.0]
    # An edge listed twice is loaded twice.
    assert maxmin_rates([(("a", "a"), 1.0)], {"a": 10.0}) == [5.0]


def test_bad_input_raises():
    with pytest.raises(SimwallError):
        maxmin_rates([(("a",), 0.0)], {"a": 1.0})
    with pytest.raises(SimwallError):
        maxmin_rates([(("a",), 1.0)], {"a": -1.0})


flow_sets = st.lists(
    st.tuples(st.lists(st.sampled_from("abcde"), min_size=1, max_size=3, unique=True),
              st.integers(1, 3)),
    min_size=1, max_size=8)
caps = st.fixed_dictionaries({e: st.floats(0.5, 100.0) for e in "abcde"})


@PROPS
@given(flow_sets, caps)
def test_maxmin_feasible_and_every_flow_bottlenecked(flows, cap):
    rates = maxmin_rates([(tuple(e), float(w)) for e, w in flows], cap)
    load = {e: 0.0 for e in cap}
    for (edges, w), r in zip(flows, rates):
        for e in edges:
            load[e] += w * r
    for e in cap:
        assert load[e] <= cap[e] * (1 + 1e-9)
    # Max-min optimality: each flow crosses a saturated edge where it has a maximal rate.
    for (edges, _), r in zip(flows, rates):
        ok = False
        for e in edges:
            if load[e] >= cap[e] * (1 - 1e-9):
                others = [rr for (ee, _), rr in zip(flows, rates) if e in ee]
                ok = ok or r >= max(others) * (1 - 1e-9)
        assert ok


@PROPS
@given(flow_sets, caps, st.floats(1.0, 4.0))
def test_scaling_every_capacity_scales_drain_time(flows, cap, factor):
    batch = [(tuple(e), 100.0 * (i + 1), float(w)) for i, (e, w) in enumerate(flows)]
    before = drain_time_s(batch, cap)
    after = drain_time_s(batch, {e: c * factor for e, c in cap.items()})
    assert after == pytest.approx(before / factor, rel=1e-9)


def test_one_faster_edge_can_slow_the_last_flow():
    # Max-min fairness does not make the batch finish time monotone in one edge's
    # capacity (found by a property search): doubling c lets the [c, a] flow take more of
    # a, so the flow on [a, b] finishes later. Callers must not assume monotonicity.
    flows = [(("a",), 1.0, 1.0), (("a", "b"), 2.0, 1.0), (("c", "a"), 1.0, 1.0)]
    cap = {"a": 4.0, "b": 2.0, "c": 1.0}
    assert drain_time_s(flows, {**cap, "c": 2.0}) > drain_time_s(flows, cap)


def test_drain_time_survivor_speeds_up():
    # Flows of 1 and 2 bytes on one edge of 1 B/s: both at 1/2 until t=2 (first done),
    # then the second alone at 1 B/s for its last byte: t = 3.
    assert drain_time_s([(("a",), 1.0, 1.0), (("a",), 2.0, 1.0)], {"a": 1.0}) == \
        pytest.approx(3.0)


# --- FlowNetwork -----------------------------------------------------------------------

def _run(transfers, cap):
    """transfers: (start_s, edges, bytes, weight, latency_s); returns finish times."""
    env = simpy.Environment()
    net = FlowNetwork(env, cap)
    done = {}

    def proc(i, start, edges, nbytes, w, lat):
        yield env.timeout(start)
        yield net.transfer(edges, nbytes, weight=w, latency_s=lat)
        done[i] = env.now

    for i, t in enumerate(transfers):
        env.process(proc(i, *t))
    env.run()
    return [done[i] for i in range(len(transfers))], net


def test_single_transfer_takes_bytes_over_bandwidth():
    (t,), net = _run([(0.0, ("a", "b"), 100.0, 1.0, 0.0)], {"a": 10.0, "b": 20.0})
    assert t == pytest.approx(10.0)
    assert net.edge_bytes == pytest.approx({"a": 100.0, "b": 100.0})
    assert net.edge_busy_s == pytest.approx({"a": 10.0, "b": 10.0})


def test_latency_delays_start():
    (t,), _ = _run([(0.0, ("a",), 100.0, 1.0, 2.5)], {"a": 10.0})
    assert t == pytest.approx(12.5)


def test_second_transfer_halfway_slows_the_first():
    # A: 100 B alone at 10 B/s from t=0; B: 100 B joins at t=5 (A has 50 B left).
    # Both at 5 B/s: A done at 5 + 50/5 = 15 (B has 50 B left), B alone: 15 + 50/10 = 20.
    (ta, tb), net = _run([(0.0, ("a",), 100.0, 1.0, 0.0), (5.0, ("a",), 100.0, 1.0, 0.0)],
                         {"a": 10.0})
    assert (ta, tb) == pytest.approx((15.0, 20.0))
    assert net.edge_bytes["a"] == pytest.approx(200.0)      # bytes conserved
    assert net.edge_busy_s["a"] == pytest.approx(20.0)


def test_weighted_transfer_equals_two_copies():
    (tw,), net_w = _run([(0.0, ("a",), 100.0, 2.0, 0.0)], {"a": 10.0})
    (t1, t2), net_2 = _run([(0.0, ("a",), 100.0, 1.0, 0.0)] * 2, {"a": 10.0})
    assert tw == pytest.approx(20.0) and t1 == t2 == pytest.approx(20.0)
    assert net_w.edge_bytes["a"] == pytest.approx(net_2.edge_bytes["a"]) == \
        pytest.approx(200.0)


def test_zero_bytes_and_local_transfer_are_instant():
    (t0, t1), _ = _run([(1.0, ("a",), 0.0, 1.0, 0.0), (2.0, (), 50.0, 1.0, 0.0)], {"a": 1.0})
    assert (t0, t1) == (1.0, 2.0)


@PROPS
@given(st.lists(st.tuples(st.floats(0.0, 10.0), st.lists(st.sampled_from("abc"), min_size=1,
                                                            max_size=3, unique=True),
                          st.floats(1.0, 1e3)), min_size=1, max_size=10))
def test_flow_network_conserves_bytes_and_is_deterministic(specs):
    cap = {"a": 3.0, "b": 5.0, "c": 7.0}
    transfers = [(s, tuple(e), b, 1.0, 0.0) for s, e, b in specs]
    times, net = _run(transfers, cap)
    times2, _ = _run(transfers, cap)
    assert times == times2                                  # bit-for-bit
    for e in cap:
        expected = sum(b for _, edges, b, _, _ in transfers if e in edges)
        assert net.edge_bytes.get(e, 0.0) == pytest.approx(expected, rel=1e-6)
    # No transfer beats its bottleneck alone.
    for (s, edges, b, _, _), t in zip(transfers, times):
        assert t - s >= b / min(cap[e] for e in edges) * (1 - 1e-9)
    assert net.active_flows == 0


def test_many_concurrent_transfers_all_complete():
    """10,000 transfers of 100 processes over 16 shared links all finish (their speed is
    measured in benchmarks/bench_flows.py, not here)."""
    env = simpy.Environment()
    cap = {("l", i): 1e9 for i in range(16)}
    net = FlowNetwork(env, cap)

    def proc(i):
        for k in range(100):
            yield net.transfer((("l", i % 16), ("l", (i + k) % 16)), 1e6)

    for i in range(100):
        env.process(proc(i))
    env.run()
    assert net.transfers_done == 10_000


def drain_time_reference_s(flows, capacity, local_bandwidth_bytes_per_s=math.inf) -> float:
    """drain_time_s re-solving with maxmin_rates at each finish: the plain statement of
    the model, the oracle for the vectorised version."""
    active = [(tuple(e), float(b), float(w)) for e, b, w in flows if b > 0.0]
    remaining = [b for _, b, _ in active]
    now_s = 0.0
    while active:
        rates = maxmin_rates([(e, w) for e, _, w in active], capacity,
                             local_bandwidth_bytes_per_s)
        finish = [r_b / r if r > 0.0 else math.inf for r_b, r in zip(remaining, rates)]
        dt = min(finish)
        if math.isinf(dt):
            return math.inf if any(r == 0.0 for r in rates) else now_s
        now_s += dt
        keep = []
        for k, flow in enumerate(active):
            left = remaining[k] - rates[k] * dt
            if finish[k] > dt * (1.0 + TIE_REL) and left > flow[1] * DONE_REL:
                keep.append((flow, left))
        active = [f for f, _ in keep]
        remaining = [left for _, left in keep]
    return now_s


drain_sets = st.lists(
    st.tuples(st.lists(st.sampled_from("abcdefg"), min_size=0, max_size=4),
              st.floats(0.0, 1e9), st.integers(1, 4)),
    min_size=1, max_size=24)


@settings(deadline=None, derandomize=True, max_examples=300)
@given(flows=drain_sets, caps=st.lists(st.floats(0.0, 1e10), min_size=7, max_size=7),
       local=st.sampled_from([math.inf, 5e9]))
def test_vectorised_drain_matches_the_plain_model(flows, caps, local):
    """drain_time_s (arrays) and drain_time_reference_s (maxmin_rates re-solved at each
    finish) are the same model: equal up to float rounding, inf in the same cases."""
    cap = dict(zip("abcdefg", caps))
    batch = [(tuple(e), b, w) for e, b, w in flows]
    fast = drain_time_s(batch, cap, local)
    plain = drain_time_reference_s(batch, cap, local)
    if math.isinf(plain):
        assert math.isinf(fast)
    else:
        assert fast == pytest.approx(plain, rel=1e-9, abs=1e-300)


def test_vectorised_drain_is_deterministic_and_handles_empty():
    flows = [((("x", i % 3), ("y", i % 5)), 1e6 * (1 + i % 7), 1.0) for i in range(200)]
    cap = {**{("x", i): 1e9 for i in range(3)}, **{("y", i): 2e9 for i in range(5)}}
    assert drain_time_s(flows, cap) == drain_time_s(flows, cap)
    assert drain_time_s(flows, cap) == pytest.approx(drain_time_reference_s(flows, cap),
                                                     rel=1e-12)
    assert drain_time_s([], cap) == 0.0
    assert drain_time_s([(("x", 0), 0.0, 1.0)], cap) == 0.0


small_batches = st.lists(
    st.tuples(st.lists(st.sampled_from("abcdefg"), min_size=0, max_size=5),
              st.one_of(st.floats(0.0, 1e9), st.sampled_from([0.0, 1.0, 1e9])),
              st.one_of(st.integers(1, 4), st.floats(0.25, 64.0))),
    min_size=1, max_size=64)


@settings(deadline=None, derandomize=True, max_examples=400)
@given(flows=small_batches,
       caps=st.lists(st.one_of(st.floats(0.0, 1e10), st.sampled_from([0.0, 1e9, math.inf])),
                     min_size=7, max_size=7),
       local=st.sampled_from([math.inf, 5e9]))
def test_small_batch_drain_is_the_vectorised_drain_bit_for_bit(flows, caps, local):
    """A batch of up to _VECTOR_FLOWS flows is drained on Python floats (numpy
    stays unimported in a symmetric run); it must give the very double the array code
    gives, inf included, or outputs would move."""
    import simwall
    import simwall.net.flows as flows_module

    cap = dict(zip("abcdefg", caps))
    batch = [(tuple(e), b, w) for e, b, w in flows]
    simwall.clear_caches()                          # drain_time_s is memoised on the shape
    small = drain_time_s(batch, cap, local)
    simwall.clear_caches()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(flows_module, "_VECTOR_FLOWS", 0)       # every batch on arrays
        vectorised = drain_time_s(batch, cap, local)
    assert small == vectorised or (math.isnan(small) and math.isnan(vectorised))
    assert math.copysign(1.0, small) == math.copysign(1.0, vectorised)
