"""What the algorithms read of a topology, memoised per topology object (assumed
immutable once built; :func:`simwall.memo.table`): routes, route latencies, the group
split per node."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from ... import memo
from .phases import TopologyLike, Window
from .protocol import REFERENCE_HOP_S

__all__ = ["by_node", "channel_count", "hop_extra_s", "kept", "latencies_s", "latency_s",
           "link_classes", "memo_on", "numbered_routes", "nvls_applies", "pair_latencies_s",
           "route", "routes"]


def _table(topology: TopologyLike, name: str) -> dict | None:
    """The memo table ``name`` of ``topology``, or None when it cannot hold one."""
    try:
        return memo.table(topology, "collectives." + name)
    except TypeError:
        return None                      # not weak-referenceable: do not cache


def memo_on(topology: TopologyLike, name: str, key: Hashable,
            compute: Callable[[], Any]) -> Any:
    """``compute()`` memoised per topology under ``(name, key)``."""
    table = _table(topology, name)
    if table is None:
        return compute()
    if key not in table:
        table[key] = compute()
    return table[key]


def route(topology: TopologyLike, src: int, dst: int) -> tuple:
    """``topology.route(src, dst)`` as a tuple, memoised."""
    return memo_on(topology, "route", (src, dst), lambda: tuple(topology.route(src, dst)))


def routes(topology: TopologyLike, pairs) -> list[tuple]:
    """:func:`route` of every ``(src, dst)`` in ``pairs``, in order, the memo table looked
    up once (a phase of a large group asks for hundreds)."""
    table = _table(topology, "route")
    if table is None:
        return [tuple(topology.route(s, d)) for s, d in pairs]
    out = []
    for key in pairs:
        found = table.get(key)
        if found is None:
            found = table[key] = tuple(topology.route(*key))
        out.append(found)
    return out


def numbered_routes(topology: TopologyLike, pairs
                    ) -> tuple[list[tuple], Callable[[Any], float]]:
    """(the :func:`route` of every ``(src, dst)`` in ``pairs`` with each edge replaced by
    its number on the topology, capacity by number). A batch of these drains as the
    routes themselves do (:func:`simwall.net.flows.drain_time_s` sees the edges only
    through their first use and their capacity), while numbering the batch's edges
    hashes ints, not nested node tuples. Numbers and numbered routes are memoised per
    topology."""
    number = _table(topology, "edge_number")           # edge -> number
    capacity = _table(topology, "numbered_capacity")   # number -> the edge's capacity
    numbered = _table(topology, "numbered_route")      # (src, dst) -> numbers
    if number is None or capacity is None or numbered is None:
        return routes(topology, pairs), topology.capacity
    out = []
    for key in pairs:
        found = numbered.get(key)
        if found is None:
            ids = []
            for e in route(topology, *key):
                j = number.get(e)
                if j is None:
                    j = number[e] = len(capacity)
                    capacity[j] = topology.capacity(e)
                ids.append(j)
            found = numbered[key] = tuple(ids)
        out.append(found)
    return out, capacity.__getitem__


def latency_s(topology: TopologyLike, src: int, dst: int) -> float:
    """Route latency from ``src`` to ``dst`` in seconds (0 on one device), memoised."""
    if src == dst:
        return 0.0
    return memo_on(topology, "lat", (src, dst),
                   lambda: float(topology.route_latency_s(src, dst)))


def pair_latencies_s(topology: TopologyLike, pairs) -> list[float]:
    """:func:`latency_s` of every ``(src, dst)`` in ``pairs``, in order, the memo table
    looked up once."""
    table = _table(topology, "lat")
    if table is None:
        return [latency_s(topology, a, b) for a, b in pairs]
    out = []
    for key in pairs:
        if key[0] == key[1]:
            out.append(0.0)
            continue
        found = table.get(key)
        if found is None:
            found = table[key] = float(topology.route_latency_s(*key))
        out.append(found)
    return out


def latencies_s(topology: TopologyLike, pairs: Sequence[tuple[int, int]]) -> Sequence[float]:
    """Route latency of each ``(src, dst)``: in one call when the topology offers
    ``route_latencies_s`` (:class:`simwall.net.topology.Topology` does), else pair by
    pair."""
    bulk = getattr(topology, "route_latencies_s", None)
    if bulk is not None:
        return bulk(pairs)
    return pair_latencies_s(topology, pairs)


def by_node(group: Sequence[int], topology: TopologyLike) -> tuple[tuple[int, ...], ...]:
    """The group's devices split per node, nodes and devices in ascending order.
    Memoised per topology (groups of thousands recur across collectives and plans)."""
    return memo_on(topology, "by_node", tuple(group), lambda: _split_by_node(group, topology))


def _split_by_node(group: Sequence[int], topology: TopologyLike
                   ) -> tuple[tuple[int, ...], ...]:
    nodes: dict[int, list[int]] = {}
    node_of = topology.node_of
    for d in sorted(group):
        n = int(node_of(d))
        if n in nodes:
            nodes[n].append(d)
        else:
            nodes[n] = [d]
    return tuple(tuple(nodes[n]) for n in sorted(nodes))


def channel_count(per_node: Sequence[Sequence[int]]) -> int:
    """Channels (rings or trees) a group uses: its devices per node when every node holds
    the same number of them and there are several nodes, else 1."""
    k = len(per_node[0]) if per_node else 1
    if len(per_node) < 2 or len(set(map(len, per_node))) != 1:
        return 1
    return k


def kept(topology: TopologyLike, device: int, window: Window) -> bool:
    """Whether flows leaving ``device`` are costed under ``window`` (see
    :data:`~simwall.net.collectives.phases.Window`)."""
    return window is None or topology.node_of(device) in window


def link_classes(topology: TopologyLike) -> tuple[str | None, str | None, float | None]:
    """``(intra, inter, nvls_efficiency)`` of the topology's link classes: the NCCL
    hardware class of its intra-node and inter-node links (``LinkSpec.nccl_class``: nvlink,
    pci, net; None where NCCL's constants do not apply, e.g. TPU ICI), and the NVLink SHARP
    efficiency of the intra link when the node is an NVSwitch (else None). A topology
    without a build context (test doubles) has none of them."""
    ctx = getattr(topology, "context", None)
    if ctx is None:
        return (None, None, None)
    intra, inter = ctx.intra_link, ctx.inter_link
    nvswitch = (ctx.cluster.intra.topology == "nvswitch"
                or (ctx.cluster.intra.topology == "graph" and _switched(topology)))
    return (getattr(intra, "nccl_class", None), getattr(inter, "nccl_class", None),
            getattr(intra, "nvls_efficiency", None) if nvswitch else None)


def hop_extra_s(topology: TopologyLike) -> tuple[float, float]:
    """What an intra- and an inter-node hop of NCCL's latency model take beyond its
    constants: each link's ``latency`` over the reference of its NCCL class
    (:data:`.protocol.REFERENCE_HOP_S`; 0 for every catalog link, and where a link has no
    class or the topology no build context)."""
    ctx = getattr(topology, "context", None)
    if ctx is None:
        return (0.0, 0.0)

    def extra(link) -> float:
        hw = getattr(link, "nccl_class", None)
        return link.latency_s - REFERENCE_HOP_S[hw] if hw in REFERENCE_HOP_S else 0.0
    return (extra(ctx.intra_link), extra(ctx.inter_link))


def _switched(topology: TopologyLike) -> bool:
    """Whether a cluster given as a graph joins a node's devices through a switch of that
    node (an NVSwitch): device 0 has an intra-node link to a node that is no device."""
    def compute() -> bool:
        g = getattr(topology, "graph", None)
        dev = ("dev", 0)
        if g is None or dev not in g:
            return False
        return any(v[0] != "dev" and g.edges[dev, v].get("kind") == "intra"
                   for v in g.successors(dev))
    return memo_on(topology, "switched", None, compute)


def nvls_applies(group: Sequence[int], topology: TopologyLike) -> bool:
    """Whether NVLink SHARP can run ``group``: two or more devices, all on one node of an
    NVSwitch whose link class has an ``nvls_efficiency`` (NVLink4 and later)."""
    return (len(group) > 1 and link_classes(topology)[2] is not None
            and len(by_node(group, topology)) == 1)
