"""FlowNetwork and drain_time_s memoise what their inputs determine (a shared
component's rates on its flows' classes, a batch's drain on its shape); these tests check
that the memoised results are the fresh ones bit for bit, and that a batch fires as
env.all_of over its flows would."""

from __future__ import annotations

import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.net.flows import FlowNetwork, drain_time_s

PROPS = settings(deadline=None, derandomize=True, max_examples=40)


def _batched_run(rounds, cap, memo: bool):
    """Each process sends ``rounds`` batches (transfer_all) one after another; finish
    times of every batch, the network's component memo on or off."""
    env = simpy.Environment()
    net = FlowNetwork(env, cap)
    if not memo:
        net._component_rates = _NoMemo()
    done: list[tuple[int, int, float]] = []

    def proc(p, batches):
        for r, batch in enumerate(batches):
            yield net.transfer_all(batch, tag=(p, r))
            done.append((p, r, env.now))

    for p, batches in enumerate(rounds):
        env.process(proc(p, batches))
    env.run()
    return sorted(done), net


class _NoMemo(dict):
    """A component memo that never keeps anything (every re-solve computed afresh)."""

    def __setitem__(self, key, value) -> None:
        pass


@PROPS
@given(st.lists(st.lists(st.lists(st.tuples(
    st.lists(st.sampled_from("abcdef"), min_size=0, max_size=3, unique=True),
    st.sampled_from([0.0, 1.0, 2.5, 4.0]), st.sampled_from([1.0, 2.0])),
    min_size=0, max_size=4), min_size=1, max_size=4), min_size=1, max_size=4),
    st.integers(1, 3))
def test_memoised_component_rates_change_no_finish_time(rounds, repeat):
    """Rates of a shared component are memoised on its flows' routes and weights in
    arrival order; repeating the same batches (lockstep replicas) hits the memo, and every
    finish time is bit-identical to solving each re-solve afresh."""
    cap = {"a": 3.0, "b": 5.0, "c": 7.0, "d": 3.0, "e": 5.0, "f": 11.0}
    rounds = [[tuple((tuple(edges), b, w) for edges, b, w in batch) for batch in batches]
              * repeat for batches in rounds]
    with_memo, net = _batched_run(rounds, cap, memo=True)
    without, _ = _batched_run(rounds, cap, memo=False)
    assert with_memo == without
    assert net.active_flows == 0


def test_transfer_all_fires_once_after_its_last_flow():
    """A batch with a zero-byte flow and two shared ones fires when the slower is done,
    once, and in the same instant as env.all_of over single transfers would."""
    env = simpy.Environment()
    net = FlowNetwork(env, {"a": 2.0, "b": 1.0})
    fired: list[float] = []
    ev = net.transfer_all([(("a",), 0.0, 1.0), (("a",), 2.0, 1.0), (("a", "b"), 2.0, 1.0)])
    ev.callbacks.append(lambda _ev: fired.append(env.now))
    env.run()
    # Both share a (1 byte/s each, b allows 1): 2 bytes take 2 s.
    assert fired == [2.0]
    env2 = simpy.Environment()
    net2 = FlowNetwork(env2, {"a": 2.0, "b": 1.0})
    evs = [net2.transfer(("a",), 0.0), net2.transfer(("a",), 2.0), net2.transfer(("a", "b"), 2.0)]
    env2.run(env2.all_of(evs))
    assert env2.now == fired[0]


def test_drain_time_memo_is_exact_on_translated_batches():
    """Two batches of the same shape on different edges (a translate) drain in the same
    time, bit for bit, whether or not the first one's drain is memoised."""
    from simwall import clear_caches

    cap = {("l", i): 1.0 + i % 3 for i in range(12)}
    first = [((("l", 0), ("l", 1)), 3.0, 1.0), ((("l", 1), ("l", 2)), 5.0, 2.0)]
    moved = [(tuple(("l", j + 3) for _, j in edges), b, w) for edges, b, w in first]
    clear_caches()
    cold = drain_time_s(moved, cap)
    clear_caches()
    first_s = drain_time_s(first, cap)
    assert drain_time_s(moved, cap) == cold == first_s
    # Not every batch is alike: the same shape on edges of other capacities drains apart.
    other = [(tuple(("l", j + 1) for _, j in edges), b, w) for edges, b, w in first]
    assert drain_time_s(other, cap) != first_s
