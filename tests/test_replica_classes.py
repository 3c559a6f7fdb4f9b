"""Per-device steps simulated by classes of DP replicas (simwall.engine.step
REPLICA_CLASSES): one set of pipeline streams per class of replicas that are copies of
each other, every member's flows on the shared network, stats copied to every member.
These tests check that it changes nothing: the whole result, bit for bit, against the
same step simulated replica by replica, on several topologies, with faults, stragglers
and mixed device kinds, and through the paths where a class splits or the step falls
back to one replica at a time."""

from __future__ import annotations

import pytest
import simpy

from simwall import clear_caches
from simwall.api import simulate
from simwall.config import load_cluster
from simwall.engine import network as engine_network
from simwall.engine import step as engine_step
from simwall.net import build_topology
from simwall.net.flows import FlowNetwork

# Llama 2 7B on 8 DGX A100 nodes, TP 4 x PP 2 x DP 8, 8 micro-batches per replica.
BASE = {"cluster.nodes": 8, "plan.tp": 4, "plan.pp": 2, "training.micro_batch": 1,
        "training.global_batch": 64}

CASES = {
    "fat_tree": {},
    "fat_tree-oversubscribed": {"cluster.inter.switch_radix": 8,
                                "cluster.inter.oversubscription": 2.0},
    "fat_tree3": {"cluster.inter.topology": "fat_tree3", "cluster.inter.switch_radix": 8},
    "rail_only": {"cluster.inter.topology": "rail_only"},
    "dragonfly": {"cluster.inter.topology": "dragonfly", "cluster.inter.router_nodes": 1,
                  "cluster.inter.group_routers": 4, "cluster.inter.global_links": 2},
    "multi_plane": {"cluster.inter.topology": "multi_plane", "cluster.inter.planes": 2},
    "degraded-nic": {"cluster.faults.links": [{"between": ["dev3", "nic0.3"],
                                               "bandwidth_factor": 0.1}]},
    "failed-nic": {"cluster.faults.links": [{"between": ["dev3", "nic0.3"],
                                             "bandwidth_factor": 0.0}]},
    "straggler": {"cluster.faults.stragglers": [{"device": 9, "slowdown": 0.5}]},
    "tp8-pp1": {"plan.tp": 8, "plan.pp": 1},
    "interleaved": {"plan.virtual_stages": 2, "plan.schedule": "interleaved"},
    "zero_bubble": {"plan.schedule": "zero_bubble"},
}


@pytest.fixture
def attempts(monkeypatch):
    """Every classed run tried: ('ok', classes, micro-batches) or ('diverged', split or
    None, micro-batches); BASE's step (8 per replica) is found on one of 2 first."""
    seen: list[tuple] = []
    real = engine_step._simulate_class

    def counted(plan, costs, classes, topology, caches=None):
        try:
            run = real(plan, costs, classes, topology, caches)
        except engine_network.ClassDiverged as err:
            seen.append(("diverged", err.split, plan.micro_batches))
            raise
        seen.append(("ok", [tuple(c) for c in classes], plan.micro_batches))
        return run

    monkeypatch.setattr(engine_step, "_simulate_class", counted)
    return seen


def _run(classes: bool, monkeypatch, workload="llama2-7b", cluster="dgx-a100",
         **over) -> str:
    monkeypatch.setattr(engine_step, "REPLICA_CLASSES", classes)
    clear_caches()
    return simulate(workload, cluster, per_device=True, **over).to_json()


@pytest.mark.parametrize("case", sorted(CASES))
def test_classed_step_equals_replica_by_replica(case, attempts, monkeypatch):
    over = {**BASE, **CASES[case]}
    classed = _run(True, monkeypatch, **over)
    assert attempts                        # the classed engine was tried
    one_by_one = _run(False, monkeypatch, **over)
    assert classed == one_by_one


def test_symmetric_fat_tree_runs_as_one_class(attempts, monkeypatch):
    """The fault-free fat-tree's 8 replicas run as one class, first time (on the short
    step that finds the classes, then on the whole step)."""
    _run(True, monkeypatch, **BASE)
    assert attempts == [("ok", [tuple(range(8))], 2), ("ok", [tuple(range(8))], 8)]


def test_straggler_makes_a_class_of_its_own(attempts, monkeypatch):
    """A straggler's replica (device 9: replica 2 of stage 0) is its own class."""
    _run(True, monkeypatch, **BASE, **CASES["straggler"])
    assert attempts[-1] == ("ok", [(0, 1, 3, 4, 5, 6, 7), (2,)], 8)


def test_mixed_kinds_equal_replica_by_replica(attempts, monkeypatch):
    mixed = {"cluster.nodes": 4, "plan.tp": 8, "plan.pp": 1, "training.global_batch": 64,
             "cluster.mixed": [{"nodes": [2], "device": "A100-SXM4-80GB"}]}
    classed = _run(True, monkeypatch, "llama2-7b", "dgx-h100", **mixed)
    assert attempts and attempts[-1][0] == "ok" and len(attempts[-1][1]) == 2
    assert classed == _run(False, monkeypatch, "llama2-7b", "dgx-h100", **mixed)


def test_degraded_link_splits_the_class_and_reruns(attempts, monkeypatch):
    """The replica behind the degraded NIC finishes its sends apart: the class splits
    there and the step is run again with two classes (the same result, test above)."""
    _run(True, monkeypatch, **BASE, **CASES["degraded-nic"])
    assert attempts[0][0] == "diverged" and attempts[0][1] is not None
    assert sorted(map(len, attempts[0][1])) == [1, 7]
    assert attempts[-1][0] == "ok" and len(attempts[-1][1]) == 2 and attempts[-1][2] == 8


