"""Chrome-trace events of one simulated step, emitted by the engine's processes as they run.

A :class:`Recorder` is handed to every process (pipeline streams, DP reductions, the
synchronisation tail); each writes its own spans and counters at the simulated time it
does the work. Times are taken in seconds and written in microseconds (the Chrome trace
format's unit). A disabled recorder drops everything, so processes call it
unconditionally. Thread ids are those :func:`simwall.report.chrome_trace` names.
"""

from __future__ import annotations

__all__ = ["COMPUTE", "DP", "OPTIMIZER", "PP", "TP", "Recorder"]

#: Thread ids inside one (stage, replica) process of the trace.
COMPUTE, TP, PP, DP, OPTIMIZER = 1, 2, 3, 4, 5


class Recorder:
    """Collects trace events when ``enabled``; ``replicas`` maps (stage, replica) to a pid."""

    def __init__(self, enabled: bool, replicas: int) -> None:
        self.enabled = enabled
        self.replicas = replicas
        self.events: list[dict] = []

    def pid(self, stage: int, replica: int = 0) -> int:
        """The trace process of ``(stage, replica)``."""
        return stage * self.replicas + replica

    def span(self, name: str, start_s: float, dur_s: float, stage: int, replica: int,
             tid: int, cat: str, args: dict | None = None) -> None:
        """A complete ('X') event from ``start_s`` lasting ``dur_s`` seconds."""
        if not self.enabled:
            return
        ev = {"name": name, "ph": "X", "ts": start_s * 1e6, "dur": dur_s * 1e6,
              "pid": self.pid(stage, replica), "tid": tid, "cat": cat}
        if args is not None:
            ev["args"] = args
        self.events.append(ev)

    def counter(self, name: str, at_s: float, stage: int, replica: int, args: dict) -> None:
        """A counter ('C') sample at ``at_s`` seconds."""
        if self.enabled:
            self.events.append({"name": name, "ph": "C", "ts": at_s * 1e6,
                                "pid": self.pid(stage, replica), "args": args})
