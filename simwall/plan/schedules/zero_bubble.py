"""ZB-H1, the memory-efficient zero-bubble schedule (Qi et al. 2024, "Zero Bubble Pipeline
Parallelism", ICLR 2024, arXiv 2401.10241, Sec. 2.1, Fig. 3 top)."""

from __future__ import annotations

from .task import Task

__all__ = ["tasks"]


def tasks(pp: int, stage: int, m: int, v: int = 1) -> tuple[Task, ...]:
    """ZB-H1 (Qi et al. 2024, Sec. 2.1, Fig. 3 top): the backward is split into B (input
    gradient, 'B') and W (weight gradient, 'W'). Stage ``i`` runs 1F1B's
    ``min(pp - i - 1, m)`` warm-up forwards, then one forward (while any is left) and one
    B per micro-batch; its W passes start ``i`` micro-batches late, one after each B from
    then on, and the ``i`` left over run after the last B, where 1F1B leaves its tail
    bubble. Every stage then has ``pp`` micro-batches whose W is pending at most, the
    first stage (no delay) as many as under 1F1B, so the peak activation memory is
    1F1B's. This is the order of the authors' handcrafted schedule (the
    ``get_hand_schedule`` generator of their playground, huggingface.co/spaces/sail/
    zero-bubble-pipeline-parallellism, hand_schedule.py, with ``warmup_c = 1``).
    """
    warm = min(pp - stage - 1, m)
    delay = pp - 1 - warm           # = stage unless m < pp - stage - 1
    out: list[Task] = [("F", i, 0) for i in range(warm)]
    w_done = 0
    for i in range(m):
        if warm + i < m:
            out.append(("F", warm + i, 0))
        out.append(("B", i, 0))
        if i >= delay:
            out.append(("W", w_done, 0))
            w_done += 1
    out.extend(("W", i, 0) for i in range(w_done, m))
    return tuple(out)
