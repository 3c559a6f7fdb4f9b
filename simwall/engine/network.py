"""The step's one shared network: transfers as flows on the topology (per-device runs).

In a per-device run the pipeline sends (:mod:`.pipeline`) and the DP gradient buckets
(:mod:`.sync`) do not wait a precomputed duration: each runs the phases of the
collectives it was costed from (:class:`simwall.costing.stage.StageTransfers`, built by
the same :mod:`simwall.net.collectives` functions as the costing) as flows on ONE
:class:`simwall.net.flows.FlowNetwork` whose edges are the topology's links. Concurrent
transfers share every link max-min fairly over time, so a DP reduction and a pipeline
send crossing one NIC slow each other down, and how much of either is exposed follows
from the events.

A transfer alone on the network takes what the costing gave it: phase ``i`` of all its
groups waits the largest of their latencies, then their flows run together until the
last one is done (:func:`simwall.net.collectives.cost.phase_time_s` is the same fluid
model, drained without SimPy). Tensor-parallel collectives and ZeRO-3 gathers stay
folded into the compute durations (they sit on the compute stream's critical path
and are not put on the network), as do the tied-embedding all-reduce and the ZeRO 1/2
parameter all-gather of the step's tail.

Classes of DP replicas (:data:`simwall.engine.step.REPLICA_CLASSES`): where replicas are
copies of each other, one set of pipeline streams runs per class and each of its sends
puts every member's flows on this network (:meth:`EngineNetwork.run_class`), held to the
instant's re-solve and started in replica order across the classes sending then
(:meth:`simwall.net.flows.FlowNetwork.transfer_each`), as the members' own sends are.
The network therefore does the one-by-one run's work (its cost still grows with the
replicas; the streams' does not), and checks what the class assumes:
:class:`ClassDiverged` where members finish apart (the class splits) or where a
transfer meets other network events at its instant (SimPy's order of those would
decide, and the classed run does not reproduce it: the step runs replica by replica).
"""

from __future__ import annotations

from collections.abc import Sequence

import simpy

from ..costing import Traffic
from ..net import collectives
from ..net.collectives.cost import named_time_parts
from ..net.collectives.phases import merge_phases
from ..net.collectives.routes import route
from ..net.flows import FlowNetwork
from ..plan import Plan

__all__ = ["ClassDiverged", "EngineNetwork", "Steps"]

#: A transfer ready to run: per phase, its latency (s) and its flows (edges, bytes, weight).
Steps = tuple[tuple[float, tuple[tuple[tuple, float, float], ...]], ...]

#: Keep the groups of a phase that are copies of each other across rails (a pipeline
#: send's TP ranks, one per NIC; a DP bucket's rings, one per rail) as one object, solved
#: on its rail 0 while what shares its links shares them rail by rail
#: (``FlowNetwork(bundles=True)``, :class:`simwall.net.flows._Bundle`); the same times
#: bit for bit (tests/test_flow_bundles.py runs the engine both ways).
BUNDLE_FLOWS = True


class ClassDiverged(Exception):
    """A class of DP replicas simulated once (:class:`EngineNetwork` with ``classed``,
    :func:`simwall.engine.step.simulate_step`) would no longer behave as its members
    simulated one by one: their sends differ in shape or finish apart, or a transfer
    starts at an instant where the order of the one-by-one run's events is not known to
    be the classed run's. ``split``: where the members' sends finished apart, the
    members grouped by when (the classes to try next); None where nothing tells."""

    def __init__(self, message: str, split: list[list[int]] | None = None) -> None:
        # Both in args: SimPy re-raises a failed process's exception as a copy made from
        # them (type(e)(*e.args)).
        super().__init__(message, split)
        self.split = split

    def __str__(self) -> str:
        return str(self.args[0])


