"""Grid geometry shared by the generators: torus coordinates, links and paths, and the
shorter way round a ring. Pure integer arithmetic on positions ``0 .. n-1``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

__all__ = ["ring_path", "torus_coords", "torus_edges", "torus_index", "torus_path"]


def torus_coords(index: int, dims: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major coordinates (last dimension fastest) of ``index`` in a ``dims`` grid."""
    out = []
    for k in reversed(dims):
        out.append(index % k)
        index //= k
    return tuple(reversed(out))


def torus_index(coords: tuple[int, ...], dims: tuple[int, ...]) -> int:
    """The position of row-major ``coords`` in a ``dims`` grid."""
    index = 0
    for c, k in zip(coords, dims):
        index = index * k + c
    return index


def torus_edges(dims: tuple[int, ...], indices: Iterable[int] | None = None
                ) -> Iterator[tuple[int, int]]:
    """Each undirected torus link once, as (index a, index b), in a fixed order; only
    those from ``indices`` (default: all) when given.

    Same wiring as ``nx.grid_graph(dims, periodic=True)``: +1 neighbour in every dimension
    with wrap-around; a dimension of size 2 has a single link, size 1 none.
    """
    for a in range(math.prod(dims)) if indices is None else indices:
        ca = torus_coords(a, dims)
        for d, k in enumerate(dims):
            if k == 1 or (k == 2 and ca[d] == 1):
                continue
            cb = list(ca)
            cb[d] = (ca[d] + 1) % k
            yield a, torus_index(tuple(cb), dims)


def torus_path(a: int, b: int, dims: tuple[int, ...]) -> list[int]:
    """Dimension-order route on a torus: fix dimension 0 first, then 1, ...; in each the
    shorter way round, ties (exactly half way) in the + direction. Deterministic."""
    cur = list(torus_coords(a, dims))
    target = torus_coords(b, dims)
    path = [a]
    for d, k in enumerate(dims):
        fwd = (target[d] - cur[d]) % k
        step = 1 if fwd <= k - fwd else -1
        while cur[d] != target[d]:
            cur[d] = (cur[d] + step) % k
            path.append(torus_index(tuple(cur), dims))
    return path


def ring_path(a: int, b: int, k: int) -> list[int]:
    """Shorter way round a ring of ``k`` positions; ties go the + way."""
    fwd = (b - a) % k
    step = 1 if fwd <= k - fwd else -1
    path = [a]
    while path[-1] != b:
        path.append((path[-1] + step) % k)
    return path
