"""Interleaved 1F1B (Narayanan et al. 2021, Sec. 2.2.2, Fig. 4 bottom)."""

from __future__ import annotations

from operator import sub

from ...memo import memoized
from .task import Task

__all__ = ["held_at_forwards", "tasks", "warmup"]


def warmup(pp: int, stage: int, m: int, v: int, extra: int = 0) -> int:
    """Forward tasks ``stage`` runs before its first backward (:func:`tasks`); ``extra``
    more with Megatron-Core's combined 1F1B (``plan.ep_overlap``: megatron/core/
    pipeline_parallel/schedules.py adds one to ``num_warmup_microbatches``)."""
    if m == pp:
        return m * v
    return min((pp - stage - 1) * 2 + (v - 1) * pp + extra, m * v)


def tasks(pp: int, stage: int, m: int, v: int, extra: int = 0) -> tuple[Task, ...]:
    """Interleaved 1F1B (Narayanan et al. 2021, Sec. 2.2.2, Fig. 4 bottom).

    Each stage holds ``v`` model chunks; micro-batches go through the chunks in groups of
    ``pp``. Warm-up is ``(pp - stage - 1) * 2 + (v - 1) * pp`` forward tasks (all of them
    when ``m == pp``), as in Megatron-LM's implementation of the paper's schedule.
    Needs ``m % pp == 0``.
    """
    total = m * v

    def chunk_of(k: int, forward: bool) -> int:
        c = (k % (pp * v)) // pp
        return c if forward else v - 1 - c

    def mb_of(k: int) -> int:
        return (k // (pp * v)) * pp + k % pp

    warm = warmup(pp, stage, m, v, extra)
    out: list[Task] = [("F", mb_of(k), chunk_of(k, True)) for k in range(warm)]
    for k in range(total - warm):
        f = k + warm
        out.append(("F", mb_of(f), chunk_of(f, True)))
        out.append(("B", mb_of(k), chunk_of(k, False)))
    out.extend(("B", mb_of(k), chunk_of(k, False)) for k in range(total - warm, total))
    return tuple(out)


@memoized(maxsize=256)
def _forward_counts(pp: int, m: int, v: int) -> tuple[tuple[tuple[int, ...], ...],
                                                       tuple[tuple[int, ...], ...]]:
    """(``F``, ``R``): ``F[n]`` the forward tasks of each local chunk among the first
    ``n`` forwards of :func:`tasks` (the same on every stage), ``R[n]`` the backward
    tasks of each chunk among the first ``n`` backwards (``F[n]`` reversed: backward
    ``k`` runs chunk ``v - 1 - c`` where forward ``k`` runs ``c``)."""
    counts = [0] * v
    f_out = [tuple(counts)]
    for k in range(m * v):
        counts[(k % (pp * v)) // pp] += 1
        f_out.append(tuple(counts))
    return tuple(f_out), tuple(c[::-1] for c in f_out)


def held_at_forwards(pp: int, m: int, v: int, warm: int, first: int = 0,
                     last: int | None = None) -> list[tuple[int, ...]]:
    """Micro-batches each local chunk holds just after each forward task of a stage with
    ``warm`` warm-up forwards (:func:`warmup`) starts, in task order, forwards ``first``
    to ``last`` (excluded; None: all ``m * v``): the same vectors a walk over
    :func:`tasks` counting +1 per F and -1 per B finds (forward ``f`` runs after
    ``max(0, f - warm)`` backwards), from prefix counts shared by every stage."""
    fwd, bwd = _forward_counts(pp, m, v)
    return [fwd[f + 1] if f <= warm else tuple(map(sub, fwd[f + 1], bwd[f - warm]))
            for f in range(first, m * v if last is None else last)]
