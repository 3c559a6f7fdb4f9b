"""The Chrome trace view of a step (``simwall run --trace FILE``; open in Perfetto)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the annotation; the view needs no import at run time
    from .result import StepResult

__all__ = ["chrome_trace"]


def chrome_trace(r: StepResult) -> dict:
    """Chrome trace / Perfetto JSON of the step: a process per stage, a thread per stream."""
    events: list[dict] = []
    pids = sorted({e["pid"] for e in r.trace_events})
    names = {1: "compute", 2: "tp comm", 3: "pp send", 4: "dp comm", 5: "optimizer"}
    for p in pids:
        events.append({"name": "process_name", "ph": "M", "pid": p, "tid": 0,
                       "args": {"name": f"stage/replica {p}"}})
        for tid, name in names.items():
            events.append({"name": "thread_name", "ph": "M", "pid": p, "tid": tid,
                           "args": {"name": name}})
    events.extend(sorted(r.trace_events, key=lambda e: (e["pid"], e.get("tid", 0), e["ts"],
                                                          e["name"])))
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"workload": r.workload, "cluster": r.cluster,
                          "step_time_s": r.step_time_s}}
