"""What one step puts on the network, and costing one collective together with its record.

Every collective a stage cost charges is costed by :func:`run_collective`, which returns
its seconds and the :class:`Traffic` record of how often the step runs it; the concern
modules (:mod:`.tp`, :mod:`.pp`, :mod:`.dp`, :mod:`.zero`, :mod:`.optimizer`) pass these
records up and :func:`simwall.costing.stage.stage_cost` concatenates them into
``StageCost.traffic``, which :mod:`simwall.costing.linkload` reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import memo
from ..net import collectives
from .groups import placement

__all__ = ["Costed", "Traffic", "run_collective"]


@dataclass(frozen=True)
class Traffic:
    """A collective one step runs ``count`` times: ``kind`` by all ``groups`` at once,
    ``bytes_`` per rank (the full buffer, as in :mod:`simwall.net.collectives`), with
    ``algorithm`` (``'auto'``: each group picks its own) and, on symmetric runs, the
    ``window`` of nodes whose outgoing flows are costed."""

    kind: str
    groups: tuple[tuple[int, ...], ...]
    bytes_: float
    algorithm: str
    count: float
    window: collectives.Window = None


@dataclass(frozen=True)
class Costed:
    """Seconds of one run of something, and the traffic the step records for it (in the
    order it was costed)."""

    s: float = 0.0
    traffic: tuple[Traffic, ...] = ()


def run_collective(topology, kind: str, groups, bytes_: float, count: float,
                   algorithm: str, symmetric: bool) -> Costed:
    """One run of ``kind`` by all ``groups`` at once (``bytes_`` per rank, placed by
    :func:`simwall.costing.groups.placement` with ``algorithm``, the plan's choice), which
    the step runs ``count`` times: its seconds, and one :class:`Traffic` record when
    ``count`` > 0. Nothing to run (no bytes, no groups, groups of one device): zero
    seconds and no record."""
    if bytes_ <= 0 or not groups or len(groups[0]) < 2:
        return Costed()
    if symmetric:
        # Stage 0's groups stand for every stage's: the stages of a symmetric run (and
        # the points of a sweep on one cluster) cost the same few collectives again and
        # again. Memoised per topology (immutable once built), keyed by the inputs.
        key = (kind, tuple(tuple(g) for g in groups), bytes_, algorithm)
        table = memo.table(topology, "run_collective")
        found = table.get(key)
        if found is None:
            found = table[key] = _placed_time(topology, kind, groups, bytes_, algorithm,
                                              symmetric)
        placed, algorithm, window, seconds = found
    else:
        placed, algorithm, window, seconds = _placed_time(topology, kind, groups, bytes_,
                                                          algorithm, symmetric)
    if count > 0:
        return Costed(seconds, (Traffic(kind, placed, float(bytes_), algorithm,
                                        float(count), window),))
    return Costed(seconds)


def _placed_time(topology, kind: str, groups, bytes_: float, algorithm: str,
                 symmetric: bool) -> tuple:
    """``(groups, algorithm, window, seconds)``: ``kind`` placed on the network
    (:func:`~simwall.costing.groups.placement`) and its time."""
    placed, algorithm, window = placement(topology, kind, groups, bytes_, algorithm,
                                          symmetric)
    seconds = collectives.collective_time_s(topology, kind, placed, bytes_, algorithm,
                                            window=window)
    return placed, algorithm, window, seconds
