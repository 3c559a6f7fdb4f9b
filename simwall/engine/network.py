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

__all__ = ["EngineNetwork", "Steps"]

#: A transfer ready to run: per phase, its latency (s) and its flows (edges, bytes, weight).
Steps = tuple[tuple[float, tuple[tuple[tuple, float, float], ...]], ...]

#: Keep the groups of a phase that are copies of each other across rails (a pipeline
#: send's TP ranks, one per NIC; a DP bucket's rings, one per rail) as one object, solved
#: on its rail 0 while what shares its links shares them rail by rail
#: (``FlowNetwork(bundles=True)``, :class:`simwall.net.flows._Bundle`); the same times
#: bit for bit (tests/test_flow_bundles.py runs the engine both ways).
BUNDLE_FLOWS = True


class EngineNetwork:
    """The flows of one simulated step on ``topology``'s links (one FlowNetwork)."""

    def __init__(self, env: simpy.Environment, topology, plan: Plan) -> None:
        self.env = env
        self.topology = topology
        self.plan = plan
        self.flows = FlowNetwork(env, topology.capacity, edge_stats=False,
                                 bundles=BUNDLE_FLOWS)
        self.transfers = 0
        self._steps: dict[tuple[int, int | None], tuple[Sequence[Traffic], Steps]] = {}
        self._by_replica: dict[int, tuple[Traffic, dict[int, tuple]]] = {}
        self._protocols: dict[int, tuple[Traffic, tuple[str, float | None, float]]] = {}

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
            if batch:
                yield self.flows.transfer_all(batch, tag)

    def summary(self) -> dict:
        """What ran on the network: transfers, flows, and the rate re-solves in which two
        transfers the costing priced apart shared a link (0: every transfer took what
        it was costed at)."""
        return {"transfers": self.transfers, "flows": self.flows.transfers_done,
                "shared_resolves": self.flows.shared_resolves}
