"""The ``ring`` algorithm, with NCCL-style channels (one ring per device of a node).

Fluid approximation: a ring's ``p - 1`` (or ``2(p - 1)``) steps each move ``bytes_/p``
per rank to the next rank; here one aggregated flow per rank carries the sum of its steps,
and the step latencies are added once per phase. This is exact for the bandwidth term on a
uniform ring (Thakur, Rabenseifner & Gropp, "Optimization of Collective Communication
Operations in MPICH", IJHPCA 19(1), 2005, Sec. 4) and ignores pipeline bubbles.
"""

from __future__ import annotations

from collections.abc import Sequence

from .direct import direct_phases
from .phases import Flow, Phase, TopologyLike, Window
from .routes import by_node, channel_count, kept, latency_s, pair_latencies_s

__all__ = ["ring_channels", "ring_phase", "ring_phases"]


def ring_channels(group: Sequence[int], topology: TopologyLike) -> list[list[int]]:
    """Ring orders used for ``group``: one per device of a node when every node holds the
    same number ``k > 1`` of the group's devices, else one.

    Channel ``c`` visits the nodes in order and, inside each, the local devices starting
    from local index ``c``; so it leaves each node from local device ``c - 1`` and every
    local device (hence its NIC, on a rail-optimised cluster) carries exactly one channel
    across nodes. This mirrors NCCL's multi-channel rings, whose bus bandwidth is
    ``nChannels * speed`` (NCCL src/graph/tuning.cc, ncclTopoTuneModel).
    """
    per_node = by_node(group, topology)
    k = channel_count(per_node)
    return [[n[(c + i) % len(n)] for n in per_node for i in range(len(n))] for c in range(k)]


def ring_phase(order: Sequence[int], channels: int, bytes_per_rank: float, steps: int,
               topology: TopologyLike, all_orders: Sequence[Sequence[int]] | None = None,
               window: Window = None, latency: bool = True) -> Phase:
    """One phase of ``steps`` ring steps: each rank of each order sends
    ``bytes_per_rank / channels`` to the next."""
    orders = all_orders if all_orders is not None else [order]
    share = bytes_per_rank / channels
    every = window is None
    pairs: list[tuple[int, int]] = []
    for o in orders:
        p = len(o)
        for i in range(p):
            if every or kept(topology, o[i], window):
                pairs.append((o[i], o[(i + 1) % p]))
    flows: list[Flow] = [(a, b, share) for a, b in pairs]
    hop_s = 0.0
    if latency:
        for hop in pair_latencies_s(topology, pairs):
            hop_s = max(hop_s, hop)
    # Thakur et al. 2005: each of the `steps` steps costs one message latency alpha; all
    # ranks send at once, so a step waits for the slowest hop.
    return Phase(tuple(flows), steps, steps * hop_s)


def ring_phases(kind: str, group: Sequence[int], bytes_: float, topology: TopologyLike,
                window: Window = None, latency: bool = True) -> tuple[Phase, ...]:
    """Phases of ``kind`` on ``group`` by rings (a pipelined chain for broadcast; direct
    for send_recv)."""
    p = len(group)
    orders = ring_channels(group, topology)
    k = len(orders)
    if kind == "all_reduce":
        # Reduce-scatter then all-gather: 2(p-1) steps of bytes_/p (Thakur et al. 2005,
        # Sec. 4.4; nccl-tests PERFORMANCE.md busbw factor 2(n-1)/n).
        return (ring_phase(orders[0], k, 2 * (p - 1) / p * bytes_, 2 * (p - 1), topology,
                           orders, window, latency),)
    if kind in ("reduce_scatter", "all_gather"):
        # p-1 steps of bytes_/p (Thakur et al. 2005; PERFORMANCE.md factor (n-1)/n).
        return (ring_phase(orders[0], k, (p - 1) / p * bytes_, p - 1, topology, orders,
                           window, latency),)
    if kind == "broadcast":
        # Pipelined chain from the root (first device): every rank but the last forwards
        # the whole buffer; p-1 hops to fill the pipe (PERFORMANCE.md: broadcast busbw =
        # algbw).
        flows: list[Flow] = []
        hop_s = 0.0
        for o in orders:
            root_at = o.index(group[0])
            chain = list(o[root_at:]) + list(o[:root_at])
            for i in range(p - 1):
                if not kept(topology, chain[i], window):
                    continue
                flows.append((chain[i], chain[i + 1], bytes_ / k))
                if latency:
                    hop_s = max(hop_s, latency_s(topology, chain[i], chain[i + 1]))
        return (Phase(tuple(flows), p - 1, (p - 1) * hop_s),)
    return direct_phases(kind, group, bytes_, topology, window, latency)
