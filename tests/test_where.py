"""Tests of simwall.studies.where: the safe row filter of ``simwall plot --where``."""

from __future__ import annotations

import pytest

from simwall.errors import ConfigError
from simwall.studies import where

_ROWS = [{"memory.fits": True, "plan.tp": 2, "step_time_s": 5.0, "plan.schedule": "1f1b"},
         {"memory.fits": "false", "plan.tp": 1, "step_time_s": 20, "plan.schedule": "gpipe"},
         {"memory.fits": None, "plan.tp": "4", "step_time_s": None, "plan.schedule": None}]


@pytest.mark.parametrize("expr, kept", [
    ("memory.fits == true", [0]), ("memory.fits", [0]), ("not memory.fits", [1, 2]),
    ("plan.tp >= 2 and step_time_s < 10", [0]), ("plan.tp >= 2", [0, 2]),
    ("1 <= plan.tp <= 2", [0, 1]), ("plan.tp == 1 or plan.tp == 4", [1, 2]),
    ("plan.schedule != 'gpipe'", [0, 2]), ('plan.schedule == "1f1b"', [0]),
    ("step_time_s > -1", [0, 1]), ("(plan.tp > 1) and not (step_time_s >= 10)", [0, 2])])
def test_where(expr, kept):
    keep = where.compile_where(expr, _ROWS[0])
    assert [i for i, r in enumerate(_ROWS) if keep(r)] == kept


@pytest.mark.parametrize("expr, needle", [
    ("__import__('os').system('true')", "not allowed"), ("plan.tp + 1 > 2", "not allowed"),
    ("plan.tp in [1, 2]", "not allowed"), ("x[0] == 1", "not allowed"),
    ("plan.tpp == 2", "did you mean 'plan.tp'"), ("plan.tp ==", "cannot parse"),
    ("(lambda: 1)() == 1", "not allowed"), ("memory.fits.real == 1", "no column")])
def test_where_rejects(expr, needle):
    with pytest.raises(ConfigError, match="--where") as err:
        where.compile_where(expr, _ROWS[0])
    assert needle in str(err.value)
