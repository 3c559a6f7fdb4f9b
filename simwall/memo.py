"""The one owner of memoisation in simwall.

Every cache is made here: :func:`memoized` for pure functions of hashable arguments and
:func:`table` for memo dicts attached to one object (a topology's routes). Both are
forgotten together by :func:`clear_caches` (public as ``simwall.clear_caches``), which
cold-start benchmarks and tests call; nothing else needs to know where caches live.
Results never depend on a cache: it only saves recomputing the same pure value.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["clear_caches", "memoized", "table"]

F = TypeVar("F", bound=Callable[..., Any])

_FUNCTIONS: list[Any] = []
_TABLES: weakref.WeakKeyDictionary[Any, dict[str, dict]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def memoized(maxsize: int | None = 1024) -> Callable[[F], F]:
    """Decorator: memoise a pure function (an LRU of ``maxsize`` entries; None: no bound),
    registered so that :func:`clear_caches` forgets it."""

    def wrap(fn: F) -> F:
        cached = functools.lru_cache(maxsize=maxsize)(fn)
        _FUNCTIONS.append(cached)
        return cached  # type: ignore[return-value]

    return wrap


def table(owner: Any, name: str) -> dict:
    """The memo dict ``name`` attached to ``owner`` (made on first use). It lives as long
    as ``owner`` does (weakly keyed) and :func:`clear_caches` empties it."""
    tables = _TABLES.get(owner)
    if tables is None:
        with _LOCK:
            tables = _TABLES.get(owner)
            if tables is None:
                tables = _TABLES[owner] = {}
    found = tables.get(name)
    if found is None:
        found = tables.setdefault(name, {})
    return found


def clear_caches() -> None:
    """Forget every memoised value in simwall (for cold-start benchmarks and tests)."""
    for fn in _FUNCTIONS:
        fn.cache_clear()
    with _LOCK:
        for tables in list(_TABLES.values()):
            for memo in tables.values():
                memo.clear()
