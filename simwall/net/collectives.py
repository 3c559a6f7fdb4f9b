"""Collective algorithms as phases of concurrent flows, and their time on a topology.

An algorithm turns ``(kind, group, bytes_)`` into a tuple of :class:`Phase`. Phases run
one after another; inside a phase every flow ``(src, dst, bytes_)`` runs at once and the
phase also pays a latency term (``steps`` sequential messages). A phase's bandwidth time is
the fluid max-min drain time of its flows (:func:`simwall.network.drain_time_s`), so
groups that run at once share links fairly.

``bytes_`` is always the size of the full buffer of one rank, as nccl-tests reports it
(nccl-tests doc/PERFORMANCE.md): the all-reduce buffer, the gathered (all_gather) or
not-yet-scattered (reduce_scatter) buffer, the broadcast buffer, the sent message.

Fluid approximation: a ring's ``p - 1`` (or ``2(p - 1)``) steps each move ``bytes_/p``
per rank to the next rank; here one aggregated flow per rank carries the sum of its steps,
and the step latencies are added once per phase. This is exact for the bandwidth term on a
uniform ring (Thakur, Rabenseifner & Gropp, "Optimization of Collective Communication
Operations in MPICH", IJHPCA 19(1), 2005, Sec. 4) and ignores pipeline bubbles.

The topology is any object with ``route(src, dst) -> tuple[edge, ...]``,
``capacity(edge) -> bytes/s``, ``route_latency_s(src, dst) -> s``, ``node_of(device) ->
node index`` and ``num_devices`` (:class:`TopologyLike`); ``simwall.topology.Topology``
is one. Results are memoised per topology object (assumed immutable once built).
"""

from __future__ import annotations

import math
import weakref
from bisect import bisect_left
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any, Protocol

from ..errors import SimwallError
from .flows import drain_time_s

__all__ = [
    "ALGORITHMS",
    "KINDS",
    "Phase",
    "TopologyLike",
    "Window",
    "choose_algorithm",
    "clear_cache",
    "collective_flows",
    "collective_phases",
    "collective_time_parts",
    "collective_time_s",
    "double_binary_tree",
    "representative_flows",
    "ring_channels",
    "run_phases",
    "symmetry_window",
]

KINDS = ("all_reduce", "reduce_scatter", "all_gather", "broadcast", "send_recv")

Flow = tuple[int, int, float]            # (src device, dst device, bytes)


class TopologyLike(Protocol):
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

#: Blocks a group must span before :func:`symmetry_window` truncates it.
_WINDOW_MIN_BLOCKS = 4
#: Blocks whose outgoing flows the window keeps (one is not enough for trees: the
#: flows entering the first leaf from outside it would be missing).
_WINDOW_BLOCKS = 2
#: Group nodes the window must hold, so that every kind of tree position (leaf, inner
#: node of one tree or of the other) has flows in it.
_WINDOW_MIN_NODES = 8


def symmetry_window(group: Sequence[int], topology: Any) -> Window:
    """The nodes of the first blocks ``group`` touches (two, or more until they hold
    :data:`_WINDOW_MIN_NODES` of its nodes), when the topology is periodic (it has
    ``block_nodes() -> int | None``, the nodes per repeating block) and the group spans
    at least twice as many blocks; else None (cost every flow). Memoised per topology."""
    return _memo(topology, "window", tuple(group), lambda: _symmetry_window(group, topology))


