"""GPipe (Huang et al. 2019): all forwards, then all backwards."""

from __future__ import annotations

from .task import Task

__all__ = ["tasks"]


def tasks(pp: int, stage: int, m: int, v: int = 1) -> tuple[Task, ...]:
    """GPipe (Huang et al. 2019): all forwards, then all backwards."""
    return tuple(("F", i, 0) for i in range(m)) + tuple(("B", i, 0) for i in range(m))
