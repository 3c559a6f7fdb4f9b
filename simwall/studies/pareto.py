"""The Pareto front of points in two objectives (``simwall plot --pareto``).

A point is on the front when no other point is at least as good on both axes and
strictly better on one. "Good" is lower unless that axis is maximised. Equal points do
not dominate each other: duplicates on the front are all on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["pareto_front"]


def pareto_front(xs: Sequence[float], ys: Sequence[float], maximize_x: bool = False,
                 maximize_y: bool = False) -> list[bool]:
    """For each point ``(xs[i], ys[i])``, whether it is on the Pareto front (lower is
    better on both axes unless ``maximize_x`` / ``maximize_y``). O(n log n): sort by x,
    then a point is on the front iff it has the least y of its x and that y is below
    the least y of every point with a better x. Non-finite values are never on it."""
    if len(xs) != len(ys):
        raise ValueError(f"xs and ys differ in length ({len(xs)} vs {len(ys)})")
    sx, sy = (-1.0 if maximize_x else 1.0), (-1.0 if maximize_y else 1.0)
    pts = sorted((sx * float(x), sy * float(y), i) for i, (x, y) in enumerate(zip(xs, ys))
                 if math.isfinite(float(x)) and math.isfinite(float(y)))
    on = [False] * len(xs)
    best_y = math.inf  # least y over the points with a strictly lower x
    k = 0
    while k < len(pts):
        j = k
        while j < len(pts) and pts[j][0] == pts[k][0]:
            j += 1
        group_min = pts[k][1]  # sorted by y within an x
        if group_min < best_y:
            for _, y, i in pts[k:j]:
                if y == group_min:
                    on[i] = True
            best_y = group_min
        k = j
    return on