def test_unsplittable_divergence_falls_back_to_replica_by_replica(attempts, monkeypatch):
    """A classed run stopped where nothing says how to split (here: every class send
    refused) is simulated replica by replica, bit for bit as without classes."""
    def refuse(self, tag):
        raise engine_network.ClassDiverged("refused by the test")

    monkeypatch.setattr(engine_network.EngineNetwork, "_check_send", refuse)
    classed = _run(True, monkeypatch, **BASE)
    assert attempts == [("diverged", None, 2)]      # the short step: no classes to be had
    assert classed == _run(False, monkeypatch, **BASE)


def test_refinement_is_bounded(attempts, monkeypatch):
    """A class that keeps splitting stops after CLASS_ATTEMPTS classed runs and the step
    is simulated replica by replica."""
    real = engine_network.EngineNetwork.class_steps

    def split_off_first(self, parts, members):
        if len(members) > 1:
            raise engine_network.ClassDiverged("split by the test",
                                               [[members[0]], list(members[1:])])
        return real(self, parts, members)

    monkeypatch.setattr(engine_network.EngineNetwork, "class_steps", split_off_first)
    classed = _run(True, monkeypatch, **BASE)
    assert len(attempts) == engine_step.CLASS_ATTEMPTS
    assert all(a[0] == "diverged" for a in attempts)
    assert classed == _run(False, monkeypatch, **BASE)


def test_wrong_class_stats_would_be_caught(monkeypatch):
    """The comparison above can fail: stats copied to the members with one number off
    give another result."""
    real = engine_step._simulate_class

    def off_by_a_bit(plan, costs, classes, topology, caches=None):
        run = real(plan, costs, classes, topology, caches)
        st = run.stats[(0, 1)]
        st.activation_peak_bytes = st.activation_peak_bytes * (1 + 2 ** -40)
        return run

    monkeypatch.setattr(engine_step, "_simulate_class", off_by_a_bit)
    assert _run(True, monkeypatch, **BASE) != _run(False, monkeypatch, **BASE)


def test_transfer_each_starts_batches_in_order_across_calls():
    """Batches held by transfer_each at one instant start in their order numbers across
    calls: the same finish times, bit for bit, as transfer_all called in that order; and
    groups() tells the batches that finished apart."""
    cap = {"a": 4.0, "b": 4.0, "s": 3.0, "c": 4.0}
    batches = {0: [(("a", "s"), 5.0, 1.0)], 1: [(("b", "s"), 5.0, 1.0)],
               2: [(("c",), 9.0, 1.0)], 3: [(("a",), 1.0, 1.0)]}

    def finish_times(staged: bool) -> dict[int, float]:
        env = simpy.Environment()
        net = FlowNetwork(env, cap, edge_stats=False, bundles=True)
        done: dict[int, float] = {}
        out: dict = {}

        def mark(key):
            return lambda _ev: done.__setitem__(key, env.now)

        if staged:                     # two calls, their order numbers interleaved
            for keys in ((0, 2), (1, 3)):
                first, groups = net.transfer_each([batches[k] for k in keys], keys, "t")
                first.callbacks.append(mark(keys[0]))
                out[keys] = groups
        else:
            for k in sorted(batches):
                net.transfer_all(batches[k], "t").callbacks.append(mark(k))
        env.run()
        if staged:
            assert sorted(out[(0, 2)]()) == [[0], [2]]          # finished apart
            assert sorted(out[(1, 3)]()) == [[1], [3]]
        return done

    direct, staged = finish_times(False), finish_times(True)
    assert staged == {k: direct[k] for k in (0, 1)}


def test_long_step_finds_its_classes_on_a_short_one(attempts, monkeypatch):
    """32 micro-batches per replica: the classes are found on a step of 2 (the split at
    the degraded NIC), and the whole step then runs once, as two classes; the same
    result as replica by replica."""
    over = {**BASE, **CASES["degraded-nic"], "training.global_batch": 256}
    classed = _run(True, monkeypatch, **over)
    assert [(a[0], a[2]) for a in attempts] == [("diverged", 2), ("ok", 2), ("ok", 32)]
    assert attempts[1][1] == attempts[2][1] and len(attempts[2][1]) == 2
    assert classed == _run(False, monkeypatch, **over)


def test_class_sends_starting_with_other_transfers_stop_the_classed_run():
    """Batches held by a class send that start in one re-solve with a batch started
    directly at that instant (their order in the one-by-one run is not known): the
    classed network raises ClassDiverged, with nothing to split by; alone they run."""
    topo = build_topology(load_cluster("dgx-a100", [("nodes", 2)]))
    edges = tuple(topo.route(0, 9))
    for direct in (True, False):
        env = simpy.Environment()
        net = engine_network.EngineNetwork(env, topo, None, classed=True)
        if direct:
            net.flows.transfer_all(((edges, 1e6, 1.0),), "dp")
        net.flows.transfer_each([((edges, 1e6, 1.0),)], [0], "pp")
        if direct:
            with pytest.raises(engine_network.ClassDiverged) as err:
                env.run()
            assert err.value.split is None
        else:
            env.run()
            assert net.flows.transfers_done == 1
