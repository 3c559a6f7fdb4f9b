"""Pipeline schedules: the order in which one stage runs its forward and backward tasks.

A schedule is a plain function ``(pp, stage, m, v) -> tuple[Task, ...]`` in the
:data:`SCHEDULES` registry; adding one is one entry. A task is ``(pass_, micro_batch,
local_chunk)`` with ``pass_`` 'F' or 'B'. The engine runs a stage's tasks in this order,
each waiting for its input from the neighbouring stage, so the pipeline bubble comes out
of the order and the dependencies; it is never assumed.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["SCHEDULES", "Task", "gpipe", "interleaved", "one_f_one_b", "tasks_for"]

Task = tuple[str, int, int]


def gpipe(pp: int, stage: int, m: int, v: int = 1) -> tuple[Task, ...]:
    """GPipe (Huang et al. 2019): all forwards, then all backwards."""
    return tuple(("F", i, 0) for i in range(m)) + tuple(("B", i, 0) for i in range(m))


def one_f_one_b(pp: int, stage: int, m: int, v: int = 1) -> tuple[Task, ...]:
    """PipeDream-Flush 1F1B (Narayanan et al. 2021, Sec. 2.2.1, Fig. 4 top).

    Stage ``i`` runs ``min(pp - i - 1, m)`` warm-up forwards, then alternates one forward
    and one backward, then drains the remaining backwards.
    """
    warm = min(pp - stage - 1, m)
    out: list[Task] = [("F", i, 0) for i in range(warm)]
    for i in range(m - warm):
        out.append(("F", warm + i, 0))
        out.append(("B", i, 0))
    out.extend(("B", i, 0) for i in range(m - warm, m))
    return tuple(out)


def interleaved(pp: int, stage: int, m: int, v: int) -> tuple[Task, ...]:
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


SCHEDULES: dict[str, Callable[[int, int, int, int], tuple[Task, ...]]] = {
    "gpipe": gpipe,
    "1f1b": one_f_one_b,
    "interleaved": interleaved,
}


def tasks_for(schedule: str, pp: int, stage: int, m: int, v: int) -> tuple[Task, ...]:
    """The task order of ``stage`` under ``schedule``."""
    return SCHEDULES[schedule](pp, stage, m, v)
