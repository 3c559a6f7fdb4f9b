"""The ``tree`` algorithm: NCCL's double binary tree across nodes, chains inside them."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from ...memo import memoized
from .phases import Flow, Phase, TopologyLike, Window
from .ring import ring_phases
from .routes import by_node, channel_count, kept, latencies_s, latency_s

__all__ = ["double_binary_tree", "tree_phases"]


@memoized(maxsize=256)
def double_binary_tree(n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Parents (``-1`` for the root) of the two trees of NCCL's double binary tree on
    positions ``0..n-1``.

    Tree A is an in-order balanced binary tree (leaves at odd positions) hung below
    position 0; tree B is A mirrored when ``n`` is even and shifted by one when odd, so a
    position is a leaf in at least one tree and each tree carries half the data (Sanders,
    Speck & Traeff, "Two-tree algorithms for full bandwidth broadcast, reduction and
    scan", Parallel Computing 35(12), 2009; NVIDIA blog "Massively Scale Your Deep
    Learning Training with NCCL 2.4", 2019; NCCL src/graph/trees.cc).
    """
    def parent_a(r: int) -> int:
        if r == 0:
            return -1
        low = r & -r                        # lowest set bit: the level of r
        # A left child (bit 2*low clear) hangs below r + low, a right child below r - low;
        # when r + low is past the end, r - low (a higher level, in range) adopts it.
        up = r + low if not r & (2 * low) else r - low
        return up if up < n else r - low

    a = tuple(parent_a(r) for r in range(n))
    if n % 2 == 0:
        b = tuple(-1 if a[n - 1 - r] == -1 else n - 1 - a[n - 1 - r] for r in range(n))
    else:
        b = tuple(-1 if a[(r - 1) % n] == -1 else (a[(r - 1) % n] + 1) % n for r in range(n))
    return a, b


@memoized(maxsize=512)
def _children(parents: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Children of each tree position, in position order."""
    out: list[list[int]] = [[] for _ in parents]
    for child, par in enumerate(parents):
        if par != -1:
            out[par].append(child)
    return tuple(tuple(c) for c in out)


@memoized(maxsize=512)
def _top_down(parents: tuple[int, ...]) -> tuple[int, ...]:
    """Tree positions, every parent before its children (breadth first from the
    root)."""
    children = _children(parents)
    order = [r for r, par in enumerate(parents) if par == -1]
    for x in order:                  # grows while it is walked
        order.extend(children[x])
    return tuple(order)


@memoized(maxsize=512)
def _tree_depth(parents: tuple[int, ...]) -> int:
    """Hops from the deepest position up to the root."""
    depth = [0] * len(parents)
    for x in _top_down(parents):
        if parents[x] != -1:
            depth[x] = depth[parents[x]] + 1
    return max(depth, default=0)


def _path_latencies_s(parents: tuple[int, ...], leaders: Sequence[int],
                      topology: TopologyLike) -> list[float]:
    """Latency from each tree position up to the root, hop by hop."""
    order = [x for x in _top_down(parents) if parents[x] != -1]
    hops = latencies_s(topology, [(leaders[x], leaders[parents[x]]) for x in order])
    path = [0.0] * len(parents)
    for x, hop_s in zip(order, hops):
        path[x] = path[parents[x]] + hop_s
    return path


def tree_phases(kind: str, group: Sequence[int], bytes_: float, topology: TopologyLike,
                window: Window = None, latency: bool = True) -> tuple[Phase, ...]:
    """NCCL-style tree: a chain inside each node, a double binary tree over one device
    per node; reduce up and broadcast down pipelined into one phase.

    Like the ring, a tree uses one channel per local device when every node holds ``k > 1``
    of the group's devices: channel ``c`` starts each node's chain at local device ``c``,
    which also represents the node in the inter-node tree, and carries ``1/k`` of the data
    (NCCL builds its trees per channel; NCCL src/graph/connect.cc, tuning.cc).
    """
    if kind not in ("all_reduce", "broadcast"):
        # NCCL has only rings for these; NCCL_ALGO=Tree affects all-reduce alone (NCCL
        # src/graph/tuning.cc: "Only disable algo for Allreduce since others only have
        # one"). A plan-wide 'tree' therefore means ring here.
        return ring_phases(kind, group, bytes_, topology, window, latency)
    up = kind == "all_reduce"                  # broadcast only sends down
    per_node = by_node(group, topology)
    k = channel_count(per_node)
    trees = double_binary_tree(len(per_node)) if len(per_node) > 1 else ()
    flows: list[Flow] = []
    chain_s = 0.0
    tree_s = 0.0
    # Positions (nodes of the group, in order) whose outgoing flows are costed.
    costed = (range(len(per_node)) if window is None else
              [i for i, n in enumerate(per_node) if kept(topology, n[0], window)])
    for c in range(k):
        for pos in costed:
            n = per_node[pos]
            devs = [n[(c + i) % len(n)] for i in range(len(n))]
            # Chain inside the node: both trees of the channel share it (whole share).
            for a, b in pairwise(devs):
                flows.append((a, b, bytes_ / k))
                if up:
                    flows.append((b, a, bytes_ / k))
            if latency:
                chain_s = max(chain_s, sum(latency_s(topology, a, b)
                                           for a, b in pairwise(devs)))
        leaders = [n[c % len(n)] for n in per_node]
        for parents in trees:
            children = _children(parents)
            for pos in costed:
                # Each tree carries half the data: down to the children, up to the parent.
                flows.extend((leaders[pos], leaders[ch], bytes_ / k / 2)
                             for ch in children[pos])
                if up and parents[pos] != -1:
                    flows.append((leaders[pos], leaders[parents[pos]], bytes_ / k / 2))
            if latency:
                # The slowest leaf-to-root path, hop by hop, over the whole tree.
                tree_s = max(tree_s, max(_path_latencies_s(parents, leaders, topology)))
    depth = max(len(n) for n in per_node) - 1 + max((_tree_depth(t) for t in trees),
                                                    default=0)
    # NCCL tuning.cc: tree all-reduce latency 2 * ((ppn - 1) * intra + log2(nNodes) * inter),
    # up then down; a broadcast goes down only.
    passes = 2 if up else 1
    return (Phase(tuple(flows), passes * depth, passes * (chain_s + tree_s)),)