def _symmetry_window(group: Sequence[int], topology: Any) -> Window:
    block_fn = getattr(topology, "block_nodes", None)
    per_block = block_fn() if block_fn is not None else None
    if not per_block:
        return None
    node_of = topology.node_of
    nodes = [int(node_of(devs[0])) for devs in _by_node(group, topology)]  # ascending
    blocks = sorted({n // per_block for n in nodes})
    keep = _WINDOW_BLOCKS
    # Nodes ascending: those in the first ``keep`` blocks are the ones below the next.
    while keep < len(blocks) and bisect_left(nodes, blocks[keep] * per_block) \
            < _WINDOW_MIN_NODES:
        keep += 1
    if len(blocks) < max(_WINDOW_MIN_BLOCKS, 2 * keep):
        return None
    return frozenset(n for b in blocks[:keep] for n in range(b * per_block, (b + 1) * per_block))


# --- per-topology caches (routes, latencies, results) ------------------------------------

_CACHES: dict[int, dict[str, dict]] = {}


def _cache(topology: Any) -> dict[str, dict] | None:
    """Caches for ``topology``, dropped when it is garbage-collected (keyed by id)."""
    key = id(topology)
    found = _CACHES.get(key)
    if found is not None:
        return found
    try:
        weakref.finalize(topology, _CACHES.pop, key, None)
    except TypeError:
        return None                      # not weak-referenceable: do not cache
    found = _CACHES[key] = {"route": {}, "lat": {}, "time": {}}
    return found


def _memo(topology: Any, name: str, key: Hashable, compute: Callable[[], Any]) -> Any:
    """``compute()`` memoised per topology under ``(name, key)``."""
    c = _cache(topology)
    if c is None:
        return compute()
    table = c.setdefault(name, {})
    if key not in table:
        table[key] = compute()
    return table[key]


def clear_cache() -> None:
    """Forget every memoised route and collective time."""
    _CACHES.clear()


def _route(topology: Any, src: int, dst: int) -> tuple:
    c = _cache(topology)
    if c is None:
        return tuple(topology.route(src, dst))
    r = c["route"].get((src, dst))
    if r is None:
        r = c["route"][(src, dst)] = tuple(topology.route(src, dst))
    return r


def _latency_s(topology: Any, src: int, dst: int) -> float:
    if src == dst:
        return 0.0
    c = _cache(topology)
    if c is None:
        return float(topology.route_latency_s(src, dst))
    r = c["lat"].get((src, dst))
    if r is None:
        r = c["lat"][(src, dst)] = float(topology.route_latency_s(src, dst))
    return r


def _latencies_s(topology: Any, pairs: Sequence[tuple[int, int]]) -> Sequence[float]:
    """Route latency of each ``(src, dst)``: in one call when the topology offers
    ``route_latencies_s`` (:class:`simwall.topology.Topology` does), else pair by pair."""
    bulk = getattr(topology, "route_latencies_s", None)
    if bulk is not None:
        return bulk(pairs)
    return [_latency_s(topology, a, b) for a, b in pairs]


def _by_node(group: Sequence[int], topology: Any) -> tuple[tuple[int, ...], ...]:
    """The group's devices split per node, nodes and devices in ascending order.
    Memoised per topology (groups of thousands recur across collectives and plans)."""
    return _memo(topology, "by_node", tuple(group), lambda: _split_by_node(group, topology))


def _split_by_node(group: Sequence[int], topology: Any) -> tuple[tuple[int, ...], ...]:
    nodes: dict[int, list[int]] = {}
    node_of = topology.node_of
    for d in sorted(group):
        n = int(node_of(d))
        if n in nodes:
            nodes[n].append(d)
        else:
            nodes[n] = [d]
    return tuple(tuple(nodes[n]) for n in sorted(nodes))


# --- building blocks ---------------------------------------------------------------------

def ring_channels(group: Sequence[int], topology: Any) -> list[list[int]]:
    """Ring orders used for ``group``: one per device of a node when every node holds the
    same number ``k > 1`` of the group's devices, else one.

    Channel ``c`` visits the nodes in order and, inside each, the local devices starting
    from local index ``c``; so it leaves each node from local device ``c - 1`` and every
    local device (hence its NIC, on a rail-optimised cluster) carries exactly one channel
    across nodes. This mirrors NCCL's multi-channel rings, whose bus bandwidth is
    ``nChannels * speed`` (NCCL src/graph/tuning.cc, ncclTopoTuneModel).
    """
    per_node = _by_node(group, topology)
    k = _channel_count(per_node)
    return [[n[(c + i) % len(n)] for n in per_node for i in range(len(n))] for c in range(k)]


def _channel_count(per_node: Sequence[Sequence[int]]) -> int:
    k = len(per_node[0]) if per_node else 1
    if len(per_node) < 2 or len(set(map(len, per_node))) != 1:
        return 1
    return k


@lru_cache(maxsize=256)
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


@lru_cache(maxsize=512)
def _children(parents: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Children of each tree position, in position order."""
    out: list[list[int]] = [[] for _ in parents]
    for child, par in enumerate(parents):
        if par != -1:
            out[par].append(child)
    return tuple(tuple(c) for c in out)


@lru_cache(maxsize=512)
def _top_down(parents: tuple[int, ...]) -> tuple[int, ...]:
    """Tree positions, every parent before its children (breadth first from the
    root)."""
    children = _children(parents)
    order = [r for r, par in enumerate(parents) if par == -1]
    for x in order:                  # grows while it is walked
        order.extend(children[x])
    return tuple(order)


@lru_cache(maxsize=512)
def _tree_depth(parents: tuple[int, ...]) -> int:
    """Hops from the deepest position up to the root."""
    depth = [0] * len(parents)
    for x in _top_down(parents):
        if parents[x] != -1:
            depth[x] = depth[parents[x]] + 1
    return max(depth, default=0)


def _kept(topology: Any, device: int, window: Window) -> bool:
    """Whether flows leaving ``device`` are costed under ``window`` (see :data:`Window`)."""
    return window is None or topology.node_of(device) in window


def _ring_phase(order: Sequence[int], channels: int, bytes_per_rank: float, steps: int,
                topology: Any, all_orders: Sequence[Sequence[int]] | None = None,
                window: Window = None, latency: bool = True) -> Phase:
    orders = all_orders if all_orders is not None else [order]
    flows: list[Flow] = []
    hop_s = 0.0
    for o in orders:
        p = len(o)
        for i in range(p):
            if not _kept(topology, o[i], window):
                continue
            flows.append((o[i], o[(i + 1) % p], bytes_per_rank / channels))
            if latency:
                hop_s = max(hop_s, _latency_s(topology, o[i], o[(i + 1) % p]))
    # Thakur et al. 2005: each of the `steps` steps costs one message latency alpha; all
    # ranks send at once, so a step waits for the slowest hop.
    return Phase(tuple(flows), steps, steps * hop_s)


# --- algorithms: (kind, group, bytes_, topology) -> phases ---------------------------------

def _ring(kind: str, group: Sequence[int], bytes_: float, topology: Any,
          window: Window = None, latency: bool = True) -> tuple[Phase, ...]:
    p = len(group)
    orders = ring_channels(group, topology)
    k = len(orders)
    if kind == "all_reduce":
        # Reduce-scatter then all-gather: 2(p-1) steps of bytes_/p (Thakur et al. 2005,
        # Sec. 4.4; nccl-tests PERFORMANCE.md busbw factor 2(n-1)/n).
        return (_ring_phase(orders[0], k, 2 * (p - 1) / p * bytes_, 2 * (p - 1), topology,
                            orders, window, latency),)
    if kind in ("reduce_scatter", "all_gather"):
        # p-1 steps of bytes_/p (Thakur et al. 2005; PERFORMANCE.md factor (n-1)/n).
        return (_ring_phase(orders[0], k, (p - 1) / p * bytes_, p - 1, topology, orders,
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
                if not _kept(topology, chain[i], window):
                    continue
                flows.append((chain[i], chain[i + 1], bytes_ / k))
                if latency:
                    hop_s = max(hop_s, _latency_s(topology, chain[i], chain[i + 1]))
        return (Phase(tuple(flows), p - 1, (p - 1) * hop_s),)
    return _direct(kind, group, bytes_, topology, window, latency)


def _path_latencies_s(parents: tuple[int, ...], leaders: Sequence[int], topology: Any
                      ) -> list[float]:
    """Latency from each tree position up to the root, hop by hop."""
    order = [x for x in _top_down(parents) if parents[x] != -1]
    hops = _latencies_s(topology, [(leaders[x], leaders[parents[x]]) for x in order])
    path = [0.0] * len(parents)
    for x, hop_s in zip(order, hops):
        path[x] = path[parents[x]] + hop_s
    return path


def _tree(kind: str, group: Sequence[int], bytes_: float, topology: Any,
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
        return _ring(kind, group, bytes_, topology, window, latency)
    up = kind == "all_reduce"                  # broadcast only sends down
    per_node = _by_node(group, topology)
    k = _channel_count(per_node)
    trees = double_binary_tree(len(per_node)) if len(per_node) > 1 else ()
    flows: list[Flow] = []
    chain_s = 0.0
    tree_s = 0.0
    # Positions (nodes of the group, in order) whose outgoing flows are costed.
    kept = (range(len(per_node)) if window is None else
            [i for i, n in enumerate(per_node) if _kept(topology, n[0], window)])
    for c in range(k):
        for pos in kept:
            n = per_node[pos]
            devs = [n[(c + i) % len(n)] for i in range(len(n))]
            # Chain inside the node: both trees of the channel share it (whole share).
            for a, b in pairwise(devs):
                flows.append((a, b, bytes_ / k))
                if up:
                    flows.append((b, a, bytes_ / k))
            if latency:
                chain_s = max(chain_s, sum(_latency_s(topology, a, b)
                                           for a, b in pairwise(devs)))
        leaders = [n[c % len(n)] for n in per_node]
        for parents in trees:
            children = _children(parents)
            for pos in kept:
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


def _merge_phases(parts: Sequence[tuple[Phase, ...]]) -> tuple[Phase, ...]:
    """Run several phase lists side by side: phase i of each, concurrently."""
    out = []
    for i in range(max((len(p) for p in parts), default=0)):
        here = [p[i] for p in parts if i < len(p)]
        out.append(Phase(tuple(f for ph in here for f in ph.flows),
                         max(ph.steps for ph in here), max(ph.latency_s for ph in here)))
    return tuple(out)


def _hierarchical(kind: str, group: Sequence[int], bytes_: float, topology: Any,
                  window: Window = None, latency: bool = True) -> tuple[Phase, ...]:
    """Intra-node ring reduce-scatter, inter-node ring all-reduce among rail peers (local
    index j of every node) on the node's 1/k shard, intra-node ring all-gather (the 2D
    scheme of Mikami et al., "Massively Distributed SGD: ImageNet/ResNet-50 Training in a
    Flash", 2018, arXiv:1811.05233; Horovod's hierarchical all-reduce)."""
    per_node = _by_node(group, topology)
    k = len(per_node[0])
    if any(len(n) != k for n in per_node) or kind in ("broadcast", "send_recv"):
        # Uneven nodes have no rail peers for every shard; broadcast has no reduction to
        # split. Both fall back to the flat ring.
        return _ring(kind, group, bytes_, topology, window, latency)
    rails = [[n[j] for n in per_node] for j in range(k)]
    shard = bytes_ / k

    # Under a window only the rings of its nodes carry costed flows (every node's intra
    # ring is alike); one ring is kept regardless so that the phases line up.
    costed = [n for n in per_node if _kept(topology, n[0], window)]

    def intra(sub_kind: str) -> tuple[Phase, ...]:
        return _merge_phases([_ring(sub_kind, n, bytes_, topology, window, latency)
                              for n in (costed or per_node[:1]) if len(n) > 1])

    def inter(sub_kind: str) -> tuple[Phase, ...]:
        return _merge_phases([_ring(sub_kind, r, shard, topology, window, latency)
                              for r in rails if len(r) > 1])

    if kind == "all_reduce":
        return intra("reduce_scatter") + inter("all_reduce") + intra("all_gather")
    if kind == "reduce_scatter":
        return intra("reduce_scatter") + inter("reduce_scatter")
    return inter("all_gather") + intra("all_gather")           # all_gather


def _direct(kind: str, group: Sequence[int], bytes_: float, topology: Any,
            window: Window = None, latency: bool = True) -> tuple[Phase, ...]:
    """Every rank talks to every other at once: p(p-1) flows; for small groups."""
    p = len(group)
    g = list(group)
    if kind == "send_recv":
        if p != 2:
            raise SimwallError(f"send_recv needs a group [src, dst], got {g}")
        return (Phase(((g[0], g[1], float(bytes_)),), 1, _latency_s(topology, g[0], g[1])),)
    if kind == "broadcast":
        flows = [(g[0], d, float(bytes_)) for d in g[1:]]
        steps = 1
    else:
        per_pair = bytes_ / p * (2 if kind == "all_reduce" else 1)
        flows = [(a, b, per_pair) for a in g if _kept(topology, a, window)
                 for b in g if a != b]
        steps = 2 if kind == "all_reduce" else 1     # scatter-reduce, then gather
    if kind == "broadcast" and not _kept(topology, g[0], window):
        flows = []
    hop_s = max((_latency_s(topology, a, b) for a, b, _ in flows), default=0.0) \
        if latency else 0.0
    return (Phase(tuple(flows), steps, steps * hop_s),)


# Registry: adding an algorithm is one entry (style guide habit 7).
ALGORITHMS: dict[str, Callable[..., tuple[Phase, ...]]] = {
    "ring": _ring,
    "tree": _tree,
    "hierarchical": _hierarchical,
    "direct": _direct,
}


def _check(kind: str, group: Sequence[int], bytes_: float) -> None:
    if kind not in KINDS:
        raise SimwallError(f"unknown collective kind '{kind}'; expected one of {KINDS}")
    if not bytes_ >= 0.0 or math.isinf(bytes_):
        raise SimwallError(f"collective bytes_ must be finite and >= 0, got {bytes_}")
    if not _distinct(tuple(group)):
        raise SimwallError(f"collective group has repeated devices: {list(group)}")


@lru_cache(maxsize=4096)
def _distinct(group: tuple[int, ...]) -> bool:
    return len(set(group)) == len(group)


def collective_phases(kind: str, group: Sequence[int], bytes_: float, topology: Any,
                      algorithm: str = "auto", window: Window = None,
                      latency: bool = True) -> tuple[Phase, ...]:
    """Phases of ``kind`` on ``group`` (device ids) moving ``bytes_`` per rank.

    ``algorithm`` is a key of :data:`ALGORITHMS` or ``'auto'`` (:func:`choose_algorithm`).
    A group of one device, or zero bytes, has no phases. ``window``: keep only the flows
    leaving those nodes (:data:`Window`); ``latency=False``: leave latency terms at 0.
    """
    _check(kind, group, bytes_)
    if len(group) < 2 or bytes_ == 0.0:
        return ()
    if algorithm == "auto":
        algorithm = choose_algorithm(kind, group, bytes_, topology, window)
    fn = ALGORITHMS.get(algorithm)
    if fn is None:
        raise SimwallError(f"unknown collective algorithm '{algorithm}'; expected 'auto' or"
                           f" one of {sorted(ALGORITHMS)}")
    if kind == "send_recv":
        return _direct(kind, group, bytes_, topology)
    return fn(kind, group, bytes_, topology, window, latency)


# The architecture contract's name for the same thing.
collective_flows = collective_phases


def representative_flows(flows: Sequence[Flow], weights: Sequence[float] | None = None
                         ) -> list[tuple[Flow, float]]:
    """Identical ``(src, dst, bytes_)`` flows merged into one with a weight (count).

    Merging is exact under max-min sharing: ``weight`` copies on the same route get the
    same share as enumerated ones (:func:`simwall.network.maxmin_rates`). Order: first
    appearance. Translated groups on *different* links are not identical flows: pass them
    enumerated (routes are cached, so this stays cheap).
    """
    merged: dict[Flow, float] = {}
    for i, f in enumerate(flows):
        merged[f] = merged.get(f, 0.0) + (1.0 if weights is None else float(weights[i]))
    return list(merged.items())


def _phase_time_s(phases_per_group: Sequence[tuple[Phase, ...]],
                  weights: Sequence[float], topology: Any) -> tuple[float, float]:
    latency_s = 0.0
    bandwidth_s = 0.0
    for i in range(max((len(p) for p in phases_per_group), default=0)):
        flows: list[Flow] = []
        fw: list[float] = []
        lat = 0.0
        for phases, w in zip(phases_per_group, weights):
            if i < len(phases):
                flows.extend(phases[i].flows)
                fw.extend([w] * len(phases[i].flows))
                lat = max(lat, phases[i].latency_s)
        latency_s += lat
        batch = [(_route(topology, s, d), b, w)
                 for (s, d, b), w in representative_flows(flows, fw)]
        bandwidth_s += drain_time_s(batch, topology.capacity)
    return latency_s, bandwidth_s


def collective_time_parts(topology: Any, kind: str, groups: Sequence[Sequence[int]],
                          bytes_: float, algorithm: str = "auto",
                          weights: Sequence[float] | None = None,
                          window: Window = None) -> tuple[float, float]:
    """``(latency_s, bandwidth_s)`` of ``kind`` run by all ``groups`` at once.

    Phase ``i`` of every group runs concurrently; its latency is the largest of the
    groups' and its bandwidth time the max-min drain time of all their flows together.
    ``weights[g]`` (default 1) says group ``g`` stands for that many identical copies on
    the same links (e.g. several collectives on one group at once). With ``'auto'`` each
    group picks its own algorithm. Memoised per topology.

    ``window`` (from :func:`symmetry_window`): the groups are translations of each other
    on a periodic topology; only flows leaving the window's nodes are put on the network,
    and the latency is the first group's (its translations have the same).
    """
    groups_t = tuple(tuple(g) for g in groups)
    weights_t = None if weights is None else tuple(float(w) for w in weights)
    key = (kind, groups_t, float(bytes_), algorithm, weights_t, window)
    c = _cache(topology)
    if c is not None and key in c["time"]:
        return c["time"][key]
    if weights_t is not None and len(weights_t) != len(groups):
        raise SimwallError(f"{len(weights_t)} weights for {len(groups)} groups")
    for g in groups_t:
        _check(kind, g, bytes_)
    if bytes_ == 0.0:
        result = (0.0, 0.0)
    else:
        # Every flow is a fixed fraction of bytes_, so the fluid drain time is bytes_ times
        # that of one byte (rates do not depend on sizes) and the latency does not depend
        # on it: cost one byte once per (groups, algorithms) and scale.
        algos = tuple(choose_algorithm(kind, g, bytes_, topology, window)
                      if algorithm == "auto" else algorithm for g in groups_t)
        latency_s, per_byte_s = _unit_time_s(topology, kind, groups_t, algos, weights_t,
                                             window)
        result = (latency_s, per_byte_s * float(bytes_))
    if c is not None:
        c["time"][key] = result
    return result


def _unit_time_s(topology: Any, kind: str, groups: tuple[tuple[int, ...], ...],
                 algorithms: tuple[str, ...], weights_t: tuple[float, ...] | None,
                 window: Window) -> tuple[float, float]:
    """(latency_s, bandwidth seconds per byte) of ``groups`` each running its algorithm."""
    def compute() -> tuple[float, float]:
        phases = [collective_phases(kind, g, 1.0, topology, a, window,
                                    latency=window is None or i == 0)
                  for i, (g, a) in enumerate(zip(groups, algorithms))]
        ws = [1.0] * len(groups) if weights_t is None else list(weights_t)
        return _phase_time_s(phases, ws, topology)
    return _memo(topology, "unit", (kind, groups, algorithms, weights_t, window), compute)


def collective_time_s(topology: Any, kind: str, groups: Sequence[Sequence[int]],
                      bytes_: float, algorithm: str = "auto",
                      weights: Sequence[float] | None = None,
                      window: Window = None) -> float:
    """Seconds until every group in ``groups`` has finished ``kind`` of ``bytes_``, all
    starting together and sharing links max-min fairly. See
    :func:`collective_time_parts`."""
    latency_s, bandwidth_s = collective_time_parts(topology, kind, groups, bytes_,
                                                   algorithm, weights, window)
    return latency_s + bandwidth_s


def _candidates(kind: str, group: Sequence[int], topology: Any) -> list[str]:
    if kind == "send_recv":
        return ["direct"]
    return _memo(topology, "candidates", (kind, tuple(group)),
                 lambda: _candidates_of(kind, group, topology))


def _candidates_of(kind: str, group: Sequence[int], topology: Any) -> list[str]:
    per_node = _by_node(group, topology)
    out = ["ring"]
    multi_node = len(per_node) > 1
    uniform = len({len(n) for n in per_node}) == 1
    if multi_node and uniform and len(per_node[0]) > 1 and kind != "broadcast":
        out.append("hierarchical")
    if multi_node and kind == "all_reduce":
        out.append("tree")          # NCCL uses trees for all-reduce only (tuning.cc)
    return out


def choose_algorithm(kind: str, group: Sequence[int], bytes_: float, topology: Any,
                     window: Window = None) -> str:
    """The algorithm with the least modelled time for this group alone, like NCCL, which
    predicts ``latency + bytes / bandwidth`` per algorithm and takes the minimum (NCCL
    src/graph/tuning.cc, ncclTopoGetAlgoTime).

    Candidates: ``send_recv`` -> direct. Otherwise ring; hierarchical when the group spans
    several nodes with the same number (> 1) of devices on each (not for broadcast); tree
    for all-reduce across several nodes. The crossover sizes follow from the topology:
    tree wins for small messages because its latency grows with log2(nodes) rather than
    with the ring's 2(p - 1) steps. Ties go to the earlier candidate (ring first).
    """
    _check(kind, group, bytes_)
    cands = _candidates(kind, group, topology)
    if len(cands) == 1 or len(group) < 2 or bytes_ == 0.0:
        return cands[0]
    best, best_s = cands[0], math.inf
    for name in cands:
        t = collective_time_s(topology, kind, [list(group)], bytes_, name, window=window)
        if t < best_s:
            best, best_s = name, t
    return best


def run_phases(env: Any, net: Any, topology: Any, phases: Sequence[Phase]) -> Any:
    """SimPy process body running ``phases`` one after another on a
    :class:`simwall.network.FlowNetwork`: each phase waits its latency, then starts all
    its flows and waits for the last. Alone on the network it takes
    :func:`collective_time_s`; sharing it, it takes what the other traffic leaves.

    Use as ``yield env.process(run_phases(env, net, topology, phases))``.
    """
    for phase in phases:
        if phase.latency_s > 0.0:
            yield env.timeout(phase.latency_s)
        events = [net.transfer(_route(topology, s, d), b, weight=w)
                  for (s, d, b), w in representative_flows(phase.flows)]
        if events:
            yield env.all_of(events)
