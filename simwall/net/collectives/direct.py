"""The ``direct`` algorithm: every rank talks to every other at once (for small groups
and point-to-point sends; internal, not a user's choice)."""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import SimwallError
from .phases import Phase, TopologyLike, Window
from .routes import kept, latency_s

__all__ = ["direct_phases"]


def direct_phases(kind: str, group: Sequence[int], bytes_: float, topology: TopologyLike,
                  window: Window = None, latency: bool = True) -> tuple[Phase, ...]:
    """Every rank talks to every other at once: p(p-1) flows; for small groups."""
    p = len(group)
    g = list(group)
    if kind == "send_recv":
        if p != 2:
            raise SimwallError(f"send_recv needs a group [src, dst], got {g}")
        return (Phase(((g[0], g[1], float(bytes_)),), 1, latency_s(topology, g[0], g[1])),)
    if kind == "broadcast":
        flows = [(g[0], d, float(bytes_)) for d in g[1:]]
        steps = 1
    else:
        per_pair = bytes_ / p * (2 if kind == "all_reduce" else 1)
        flows = [(a, b, per_pair) for a in g if kept(topology, a, window)
                 for b in g if a != b]
        steps = 2 if kind == "all_reduce" else 1     # scatter-reduce, then gather
    if kind == "broadcast" and not kept(topology, g[0], window):
        flows = []
    hop_s = max((latency_s(topology, a, b) for a, b, _ in flows), default=0.0) \
        if latency else 0.0
    return (Phase(tuple(flows), steps, steps * hop_s),)
