"""The public Python API: simulate one training step.

>>> r = simulate("gpt3-175b")                      # doctest: +SKIP
>>> r = simulate("gpt3-175b", "dgx-a100", **{"plan.tp": 4, "cluster.nodes": 256})
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import ClusterSpec, Workload, set_overrides
from .engine.prepare import Prepared, prepare
from .engine.step import run_prepared
from .report import StepResult, chrome_trace

__all__ = ["Prepared", "prepare", "run_prepared", "simulate", "simulate_from_cli"]


def simulate(workload: str | Workload = "gpt3-175b", cluster: str | ClusterSpec | None = None,
             per_device: bool = False, trace: bool = False, **overrides: Any) -> StepResult:
    """Simulate one training step.

    ``workload`` / ``cluster``: bundled names, file paths or typed configs; ``cluster``
    defaults to the workload's ``defaults.cluster``. ``overrides`` are key paths, e.g.
    ``simulate("gpt3-175b", **{"plan.tp": 4, "cluster.nodes": 64})``.
    """
    prep = prepare(workload, cluster, overrides)
    return run_prepared(prep, per_device=per_device, trace=trace)


def simulate_from_cli(workload_name: str | None, cluster_name: str | None,
                      set_items: list[str], per_device: bool = False,
                      trace_path: str | None = None) -> StepResult:
    """What ``simwall run`` does: ``--set`` items parsed, trace written if asked."""
    result = simulate(workload_name or "gpt3-175b", cluster_name, per_device=per_device,
                      trace=bool(trace_path), **set_overrides(set_items or []))
    if trace_path:
        Path(trace_path).write_text(json.dumps(chrome_trace(result)), encoding="utf-8")
    return result
