"""PipeDream-Flush 1F1B (Narayanan et al. 2021, Sec. 2.2.1, Fig. 4 top)."""

from __future__ import annotations

from .task import Task

__all__ = ["tasks"]


def tasks(pp: int, stage: int, m: int, v: int = 1) -> tuple[Task, ...]:
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
