"""Bytes each directed link carries in one training step, and the busiest link (pure).

The traffic is what :mod:`simwall.costing.stage` costs and records in
``StageCost.traffic``, counted per step as the engine runs it: TP collectives per layer and
per micro-batch (forward, backward and full recompute; the embedding and LM-head
collectives), pipeline sends per micro-batch and chunk boundary
(with the scatter/gather all-gather), ZeRO-3 gathers and reduce-scatters per layer and
micro-batch, DP gradient buckets, the tied-embedding all-reduce, the ZeRO 1/2 parameter
all-gather once per step, and the offload PCIe transfers (:mod:`simwall.costing.offload`). Each
collective is split into the flows of its phases (:func:`simwall.net.collectives.
collective_phases`, the same algorithm choice as the costing) and every flow's bytes are
added to every edge of its route (``topology.route``).

A link's capacity is the one the costing divides by: ``topology.capacity`` (bandwidth x
the link class's ``efficiency``), for network and host (PCIe) links alike. A link can be
busy no longer than the step, so ``busy_s = bytes / capacity`` is a lower bound on it.

Symmetric runs (the default: stages are translations of each other and stage 0's groups
stand for every stage's, see :func:`simwall.costing.groups.placement`) account each stage's traffic
on those representative groups, again like the costing (the representative group plus
the groups sharing a node with it, and on a periodic fat-tree only the flows leaving the
first two leaves: :func:`simwall.net.collectives.symmetry_window`, whose links carry what
every leaf's do), and report the busiest link over the stages; links shared by different
stages (a spine carrying several stages' DP traffic) are not summed.
Per-device runs account every group of every stage and sum them per link.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..config import ModelSpec, TrainingSpec
from ..memo import memoized
from ..model import memory
from ..net import Topology, collectives
from ..plan import Plan
from . import offload
from .stage import StageCost
from .traffic import Traffic

__all__ = ["busiest_link", "link_bytes", "link_capacity_bytes_per_s",
           "step_busiest_link", "step_link_bytes"]

Edge = tuple


@memoized(maxsize=65536)
def _unit_link_bytes(topology: Topology, kind: str, group: tuple[int, ...], algorithm: str,
                     window: collectives.Window = None) -> tuple[tuple[Edge, float], ...]:
    """(edge, bytes) of one run of ``kind`` on ``group`` moving 1 byte per rank, edges in
    first-use order. Every algorithm's flows are proportional to the buffer size
    (:mod:`simwall.net.collectives`: fixed fractions of ``bytes_``), so this scales."""
    if kind == "send_recv" and len(group) == 2:
        return tuple((edge, 1.0) for edge in topology.route(group[0], group[1]))
    loads: dict[Edge, float] = {}
    for phase in collectives.collective_phases(kind, group, 1.0, topology, algorithm,
                                               window, latency=False):
        for src, dst, flow_bytes in phase.flows:
            for edge in topology.route(src, dst):
                loads[edge] = loads.get(edge, 0.0) + flow_bytes
    return tuple(loads.items())


def link_bytes(topology: Topology, traffic: Iterable[Traffic],
               into: dict[Edge, float] | None = None) -> dict[Edge, float]:
    """Bytes per directed edge that ``traffic`` puts on ``topology`` (added to ``into``
    when given): every flow of every phase of every group, ``count`` times."""
    loads = {} if into is None else into
    volume: dict[tuple, float] = {}   # (kind, group, algorithm, window) -> count x bytes_
    for t in traffic:
        if t.count <= 0 or t.bytes_ <= 0:
            continue
        for group in t.groups:
            if len(group) < 2:
                continue
            algorithm = t.algorithm
            if t.kind == "send_recv":    # one flow, whatever the algorithm (collectives)
                algorithm = "direct"
            elif algorithm == "auto":    # as collective_phases: each group picks its own
                algorithm = collectives.choose_algorithm(t.kind, group, t.bytes_, topology,
                                                         t.window)
            key = (t.kind, group, algorithm, t.window)
            volume[key] = volume.get(key, 0.0) + t.count * t.bytes_
    for (kind, group, algorithm, window), moved_bytes in volume.items():
        for edge, share in _unit_link_bytes(topology, kind, group, algorithm, window):
            loads[edge] = loads.get(edge, 0.0) + moved_bytes * share
    return loads


def link_capacity_bytes_per_s(topology: Topology, edge: Edge) -> float:
    """The bandwidth the simulation gives ``edge``: ``topology.capacity`` (bandwidth x
    link efficiency), as :mod:`simwall.net.collectives` and :mod:`simwall.costing.offload`
    use it."""
    return float(topology.capacity(edge))


def busiest_link(topology: Topology, loads: Iterable[dict[Edge, float]]) -> dict | None:
    """The edge with the largest ``bytes / capacity`` over the ``loads`` dicts, as
    ``{"link": "nic0.0->leaf0.0", "kind", "link_class", "bytes",
    "capacity_bytes_per_s", "busy_s"}``; None when no link carries anything. Exact ties
    go to the first edge seen."""
    best: dict | None = None
    caps: dict[Edge, float] = {}
    seen: list[int] = []
    for load in loads:
        if id(load) in seen:          # the same stage loads twice (symmetric, memoised)
            continue
        seen.append(id(load))
        for edge, carried in load.items():
            if carried <= 0:
                continue
            cap = caps.get(edge)
            if cap is None:
                cap = caps[edge] = link_capacity_bytes_per_s(topology, edge)
            busy_s = carried / cap if cap > 0 else float("inf")
            if best is None or busy_s > best["busy_s"]:
                attrs = topology.edge_attrs(edge)
                best = {"link": (f"{topology.display_name(edge[0])}->"
                                 f"{topology.display_name(edge[1])}"),
                        "kind": attrs.get("kind"), "link_class": attrs.get("link"),
                        "bytes": carried, "capacity_bytes_per_s": cap, "busy_s": busy_s}
    return best


# --- the traffic of one step (recorded by simwall.costing.stage.stage_cost) -----------------


def _offload_bytes(training: TrainingSpec, plan: Plan, topology: Topology, stage: int,
                   shard: float, layer_params: float, layers: int,
                   symmetric: bool) -> dict[Edge, float]:
    """Host-link bytes of ``stage``'s devices (its first one when ``symmetric``):
    :func:`simwall.costing.offload.step_host_bytes` on each one's host edge; ``shard``:
    the parameters whose optimizer one device owns (:func:`memory.stage_optimizer_shard_params`)."""
    d2h, h2d = offload.step_host_bytes(shard, layer_params, layers, training, plan)
    devices = ([plan.device_of(stage, 0, 0)] if symmetric else
               [plan.device_of(stage, d, t) for d in range(plan.dp_cp) for t in range(plan.tp)])
    out: dict[Edge, float] = {}
    for dev in devices:
        to_host = topology.host_edge(dev)
        if d2h > 0:
            out[to_host] = out.get(to_host, 0.0) + d2h
        if h2d > 0:
            back = (to_host[1], to_host[0])
            out[back] = out.get(back, 0.0) + h2d
    return out


def step_link_bytes(model: ModelSpec, training: TrainingSpec, plan: Plan, topology: Topology,
                    stage_costs: dict[int, StageCost], symmetric: bool
                    ) -> list[dict[Edge, float]]:
    """Bytes per directed edge in one step: one dict per stage when ``symmetric`` (each
    on the representative groups), else one dict for the whole step.
    ``stage_costs[stage]``: the stage's :class:`~simwall.costing.stage.StageCost` (its
    recorded ``traffic``). The dicts may be shared between stages: do not modify them."""
    per_stage = []
    total: dict[Edge, float] = {}
    for stage in range(plan.pp):
        sc = stage_costs[stage]
        host: dict[Edge, float] = {}
        if plan.offload != "none":
            host = _offload_bytes(training, plan, topology, stage,
                                  memory.stage_optimizer_shard_params(model, plan, stage),
                                  memory.layer_params(model, plan.tp),
                                  plan.layers_on_stage(stage), symmetric)
        if symmetric:
            per_stage.append(_loads(topology, _merged(sc.traffic), tuple(host.items())))
            continue
        link_bytes(topology, sc.traffic, total)
        for edge, b in host.items():
            total[edge] = total.get(edge, 0.0) + b
    return per_stage if symmetric else [total]


def _merged(traffic: Iterable[Traffic]) -> tuple[Traffic, ...]:
    """``traffic`` with the runs of one collective on the same groups and bytes as one."""
    counts: dict[tuple, float] = {}
    for t in traffic:
        key = (t.kind, t.groups, t.bytes_, t.algorithm, t.window)
        counts[key] = counts.get(key, 0.0) + t.count
    return tuple(Traffic(kind, groups, bytes_, algorithm, count, window)
                 for (kind, groups, bytes_, algorithm, window), count in counts.items())


@memoized(maxsize=1024)
def _loads(topology: Topology, traffic: tuple[Traffic, ...],
           host: tuple[tuple[Edge, float], ...]) -> dict[Edge, float]:
    """Memoised: stages with the same traffic (symmetric runs) share one dict."""
    out = link_bytes(topology, traffic)
    for edge, b in host:
        out[edge] = out.get(edge, 0.0) + b
    return out


def step_busiest_link(model: ModelSpec, training: TrainingSpec, plan: Plan, topology: Topology,
                      stage_costs: dict[int, StageCost], symmetric: bool) -> dict | None:
    """:func:`busiest_link` of :func:`step_link_bytes`."""
    return busiest_link(topology, step_link_bytes(model, training, plan, topology,
                                                  stage_costs, symmetric))