class EngineNetwork:
    """The flows of one simulated step on ``topology``'s links (one FlowNetwork).

    ``classed``: the step's DP replicas are simulated as one class (one set of pipeline
    streams standing for every replica, :class:`simwall.engine.pipeline.Pipeline` with
    ``classes``). Each class send still puts every member's flows on the network, batch
    by batch in replica order, as the members' own sends would at that instant
    (:meth:`run_class`), so the network is the one-by-one run's; what the class cannot
    tell apart raises :class:`ClassDiverged`: members whose sends differ in their phases,
    members whose flows do not all finish in one re-solve, a transfer that starts,
    other than right after the completion that caused it, at an instant at which the
    network has already done something (:meth:`check_quiet`), and class sends that start
    in one re-solve with other transfers (:meth:`_mixed_instant`): where which comes
    first depends on SimPy's order of events, which the classed run does not
    reproduce."""

    def __init__(self, env: simpy.Environment, topology, plan: Plan,
                 classed: bool = False, caches: dict | None = None) -> None:
        self.env = env
        self.topology = topology
        self.plan = plan
        self.classed = classed
        self._class_steps: dict[tuple[int, int], tuple[Sequence[Traffic], list[Steps]]] = {}
        self._instant: tuple = (None, None)      # (instant, tag) of class sends started
        self.transfers = 0
        self._steps: dict[tuple[int, int | None], tuple[Sequence[Traffic], Steps]] = {}
        self._by_replica: dict[int, tuple[Traffic, dict[int, tuple]]] = {}
        self._protocols: dict[int, tuple[Traffic, tuple[str, float | None, float]]] = {}
        flow_caches = None
        if caches is not None:
            # Runs of one step (classed attempts, the fallback) share what they work out:
            # keyed on the transfers' objects, which live as long as the step's costs.
            for name in ("_steps", "_by_replica", "_protocols"):
                setattr(self, name, caches.setdefault(name, getattr(self, name)))
            flow_caches = caches.setdefault(("flows", BUNDLE_FLOWS), {})
        self.flows = FlowNetwork(env, topology.capacity, edge_stats=False,
                                 bundles=BUNDLE_FLOWS, caches=flow_caches)
        if classed:
            self.flows.staged_with_others = self._mixed_instant

    def steps(self, parts: Sequence[Traffic], replica: int | None = None) -> Steps:
        """The phases of ``parts`` (collectives run one after another, each by all its
        groups at once, phase by phase) as latencies and flows on routes; with
        ``replica``, only the groups of that DP replica (a pipeline send). Cached per
        ``parts`` object (they live in the memoised stage costs)."""
        key = (id(parts), replica)
        hit = self._steps.get(key)
        if hit is not None and hit[0] is parts:
            return hit[1]
        out: list[tuple[float, tuple]] = []
        topo = self.topology
        for part in parts:
            algorithm, latency_s, scale = self._protocol(part)
            groups = part.groups
            if replica is not None:
                groups = self._replica_groups(part).get(replica, ())
            per_group = [collectives.collective_phases(part.kind, g, part.bytes_, topo,
                                                       algorithm, part.window)
                         for g in groups]
            for i, phase in enumerate(merge_phases(per_group)):
                batch = tuple((route(topo, s, d), b * scale, w) for (s, d, b), w
                              in collectives.representative_flows(phase.flows))
                lat = phase.latency_s if latency_s is None else (latency_s if i == 0 else 0.0)
                out.append((lat, batch))
        steps = tuple(out)
        self._steps[key] = (parts, steps)
        return steps

    def _replica_groups(self, part: Traffic) -> dict[int, tuple]:
        """``part``'s groups by the DP replica of their first device, in their order:
        a stream is a DP replica, its cp ranks of the DP x CP group (ranks replica * cp
        .. replica * cp + cp - 1, plan.layout). Split once per ``part`` (filtering the
        groups anew for each replica cost replicas x groups)."""
        hit = self._by_replica.get(id(part))
        if hit is not None and hit[0] is part:
            return hit[1]
        plan = self.plan
        split: dict[int, list] = {}
        for g in part.groups:
            split.setdefault(plan.rank_of(g[0])[1] // plan.cp, []).append(g)
        out = {r: tuple(gs) for r, gs in split.items()}
        self._by_replica[id(part)] = (part, out)
        return out

    def _protocol(self, part: Traffic) -> tuple[str, float | None, float]:
        """``(algorithm, latency_s, byte_scale)`` that make ``part`` alone on the network
        take what the costing gave it: the algorithm and NCCL protocol the costing chose
        (:func:`simwall.net.collectives.collective_choice`), its latency paid once before
        the first phase, and the flows' bytes scaled by the protocol's bandwidth fraction
        (time = latency + drain time / fraction, :mod:`simwall.net.collectives.protocol`).
        Where no single algorithm or no NCCL model applies: the phases' own latencies
        (``None``) and bytes. Worked out once per ``part`` object (every replica's
        send of a boundary asks for it; its key holds all the replicas' groups)."""
        hit = self._protocols.get(id(part))
        if hit is not None and hit[0] is part:
            return hit[1]
        out = self._protocol_of(part)
        self._protocols[id(part)] = (part, out)
        return out

    def _protocol_of(self, part: Traffic) -> tuple[str, float | None, float]:
        topo = self.topology
        algorithm, _, latency_s, bandwidth_s = collectives.collective_choice(
            topo, part.kind, part.groups, part.bytes_, part.algorithm, window=part.window)
        if algorithm == "mixed" or bandwidth_s <= 0.0:
            return part.algorithm, None, 1.0
        groups = tuple(tuple(g) for g in part.groups)
        _, raw_s = named_time_parts(topo, part.kind, groups, part.bytes_,
                                                (algorithm,) * len(groups), None,
                                                part.window)
        if raw_s <= 0.0:
            return algorithm, None, 1.0
        return algorithm, latency_s, bandwidth_s / raw_s

    def run(self, steps: Steps, tag):
        """SimPy process body: ``steps`` one after another on the shared network.
        ``tag`` names what the costing priced as one transfer (all DP replicas' sends of
        one micro-batch over one boundary; one bucket of a stage): flows of different
        tags on one link at once are counted as shared (:meth:`summary`)."""
        env = self.env
        self.transfers += 1
        for latency_s, batch in steps:
            if latency_s > 0.0:
                yield env.timeout(latency_s)
                if self.classed:
                    self.check_quiet()
            if batch:
                yield self.flows.transfer_all(batch, tag)

    def class_steps(self, parts: Sequence[Traffic], members: Sequence[int]) -> list[Steps]:
        """:meth:`steps` of ``parts`` for each DP replica of ``members`` (a class, in
        replica order); raises :class:`ClassDiverged` unless they have the same phases
        (latencies, and flows or none, phase by phase). Once per ``parts`` and class."""
        key = (id(parts), members[0])
        hit = self._class_steps.get(key)
        if hit is not None and hit[0] is parts:
            return hit[1]
        out = [self.steps(parts, r) for r in members]
        shapes: dict[tuple, list[int]] = {}
        for r, steps in zip(members, out):
            shapes.setdefault(tuple((lat, bool(b)) for lat, b in steps), []).append(r)
        if len(shapes) > 1:
            raise ClassDiverged(f"replica {members[0]}'s class: sends of other phases",
                                list(shapes.values()))
        self._class_steps[key] = (parts, out)
        return out

    def run_class(self, per_member: Sequence[Steps], members: Sequence[int], tag):
        """SimPy process body: the send of every member of a class (``per_member``, as
        :meth:`class_steps`), phase by phase: each phase's batches put on the network at
        one instant, in replica order among all class sends of that instant (as the
        members' own sends are made), and done when the first member's is, which must be
        when every member's is, in the same re-solve (else :class:`ClassDiverged`, with
        the members grouped by when theirs finished)."""
        env = self.env
        self.transfers += len(per_member)
        for i, (latency_s, batch) in enumerate(per_member[0]):
            if latency_s > 0.0:
                yield env.timeout(latency_s)
                self._check_send(tag)
            elif i == 0:
                self._check_send(tag)
            if batch:
                first, groups = self.flows.transfer_each([s[i][1] for s in per_member],
                                                         members, tag)
                yield first
                split = groups()
                if len(split) > 1:
                    raise ClassDiverged(f"the members' flows of {tag} finished apart", split)

    def _check_send(self, tag) -> None:
        """A class send may start where nothing has happened on the network at this
        instant, or only other class sends of the same transfer (``tag``) not yet
        started (they all start together, in replica order); else :class:`ClassDiverged`."""
        now, flows = self.env.now, self.flows
        if flows.settled_at(now):
            self._instant = (now, tag)
        elif self._instant != (now, tag) or flows.last_flush_s == now:
            raise ClassDiverged(f"a send at {now!r} s meets other network events at that "
                                "instant")

    def _mixed_instant(self) -> None:
        """The network's hook for class sends held to a flush in which other transfers
        start too (a DP bucket started right after a completion, beside a class send's
        next phase): the one-by-one run's order of the two is not known."""
        raise ClassDiverged(f"class sends and other transfers start at {self.env.now!r} s")

    def check_quiet(self) -> None:
        """In a classed run, raise :class:`ClassDiverged` if the network has already done
        something at this instant (:meth:`simwall.net.flows.FlowNetwork.settled_at`)."""
        if self.classed and not self.flows.settled_at(self.env.now):
            raise ClassDiverged(f"a transfer at {self.env.now!r} s meets other network "
                                "events at that instant")

    def summary(self) -> dict:
        """What ran on the network: transfers, flows, and the rate re-solves in which two
        transfers the costing priced apart shared a link (0: every transfer took what
        it was costed at)."""
        return {"transfers": self.transfers, "flows": self.flows.transfers_done,
                "shared_resolves": self.flows.shared_resolves}
