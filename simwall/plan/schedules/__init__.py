"""Pipeline schedules: the order in which one stage runs its forward and backward tasks.

One module per schedule (:mod:`.gpipe`, :mod:`.one_f_one_b`, :mod:`.interleaved`,
:mod:`.zero_bubble`), each
defining ``tasks(pp, stage, m, v) -> tuple[Task, ...]`` (``m`` micro-batches per replica,
``v`` model chunks per stage) and registered by name in :data:`SCHEDULES`
(:data:`simwall.registry.SCHEDULES`); adding a schedule is one new module plus one
registry entry. A task is ``(pass_, micro_batch, local_chunk)`` with ``pass_`` 'F' or
'B' (:data:`Task`), or 'W' in a schedule that splits the backward: its 'B' is then the
input gradient alone and 'W' the weight gradient (:mod:`.zero_bubble`). The engine runs a stage's tasks in this order, each waiting for its
input from the neighbouring stage, so the pipeline bubble comes out of the order and the
dependencies; it is never assumed.
"""

from __future__ import annotations

from ...registry import SCHEDULES
from . import gpipe, interleaved, one_f_one_b, zero_bubble
from .task import Task

__all__ = ["SCHEDULES", "Task", "gpipe", "interleaved", "one_f_one_b", "tasks_for",
           "zero_bubble"]


def tasks_for(schedule: str, pp: int, stage: int, m: int, v: int, extra: int = 0
              ) -> tuple[Task, ...]:
    """The task order of ``stage`` under ``schedule`` (a name in :data:`SCHEDULES`);
    ``extra`` warm-up forwards more (``plan.ep_overlap``: 1F1B and interleaved only)."""
    if extra:
        return SCHEDULES[schedule](pp, stage, m, v, extra)
    return SCHEDULES[schedule](pp, stage, m, v)
