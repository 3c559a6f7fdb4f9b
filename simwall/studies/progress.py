"""Progress hooks of the long studies (plan search, check, validate, generations).

The library never prints: a study takes an optional ``progress`` callable and passes
each long loop through it, ``progress(items, total=N or None, desc="what")`` returning
an iterable over the same items (``tqdm`` has this signature; the CLI passes one, see
:mod:`simwall.cli.progress`). None, the default, is silent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = ["Progress", "tracked"]

T = TypeVar("T")

#: ``progress(items, total=..., desc=...) -> iterable over items``.
Progress = Callable[..., Iterable]


def tracked(progress: Progress | None, items: Iterable[T], total: int | None = None,
            desc: str = "") -> Iterable[T]:
    """``items`` passed through ``progress`` (unchanged when it is None)."""
    if progress is None:
        return items
    return progress(items, total=total, desc=desc)
