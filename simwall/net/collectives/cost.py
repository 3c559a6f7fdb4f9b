"""The time of named algorithms on a topology (no choosing: :mod:`.chooser` picks, using
this; :mod:`.timing` is the public entry).

A phase's bandwidth time is the fluid max-min drain time of its flows
(:func:`simwall.net.flows.drain_time_s`), so groups that run at once share links fairly;
phases run one after another.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import SimwallError
from ...registry import COLLECTIVE_ALGORITHMS
from ..flows import drain_time_s
from .direct import direct_phases
from .phases import Flow, Phase, TopologyLike, Window, check_call
from .routes import memo_on, numbered_routes
from .symmetry import block_translate_all

__all__ = ["algorithm_phases", "named_time_parts", "phase_time_s", "representative_flows"]


def algorithm_phases(kind: str, group: Sequence[int], bytes_: float, topology: TopologyLike,
                     algorithm: str, window: Window = None,
                     latency: bool = True) -> tuple[Phase, ...]:
    """Phases of ``kind`` on ``group`` by the registered ``algorithm``
    (:data:`simwall.registry.COLLECTIVE_ALGORITHMS`; send_recv and all_to_all are
    always direct). See
    :func:`simwall.net.collectives.collective_phases`."""
    check_call(kind, group, bytes_)
    if len(group) < 2 or bytes_ == 0.0:
        return ()
    fn = COLLECTIVE_ALGORITHMS.get(algorithm)
    if fn is None:
        raise SimwallError(f"unknown collective algorithm '{algorithm}'; expected 'auto' or"
                           f" one of {sorted(COLLECTIVE_ALGORITHMS)}")
    if kind == "send_recv":
        return direct_phases(kind, group, bytes_, topology)
    if kind == "all_to_all":                 # every pair at once, whatever the algorithm
        return direct_phases(kind, group, bytes_, topology, window, latency)
    return fn(kind, group, bytes_, topology, window, latency)


def representative_flows(flows: Sequence[Flow], weights: Sequence[float] | None = None
                         ) -> list[tuple[Flow, float]]:
    """Identical ``(src, dst, bytes_)`` flows merged into one with a weight (count).

    Merging is exact under max-min sharing: ``weight`` copies on the same route get the
    same share as enumerated ones (:func:`simwall.net.flows.maxmin_rates`). Order: first
    appearance. Translated groups on *different* links are not identical flows: pass them
    enumerated (routes are cached, so this stays cheap).
    """
    merged: dict[Flow, float] = {}
    for i, f in enumerate(flows):
        merged[f] = merged.get(f, 0.0) + (1.0 if weights is None else float(weights[i]))
    return list(merged.items())


def phase_time_s(phases_per_group: Sequence[tuple[Phase, ...]],
                 weights: Sequence[float], topology: TopologyLike) -> tuple[float, float]:
    """``(latency_s, bandwidth_s)`` of the groups' phase lists run side by side: phase i
    of every group at once, its latency the largest, its flows drained together."""
    latency_s = 0.0
    bandwidth_s = 0.0
    for i in range(max((len(p) for p in phases_per_group), default=0)):
        flows: list[Flow] = []
        fw: list[float] = []
        lat = 0.0
        for phases, w in zip(phases_per_group, weights):
            if i < len(phases):
                flows.extend(phases[i].flows)
                fw.extend([w] * len(phases[i].flows))
                lat = max(lat, phases[i].latency_s)
        latency_s += lat
        merged = representative_flows(flows, fw)
        paths, capacity = numbered_routes(topology, [(s, d) for (s, d, _), _ in merged])
        batch = [(r, b, w) for r, ((_, _, b), w) in zip(paths, merged)]
        bandwidth_s += drain_time_s(batch, capacity)
    return latency_s, bandwidth_s


def _unit_time_s(topology: TopologyLike, kind: str, groups: tuple[tuple[int, ...], ...],
                 algorithms: tuple[str, ...], weights_t: tuple[float, ...] | None,
                 window: Window) -> tuple[float, float]:
    """(latency_s, bandwidth seconds per byte) of ``groups`` each running its algorithm.
    Memoised per topology on the groups moved together by whole repeating blocks
    (:func:`~simwall.net.collectives.symmetry.block_translate_all`; costed on the moved
    groups, the same doubles): every stage's pipeline sends and DP groups of a
    per-device costing are a translation of the first stage's."""
    if window is None:
        groups = block_translate_all(groups, topology)

    def compute() -> tuple[float, float]:
        phases = [algorithm_phases(kind, g, 1.0, topology, a, window,
                                   latency=window is None or i == 0)
                  for i, (g, a) in enumerate(zip(groups, algorithms))]
        ws = [1.0] * len(groups) if weights_t is None else list(weights_t)
        return phase_time_s(phases, ws, topology)
    return memo_on(topology, "unit", (kind, groups, algorithms, weights_t, window), compute)


def named_time_parts(topology: TopologyLike, kind: str, groups: tuple[tuple[int, ...], ...],
                     bytes_: float, algorithms: tuple[str, ...],
                     weights_t: tuple[float, ...] | None,
                     window: Window) -> tuple[float, float]:
    """``(latency_s, bandwidth_s)`` of ``groups`` (checked, ``bytes_ > 0``), group ``g``
    running ``algorithms[g]``.

    Every flow is a fixed fraction of bytes_, so the fluid drain time is bytes_ times that
    of one byte (rates do not depend on sizes) and the latency does not depend on it: one
    byte is costed once per (groups, algorithms) and scaled."""
    latency_s, per_byte_s = _unit_time_s(topology, kind, groups, algorithms, weights_t,
                                         window)
    return (latency_s, per_byte_s * float(bytes_))
