"""The SimPy engine: a run's inputs resolved (:mod:`.prepare`), the pipeline streams
(:mod:`.pipeline`), the DP reduction and optimizer tail (:mod:`.sync`), the shared
network of per-device runs (:mod:`.network`), the Chrome trace
they write (:mod:`.trace`) and the one assembly of a step (:mod:`.step`), used by
:func:`simwall.simulate` and by the plan search's analytic estimate."""

# (not the function ``confidence``: it would shadow the submodule of that name)
from .confidence import coverage_table, links_used
from .pipeline import Arrival, GradSegment, Pipeline, StageStats, run_pipeline, scaled
from .prepare import Prepared, load_inputs, prepare, topology_for
from .step import (
    SimulatedStep,
    StepTiming,
    estimate_step,
    run_prepared,
    simulate_step,
    step_timing,
)
from .sync import OTHER_S, Tail, bucket_ready_times, step_tail
from .trace import Recorder

__all__ = [
    "OTHER_S",
    "Arrival",
    "GradSegment",
    "Pipeline",
    "Prepared",
    "Recorder",
    "SimulatedStep",
    "StageStats",
    "StepTiming",
    "Tail",
    "bucket_ready_times",
    "coverage_table",
    "estimate_step",
    "links_used",
    "load_inputs",
    "prepare",
    "run_pipeline",
    "run_prepared",
    "scaled",
    "simulate_step",
    "step_tail",
    "step_timing",
    "topology_for",
]
