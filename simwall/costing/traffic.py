"""What one step puts on the network, and costing one collective together with its record.

Every collective a stage cost charges is costed by :func:`run_collective`, which returns
its seconds and the :class:`Traffic` record of how often the step runs it; the concern
modules (:mod:`.tp`, :mod:`.pp`, :mod:`.dp`, :mod:`.zero`, :mod:`.optimizer`) pass these
records up and :func:`simwall.costing.stage.stage_cost` concatenates them into
``StageCost.traffic``, which :mod:`simwall.costing.linkload` reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..memo import table
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
    # Memoised per topology (immutable once built): the stage costs of a plan search
    # run the same collectives over and over (plans that differ in ZeRO stage, recompute
    # or schedule keep their TP, PP and DP groups and messages).
    try:
        memo = table(topology, "costing.run_collective")
    except TypeError:                    # not weak-referenceable: do not cache
        return _costed(bytes_, count, *_run_once(topology, kind, groups, bytes_, algorithm,
                                                 symmetric))
    key = (kind, tuple(tuple(g) for g in groups), bytes_, type(bytes_), count, algorithm,
           symmetric)
    found = memo.get(key)
    if found is None:
        # The placement and seconds do not depend on ``count`` (how often the step runs
        # it: micro-batches x layers), so a sweep over the global batch reuses them.
        once_key = key[:4] + key[5:]           # all but count
        once_memo = table(topology, "costing.run_collective.once")
        once = once_memo.get(once_key)
        if once is None:
            once = once_memo[once_key] = _run_once(topology, kind, groups, bytes_,
                                                   algorithm, symmetric)
        found = memo[key] = _costed(bytes_, count, *once)
    return found


def _run_once(topology, kind: str, groups, bytes_: float, algorithm: str, symmetric: bool
              ) -> tuple:
    """``(kind, placed groups, algorithm, window, seconds)`` of one run of ``kind``."""
    placed, algorithm, window = placement(topology, kind, groups, bytes_, algorithm,
                                          symmetric)
    seconds = collectives.collective_time_s(topology, kind, placed, bytes_, algorithm,
                                            window=window)
    return kind, placed, algorithm, window, seconds


def _costed(bytes_: float, count: float, kind: str, placed, algorithm: str, window,
            seconds: float) -> Costed:
    """:class:`Costed` of :func:`_run_once`'s figures run ``count`` times."""
    if count > 0:
        return Costed(seconds, (Traffic(kind, placed, float(bytes_), algorithm,
                                        float(count), window),))
    return Costed(seconds)
