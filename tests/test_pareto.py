"""Tests of simwall.studies.pareto: the front against a brute-force O(n^2) computation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.studies import pareto


def brute_front(xs, ys, max_x=False, max_y=False):
    sx, sy = (-1 if max_x else 1), (-1 if max_y else 1)
    pts = [(sx * x, sy * y) for x, y in zip(xs, ys)]
    return [not any(a <= x and b <= y and (a < x or b < y) for a, b in pts)
            for x, y in pts]


_coord = st.integers(-5, 5).map(float) | st.floats(-1e3, 1e3, allow_nan=False)


@settings(deadline=None, max_examples=300)
@given(st.lists(st.tuples(_coord, _coord), max_size=40), st.booleans(), st.booleans())
def test_pareto_front_matches_brute_force(points, max_x, max_y):
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    assert pareto.pareto_front(xs, ys, max_x, max_y) == brute_front(xs, ys, max_x, max_y)


def test_pareto_front_edges():
    assert pareto.pareto_front([], []) == []
    assert pareto.pareto_front([1, 1], [2, 2]) == [True, True]  # equal points: both on it
    assert pareto.pareto_front([1, 2, float("nan")], [2, 1, 0]) == [True, True, False]
    with pytest.raises(ValueError):
        pareto.pareto_front([1], [])
