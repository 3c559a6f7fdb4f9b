"""StepResult: one simulated training step and the quantities derived from it.

Its views live beside it, one module each: :mod:`.table` (text), :mod:`.jsonview` (the
JSON contract), :mod:`.trace` (Chrome trace), :mod:`.records` (flat records and their
files). The library never prints; the views return strings and dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import jsonview, records
from .records import BREAKDOWN_KEYS

__all__ = ["BREAKDOWN_KEYS", "StepResult"]


@dataclass(frozen=True)
class StepResult:
    """One simulated training step. Times in seconds, memory in bytes, FLOP counts."""

    workload: str
    cluster: str
    device: str
    world: int
    plan: dict
    inputs: dict                      # resolved workload + cluster settings (flat keys)
    step_time_s: float
    tokens_per_s: float
    model_flop: float                 # per step, whole model, no recompute counted
    hardware_flop: float              # per step, recompute counted
    peak_flop_per_s: float            # per device, at the training precision
    breakdown_s: dict                 # BREAKDOWN_KEYS -> seconds
    memory: dict                      # capacity_bytes, peak_bytes, fits, devices[...]
    critical: dict                    # which stage / device / link sets the pace;
    #                                   busiest_link: see simwall.costing.linkload.busiest_link
    engine: dict                      # events, mode, symmetric
    trace_events: tuple = field(default=(), repr=False, compare=False)
    bounds: dict = field(default_factory=dict)  # lower bounds on the step time
    #: Which device and link models were validated, against what, with which error
    #: (simwall.engine.confidence); ``summary`` is one line.
    confidence: dict = field(default_factory=dict)
    #: Joules per step and per token, average power, cost when priced
    #: (simwall.costing.energy.step_energy; docs/energy.md).
    energy: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        # Short enough for a notebook cell: the whole result is to_dict() / to_json().
        p = self.plan
        return (f"StepResult({self.workload} on {self.cluster}, {self.world} x "
                f"{self.device}, tp={p.get('tp')} pp={p.get('pp')} dp={p.get('dp')}: "
                f"step {self.step_time_s:.4f} s, MFU {self.mfu:.1%}, "
                f"peak {self.memory.get('peak_bytes', 0) / 1e9:.1f} GB, "
                f"fits {self.memory.get('fits')})")

    @property
    def model_tflops_per_device(self) -> float:
        return self.model_flop / (self.step_time_s * self.world) / 1e12

    @property
    def hardware_tflops_per_device(self) -> float:
        return self.hardware_flop / (self.step_time_s * self.world) / 1e12

    @property
    def mfu(self) -> float:
        return self.model_tflops_per_device * 1e12 / self.peak_flop_per_s

    @property
    def hfu(self) -> float:
        return self.hardware_tflops_per_device * 1e12 / self.peak_flop_per_s

    @property
    def fits(self) -> bool:
        return bool(self.memory["fits"])

    def to_dict(self) -> dict:
        """The JSON contract of ``simwall run --format json`` (:func:`.jsonview.as_dict`)."""
        return jsonview.as_dict(self)

    def to_json(self) -> str:
        """Deterministic JSON text (sorted keys; :func:`.jsonview.render`)."""
        return jsonview.render(self)

    def to_record(self) -> dict[str, Any]:
        """One flat dict of inputs and outputs, for pandas / CSV (:func:`.records.flat_record`)."""
        return records.flat_record(self)
