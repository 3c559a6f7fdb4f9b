"""The public Python API: simulate one training step.

>>> r = simulate("gpt3-175b")                      # doctest: +SKIP
>>> r = simulate("gpt3-175b", "dgx-a100", **{"plan.tp": 4, "cluster.nodes": 256})
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable
from typing import Any

from .config import ClusterSpec, Workload, set_overrides
from .config.graph import cluster_from_networkx
from .engine.prepare import Prepared, prepare
from .engine.step import run_prepared
from .errors import ConfigError
from .report import StepResult, chrome_trace
from .report.outputs import check_output_path, write_text

__all__ = ["Prepared", "cli_overrides", "prepare", "run_prepared", "simulate",
           "simulate_from_cli"]


def simulate(workload: str | Workload = "gpt3-175b", cluster: str | ClusterSpec | None = None,
             per_device: bool = False, trace: bool = False, **overrides: Any) -> StepResult:
    """Simulate one training step.

    ``workload`` / ``cluster``: bundled names, file paths or typed configs; ``cluster``
    defaults to the workload's ``defaults.cluster``, and may be a ``networkx`` graph
    (:func:`simwall.config.graph.cluster_from_networkx`: node kinds, links with bandwidth,
    latency and link type; docs/input-formats.md). ``overrides`` are key paths, e.g.
    ``simulate("gpt3-175b", **{"plan.tp": 4, "cluster.nodes": 64})``.
    """
    for name, flag in (("per_device", per_device), ("trace", trace)):
        if not isinstance(flag, bool):
            raise ConfigError(name, None, f"expected True or False, got {flag!r}")
    if _is_graph(cluster):
        cluster = cluster_from_networkx(cluster)
    prep = prepare(workload, cluster, overrides)
    return run_prepared(prep, per_device=per_device, trace=trace)


def _is_graph(obj: Any) -> bool:
    """Whether ``obj`` is a ``networkx`` graph (checked without importing networkx)."""
    return any(c.__module__.startswith("networkx.") and c.__name__ == "Graph"
               for c in type(obj).__mro__)


def simulate_from_cli(workload_name: str | None, cluster_name: str | None,
                      set_items: list[str], per_device: bool = False,
                      trace_path: str | None = None) -> StepResult:
    """What ``simwall run`` does: ``--set`` items parsed and checked, the trace path
    checked before the run and the trace written after it, if asked."""
    overrides = cli_overrides(set_items or [])
    if trace_path:
        check_output_path(trace_path, "--trace")
    result = simulate(workload_name or "gpt3-175b", cluster_name, per_device=per_device,
                      trace=bool(trace_path), **overrides)
    if trace_path:
        write_text(trace_path, json.dumps(chrome_trace(result)), "--trace")
    return result


def cli_overrides(set_items: Iterable[str]) -> dict[str, Any]:
    """``--set`` items as the ``overrides`` of :func:`simulate`; a key that is one of
    simulate's own arguments (``--set cluster=x`` would reach ``simulate(cluster=...)``
    twice) is a ConfigError that says which flag sets it instead."""
    overrides = set_overrides(set_items)
    for key in overrides:
        if key in _OWN_ARGUMENTS:
            raise ConfigError("--set", key, f"not a key path but an argument of its own; "
                              f"{_OWN_ARGUMENTS[key]}")
    return overrides


#: simulate()'s own arguments, and what to write instead of ``--set NAME=...``.
_OWN_ARGUMENTS = {
    "workload": "give the workload as the WORKLOAD argument (or set one of its keys, "
                "e.g. plan.tp=4)",
    "cluster": "give the cluster with --cluster NAME (or set one of its keys, "
               "e.g. cluster.nodes=8)",
    "per_device": "use --per-device",
    "trace": "use --trace FILE",
}
assert set(_OWN_ARGUMENTS) == set(inspect.signature(simulate).parameters) - {"overrides"}
