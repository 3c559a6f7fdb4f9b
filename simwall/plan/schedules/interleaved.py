"""Interleaved 1F1B (Narayanan et al. 2021, Sec. 2.2.2, Fig. 4 bottom)."""

from __future__ import annotations

from .task import Task

__all__ = ["tasks"]


def tasks(pp: int, stage: int, m: int, v: int) -> tuple[Task, ...]:
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

    if m == pp:
        warm = total
    else:
        warm = min((pp - stage - 1) * 2 + (v - 1) * pp, total)
    out: list[Task] = [("F", mb_of(k), chunk_of(k, True)) for k in range(warm)]
    for k in range(total - warm):
        f = k + warm
        out.append(("F", mb_of(f), chunk_of(f, True)))
        out.append(("B", mb_of(k), chunk_of(k, False)))
    out.extend(("B", mb_of(k), chunk_of(k, False)) for k in range(total - warm, total))
    return tuple(out)
