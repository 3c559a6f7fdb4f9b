"""PipeDream-Flush 1F1B (Narayanan et al. 2021, Sec. 2.2.1, Fig. 4 top)."""

from __future__ import annotations

from ...memo import memoized
from .task import Task

__all__ = ["tasks"]


def tasks(pp: int, stage: int, m: int, v: int = 1, extra: int = 0) -> tuple[Task, ...]:
    """PipeDream-Flush 1F1B (Narayanan et al. 2021, Sec. 2.2.1, Fig. 4 top).

    Stage ``i`` runs ``min(pp - i - 1, m)`` warm-up forwards (``extra`` more: Megatron-
    Core's combined 1F1B, ``plan.ep_overlap``), then alternates one forward and one
    backward, then drains the remaining backwards.
    """
    warm = min(pp - stage - 1 + extra, m)
    fwd, bwd = _passes(m)
    steady: list[Task] = [None] * (2 * (m - warm))     # type: ignore[list-item]
    steady[0::2] = fwd[warm:]                          # forward warm + i, then
    steady[1::2] = bwd[:m - warm]                      # backward i
    return fwd[:warm] + tuple(steady) + bwd[m - warm:]


@memoized(maxsize=64)
def _passes(m: int) -> tuple[tuple[Task, ...], tuple[Task, ...]]:
    """The forward and the backward tasks of micro-batches ``0 .. m - 1`` (one chunk), made
    once for every stage of a pipeline."""
    return tuple(("F", i, 0) for i in range(m)), tuple(("B", i, 0) for i in range(m))
