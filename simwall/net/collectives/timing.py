"""Collectives on a topology, the public entry: their phases, their time alone or many
at once, and a SimPy process running them on a shared network.

An algorithm turns ``(kind, group, bytes_)`` into a tuple of
:class:`~simwall.net.collectives.phases.Phase`. Phases run one after another; inside a
phase every flow ``(src, dst, bytes_)`` runs at once and the phase also pays a latency
term (``steps`` sequential messages). ``algorithm='auto'`` picks per group
(:func:`simwall.net.collectives.chooser.choose_algorithm`). Results are memoised per
topology object (assumed immutable once built).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import SimwallError
from .chooser import Choice, choose_algorithm, protocol_options
from .cost import algorithm_phases, named_time_parts, representative_flows
from .phases import Phase, TopologyLike, Window, check_call
from .protocol import fastest
from .routes import memo_on, route

__all__ = ["collective_choice", "collective_flows", "collective_phases", "collective_time_parts",
           "collective_time_s", "representative_flows", "run_phases"]


def collective_phases(kind: str, group: Sequence[int], bytes_: float, topology: TopologyLike,
                      algorithm: str = "auto", window: Window = None,
                      latency: bool = True) -> tuple[Phase, ...]:
    """Phases of ``kind`` on ``group`` (device ids) moving ``bytes_`` per rank.

    ``algorithm`` is a name in :data:`simwall.registry.COLLECTIVE_ALGORITHMS` or
    ``'auto'`` (:func:`choose_algorithm`). A group of one device, or zero bytes, has no
    phases. ``window``: keep only the flows leaving those nodes
    (:data:`~simwall.net.collectives.phases.Window`); ``latency=False``: leave latency
    terms at 0.
    """
    if algorithm == "auto":
        check_call(kind, group, bytes_)
        if len(group) < 2 or bytes_ == 0.0:
            return ()
        algorithm = choose_algorithm(kind, group, bytes_, topology, window)
    return algorithm_phases(kind, group, bytes_, topology, algorithm, window, latency)


# The architecture contract's name for the same thing.
collective_flows = collective_phases


def collective_time_parts(topology: TopologyLike, kind: str, groups: Sequence[Sequence[int]],
                          bytes_: float, algorithm: str = "auto",
                          weights: Sequence[float] | None = None,
                          window: Window = None) -> tuple[float, float]:
    """``(latency_s, bandwidth_s)`` of ``kind`` run by all ``groups`` at once.

    Phase ``i`` of every group runs concurrently; its latency is the largest of the
    groups' and its bandwidth time the max-min drain time of all their flows together.
    ``weights[g]`` (default 1) says group ``g`` stands for that many identical copies on
    the same links (e.g. several collectives on one group at once). With ``'auto'`` each
    group picks its own algorithm. Where NCCL's model applies to the links, the latency
    is NCCL's for the fastest protocol and the bandwidth time the drain time over that
    protocol's fraction (:func:`collective_choice`, :mod:`.protocol`). Memoised per
    topology.

    ``window`` (from :func:`simwall.net.collectives.symmetry_window`): the groups are
    translations of each other on a periodic topology; only flows leaving the window's
    nodes are put on the network, and the latency is the first group's (its translations
    have the same).
    """
    groups_t = tuple(tuple(g) for g in groups)
    weights_t = None if weights is None else tuple(float(w) for w in weights)
    key = (kind, groups_t, float(bytes_), algorithm, weights_t, window)

    def compute() -> tuple[float, float]:
        if weights_t is not None and len(weights_t) != len(groups):
            raise SimwallError(f"{len(weights_t)} weights for {len(groups)} groups")
        for g in groups_t:
            check_call(kind, g, bytes_)
        if bytes_ == 0.0:
            return (0.0, 0.0)
        return _chosen(topology, kind, groups_t, bytes_, algorithm, weights_t, window)[2:]

    return memo_on(topology, "time", key, compute)


def _chosen(topology: TopologyLike, kind: str, groups_t: tuple[tuple[int, ...], ...],
            bytes_: float, algorithm: str, weights_t: tuple[float, ...] | None,
            window: Window) -> Choice:
    """``(algorithm, protocol, latency_s, bandwidth_s)`` of the groups run together
    (checked; ``bytes_ > 0``): each group's algorithm (its own choice under 'auto'), the
    fastest NCCL protocol for them all (:func:`.chooser.protocol_options`; a mix of
    algorithms keeps the phases' own latency, Simple)."""
    algos = tuple(choose_algorithm(kind, g, bytes_, topology, window)
                  if algorithm == "auto" else algorithm for g in groups_t)
    latency_s, bandwidth_s = named_time_parts(topology, kind, groups_t, bytes_, algos,
                                              weights_t, window)
    if len(set(algos)) != 1:
        return ("mixed", "Simple", latency_s, bandwidth_s)
    return fastest(protocol_options(topology, kind, groups_t, algos[0], latency_s,
                                    bandwidth_s))


def collective_choice(topology: TopologyLike, kind: str, groups: Sequence[Sequence[int]],
                      bytes_: float, algorithm: str = "auto",
                      weights: Sequence[float] | None = None,
                      window: Window = None) -> Choice:
    """``(algorithm, protocol, latency_s, bandwidth_s)`` of ``kind`` run by all ``groups``
    at once: what :func:`collective_time_parts` costs, with the algorithm and NCCL protocol
    it took (:mod:`.protocol`). Zero bytes or single-device groups: ``(candidate,
    'Simple', 0, 0)``. Memoised per topology."""
    groups_t = tuple(tuple(g) for g in groups)
    weights_t = None if weights is None else tuple(float(w) for w in weights)
    key = (kind, groups_t, float(bytes_), algorithm, weights_t, window)

    def compute() -> Choice:
        if weights_t is not None and len(weights_t) != len(groups):
            raise SimwallError(f"{len(weights_t)} weights for {len(groups)} groups")
        for g in groups_t:
            check_call(kind, g, bytes_)
        if bytes_ == 0.0 or all(len(g) < 2 for g in groups_t):
            name = "direct" if kind in ("send_recv", "all_to_all") else (
                "ring" if algorithm == "auto" else algorithm)
            return (name, "Simple", 0.0, 0.0)
        return _chosen(topology, kind, groups_t, bytes_, algorithm, weights_t, window)

    return memo_on(topology, "choice", key, compute)


def collective_time_s(topology: TopologyLike, kind: str, groups: Sequence[Sequence[int]],
                      bytes_: float, algorithm: str = "auto",
                      weights: Sequence[float] | None = None,
                      window: Window = None) -> float:
    """Seconds until every group in ``groups`` has finished ``kind`` of ``bytes_``, all
    starting together and sharing links max-min fairly. See
    :func:`collective_time_parts`."""
    latency_s, bandwidth_s = collective_time_parts(topology, kind, groups, bytes_,
                                                   algorithm, weights, window)
    return latency_s + bandwidth_s


def run_phases(env: Any, net: Any, topology: TopologyLike, phases: Sequence[Phase]) -> Any:
    """SimPy process body running ``phases`` one after another on a
    :class:`simwall.net.flows.FlowNetwork`: each phase waits its latency, then starts all
    its flows and waits for the last. Alone on the network it takes
    :func:`collective_time_s`; sharing it, it takes what the other traffic leaves.

    Use as ``yield env.process(run_phases(env, net, topology, phases))``.
    """
    for phase in phases:
        if phase.latency_s > 0.0:
            yield env.timeout(phase.latency_s)
        events = [net.transfer(route(topology, s, d), b, weight=w)
                  for (s, d, b), w in representative_flows(phase.flows)]
        if events:
            yield env.all_of(events)
