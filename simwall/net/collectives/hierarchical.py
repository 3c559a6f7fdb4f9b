"""The ``hierarchical`` algorithm: rings inside nodes, rings across them on shards."""

from __future__ import annotations

from collections.abc import Sequence

from .phases import Phase, TopologyLike, Window, merge_phases
from .ring import ring_phases
from .routes import by_node, kept

__all__ = ["hierarchical_phases"]


def hierarchical_phases(kind: str, group: Sequence[int], bytes_: float,
                        topology: TopologyLike, window: Window = None,
                        latency: bool = True) -> tuple[Phase, ...]:
    """Intra-node ring reduce-scatter, inter-node ring all-reduce among rail peers (local
    index j of every node) on the node's 1/k shard, intra-node ring all-gather (the 2D
    scheme of Mikami et al., "Massively Distributed SGD: ImageNet/ResNet-50 Training in a
    Flash", 2018, arXiv:1811.05233; Horovod's hierarchical all-reduce)."""
    per_node = by_node(group, topology)
    k = len(per_node[0])
    if any(len(n) != k for n in per_node) or kind in ("broadcast", "send_recv", "all_to_all"):
        # Uneven nodes have no rail peers for every shard; broadcast has no reduction to
        # split. Both fall back to the flat ring.
        return ring_phases(kind, group, bytes_, topology, window, latency)
    rails = [[n[j] for n in per_node] for j in range(k)]
    shard = bytes_ / k

    # Under a window only the rings of its nodes carry costed flows (every node's intra
    # ring is alike); one ring is kept regardless so that the phases line up.
    costed = [n for n in per_node if kept(topology, n[0], window)]

    def intra(sub_kind: str) -> tuple[Phase, ...]:
        return merge_phases([ring_phases(sub_kind, n, bytes_, topology, window, latency)
                             for n in (costed or per_node[:1]) if len(n) > 1])

    def inter(sub_kind: str) -> tuple[Phase, ...]:
        return merge_phases([ring_phases(sub_kind, r, shard, topology, window, latency)
                             for r in rails if len(r) > 1])

    if kind == "all_reduce":
        return intra("reduce_scatter") + inter("all_reduce") + intra("all_gather")
    if kind == "reduce_scatter":
        return intra("reduce_scatter") + inter("reduce_scatter")
    return inter("all_gather") + intra("all_gather")           # all_gather
