"""The JSON view of a step: the contract of ``simwall run --format json``.

Registered as the ``json`` output format (:data:`simwall.registry.OUTPUT_FORMATS`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..errors import SimwallError

if TYPE_CHECKING:  # result imports this module
    from .result import StepResult

__all__ = ["as_dict", "render"]


def as_dict(r: StepResult) -> dict:
    """The JSON contract of a step: times in seconds, FLOP counts, memory in bytes."""
    return {
        "workload": r.workload,
        "cluster": r.cluster,
        "device": r.device,
        "world": r.world,
        "step_time_s": r.step_time_s,
        "tokens_per_s": r.tokens_per_s,
        "model_tflops_per_device": r.model_tflops_per_device,
        "hardware_tflops_per_device": r.hardware_tflops_per_device,
        "mfu": r.mfu,
        "hfu": r.hfu,
        "model_flop_per_step": r.model_flop,
        "hardware_flop_per_step": r.hardware_flop,
        "breakdown_s": dict(r.breakdown_s),
        "memory": r.memory,
        "plan": dict(r.plan),
        "critical": dict(r.critical),
        "engine": dict(r.engine),
        "bounds": dict(r.bounds),
        "confidence": dict(r.confidence),
        "energy": dict(r.energy),
    }


def render(r: StepResult) -> str:
    """Deterministic JSON text of :func:`as_dict` (sorted keys, indent 2, no final newline).

    NaN and infinity are not JSON: a result holding one is refused (the engine refuses
    it first, naming the input; this is the last line of defence)."""
    try:
        return json.dumps(as_dict(r), indent=2, sort_keys=True, allow_nan=False)
    except ValueError:
        raise SimwallError(f"{r.workload} on {r.cluster}: the result holds a non-finite "
                           f"number (NaN or infinity), which JSON cannot carry") from None
