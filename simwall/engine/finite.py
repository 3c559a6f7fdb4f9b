"""A result must hold finite numbers only (JSON cannot carry NaN or infinity, and no table
should show one): :func:`check_finite` refuses one that does not, naming the input that
most likely caused it."""

from __future__ import annotations

import math

from ..config.yamlio import format_number
from ..errors import SimwallError
from ..report import StepResult, as_dict
from .prepare import Prepared

__all__ = ["check_finite"]


def _any_non_finite(value) -> bool:
    """Whether ``value`` (dicts, lists) holds a NaN or infinity (no paths built)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        values = value.values()
    elif isinstance(value, (list, tuple)):
        values = value
    else:
        return False
    # One call per container, not per number (a result holds thousands of numbers).
    isfinite = math.isfinite
    for v in values:
        if isinstance(v, float):
            if not isfinite(v):
                return True
        elif isinstance(v, (dict, list, tuple)) and _any_non_finite(v):
            return True
    return False


def _non_finite(value, path: str = ""):
    """The dotted path of the first NaN or infinity in ``value`` (dicts, lists), or None."""
    if not path and not _any_non_finite(value):     # the usual case: nothing to name
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for k, v in items:
        found = _non_finite(v, f"{path}.{k}" if path else str(k))
        if found is not None:
            return found
    return None


def _numbers(value, path: str):
    """(key path, number) of every numeric leaf of ``value`` (a model_dump), lists
    included (an explicit graph's links: ``cluster.graph.links[3].bandwidth``)."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{path}[{i}]")


def _most_extreme_input(prep: Prepared) -> tuple[str, float] | None:
    """The input number farthest from 1 in orders of magnitude (what overflows a
    product or a quotient), with the key path users write; None if all are zero."""
    found = list(_numbers(prep.workload.model_dump(by_alias=True, include={"model",
                                                   "training", "plan"}), ""))
    found += list(_numbers(prep.cluster.model_dump(by_alias=True, exclude={"device"}),
                           "cluster"))
    found += list(_numbers(prep.device.model_dump(by_alias=True), "cluster.device"))
    scored = [(abs(math.log10(abs(v))) if v and math.isfinite(v) else math.inf, k, v)
              for k, v in found if v]
    if not scored:
        return None
    _, key, value = max(scored, key=lambda t: t[0])
    return key, value


def check_finite(prep: Prepared, result: StepResult) -> None:
    """Refuse a result holding NaN or infinity (JSON cannot carry it, and no table
    should show it), naming the input that most likely caused it: the one farthest from
    1 in orders of magnitude, e.g. ``cluster.device.peak_flops.bf16 = 1e-300 gives a
    non-finite step time``."""
    data = as_dict(result)
    bad = _non_finite(data)
    if bad is None:
        return
    what = "step time" if not math.isfinite(result.step_time_s) else bad
    culprit = _most_extreme_input(prep)
    if culprit is None:
        raise SimwallError(f"{prep.workload.name} on {prep.cluster.name} gives a "
                           f"non-finite {what}")
    key, value = culprit
    raise SimwallError(f"{key} = {format_number(value)} gives a non-finite {what}")
