"""What collective algorithms produce: phases of concurrent flows, and the checks on a
call. Shared by every algorithm module.

``bytes_`` is always the size of the full buffer of one rank, as nccl-tests reports it
(nccl-tests doc/PERFORMANCE.md): the all-reduce buffer, the gathered (all_gather) or
not-yet-scattered (reduce_scatter) buffer, the broadcast buffer, the sent message.

The topology is any object with ``route(src, dst) -> tuple[edge, ...]``,
``capacity(edge) -> bytes/s``, ``route_latency_s(src, dst) -> s``, ``node_of(device) ->
node index`` and ``num_devices`` (:class:`TopologyLike`);
:class:`simwall.net.topology.Topology` is one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ...errors import SimwallError
from ...memo import memoized

__all__ = ["KINDS", "Flow", "Phase", "TopologyLike", "Window", "check_call", "merge_phases"]

KINDS = ("all_reduce", "reduce_scatter", "all_gather", "broadcast", "send_recv", "all_to_all")

Flow = tuple[int, int, float]            # (src device, dst device, bytes)


class TopologyLike(Protocol):
    """What collectives read of a topology."""

    num_devices: int

    def route(self, src: int, dst: int) -> tuple: ...
    def capacity(self, edge: Any) -> float: ...
    def route_latency_s(self, src: int, dst: int) -> float: ...
    def node_of(self, device: int) -> int: ...


@dataclass(frozen=True)
class Phase:
    """One phase: ``flows`` run concurrently; ``latency_s`` = ``steps`` sequential hops."""

    flows: tuple[Flow, ...]
    steps: int
    latency_s: float


#: Node indices whose outgoing flows are costed, or None for all. On a topology made of
#: identical blocks (fat-tree leaves), the flows of translated groups load every block
#: alike, so the flows leaving two blocks see the same max-min rates as the whole set
#: (tests/test_symmetry_window.py checks this against full costing).
Window = frozenset | None


def merge_phases(parts: Sequence[tuple[Phase, ...]]) -> tuple[Phase, ...]:
    """Run several phase lists side by side: phase i of each, concurrently."""
    out = []
    for i in range(max((len(p) for p in parts), default=0)):
        here = [p[i] for p in parts if i < len(p)]
        out.append(Phase(tuple(f for ph in here for f in ph.flows),
                         max(ph.steps for ph in here), max(ph.latency_s for ph in here)))
    return tuple(out)


def check_call(kind: str, group: Sequence[int], bytes_: float) -> None:
    """SimwallError for an unknown kind, bytes that are negative or not finite, or a
    group that repeats a device."""
    if kind not in KINDS:
        raise SimwallError(f"unknown collective kind '{kind}'; expected one of {KINDS}")
    if not bytes_ >= 0.0 or math.isinf(bytes_):
        raise SimwallError(f"collective bytes_ must be finite and >= 0, got {bytes_}")
    if not _distinct(tuple(group)):
        raise SimwallError(f"collective group has repeated devices: {list(group)}")


@memoized(maxsize=4096)
def _distinct(group: tuple[int, ...]) -> bool:
    return len(set(group)) == len(group)
