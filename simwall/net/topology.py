"""The cluster as a graph: devices, NICs, switches and host memory, joined by directed links.

``build_topology(cluster)`` turns a validated :class:`~simwall.config.ClusterSpec` (with
``nodes`` resolved) into a :class:`Topology`: a ``networkx.DiGraph`` (built on first use
for a fault-free cluster; :meth:`Topology.edge_attrs` reads single edges without it) whose
every directed edge carries

- ``bandwidth_bytes_per_s``: capacity in that direction (a link's per-direction bandwidth,
  scaled by any fault factor),
- ``latency_s``: this edge's share of the hop latency of its link class,
- ``link``: the catalog link class name (``NVLink3``, ``IB-HDR`` ...),
- ``kind``: ``intra`` (device to device or to the node's NVSwitch), ``nic`` (device to
  its NIC), ``net`` (NIC to leaf switch, or NIC to NIC for an inter-node ring), ``spine``
  (leaf to spine, aggregated), ``inter`` (chip to chip on a pod-wide torus), ``host``
  (device to its node's host memory),
- ``efficiency``: the link class's achievable fraction of bandwidth (for the network model).

Node names (tuples; ``str`` names in parentheses, as written in ``faults.links``):
``("dev", i)`` (``dev3`` or ``3``), ``("nvsw", node)`` (``nvsw0``), ``("nic", node, k)``
(``nic0.2``), ``("leaf", rail, j)`` (``leaf2.0``), ``("spine", 0)`` (``spine``),
``("host", node)`` (``host0``).

Generators live in two registry dicts, ``INTRA_GENERATORS`` and ``INTER_GENERATORS``
(together ``GENERATORS``), keyed by the topology name a cluster file uses; each is a
:class:`Generator` (a ``links`` function that gives the links one node owns, and a
``route`` function that gives the structural path between two devices). Adding one is a
single edit.
See docs/hardware.md for the routing and bisection definitions.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import pairwise
from typing import NamedTuple

import networkx as nx
import numpy as np

from ..config import ClusterSpec, DeviceSpec, LinkSpec
from ..errors import ConfigError
from ..hardware.catalog import resolve_device, resolve_link

__all__ = [
    "GENERATORS",
    "INTER_GENERATORS",
    "INTRA_GENERATORS",
    "Generator",
    "Topology",
    "build_topology",
    "node_name",
    "parse_node_name",
]

Node = tuple
Edge = tuple[Node, Node]


# ---------------------------------------------------------------------------------------
# Node names


_NAME_RE = re.compile(r"^([a-z]*)(\d+(?:\.\d+)*)?$")
_NAME_ARITY = {"dev": 1, "nvsw": 1, "nic": 2, "leaf": 2, "spine": 1, "host": 1}


def node_name(node: Node) -> str:
    """The string form of a graph node: ``("nic", 0, 2)`` -> ``"nic0.2"``."""
    if node == ("spine", 0):
        return "spine"
    return node[0] + ".".join(str(p) for p in node[1:])


def parse_node_name(text: str) -> Node | None:
    """The graph node a name denotes (``"dev3"``, ``"3"``, ``"nic0.2"``), or None."""
    m = _NAME_RE.match(text.strip().lower())
    if not m:
        return None
    kind, nums = m.group(1) or "dev", m.group(2)
    parts = tuple(int(p) for p in nums.split(".")) if nums else ()
    if kind == "spine" and not parts:
        parts = (0,)
    if kind not in _NAME_ARITY or len(parts) != _NAME_ARITY[kind]:
        return None
    return (kind, *parts)


# ---------------------------------------------------------------------------------------
# Build context and generator registry


@dataclass(frozen=True)
class _Ctx:
    """What generators read: sizes and resolved link classes. Units in names."""

    cluster: ClusterSpec
    source: str
    nodes: int
    devices_per_node: int
    intra_link: LinkSpec
    inter_link: LinkSpec
    host_link: LinkSpec

    @property
    def num_devices(self) -> int:
        return self.nodes * self.devices_per_node

    @cached_property
    def rails(self) -> int:
        """NICs per node that some device uses (device ``i`` uses NIC ``i % nics``)."""
        return min(self.cluster.inter.nics_per_node, self.devices_per_node)


class Link(NamedTuple):
    """One full-duplex link between graph nodes ``u`` and ``v``: two directed edges with
    the same attributes (see the module docstring; links of one kind may share the dict,
    which is read-only)."""

    u: Node
    v: Node
    attrs: dict


def _attrs(spec: LinkSpec, kind: str, latency_s: float,
           bandwidth_bytes_per_s: float | None = None) -> dict:
    """Edge attributes of a link of class ``spec`` (its bandwidth unless given)."""
    bw = spec.bandwidth_bytes_per_s if bandwidth_bytes_per_s is None else bandwidth_bytes_per_s
    return {"bandwidth_bytes_per_s": bw, "latency_s": latency_s, "link": spec.name,
            "kind": kind, "efficiency": spec.efficiency}


def _add_links(g: nx.DiGraph, links: Iterable[Link]) -> None:
    for u, v, attrs in links:            # each edge gets its own copy (faults scale it)
        g.add_edge(u, v, **attrs)
        g.add_edge(v, u, **attrs)


# links(ctx, n) -> the links node n owns (each has an end on node n: one of its devices,
# its NVSwitch, NICs or host memory), in the order they are added to the graph.
LinksFn = Callable[[_Ctx, int], Iterable[Link]]
# route(topology, src, dst) -> node path from ("dev", src) to ("dev", dst), or None when
# this generator cannot connect them (e.g. intra 'none').
RouteFn = Callable[["Topology", int, int], list | None]


def _no_links(ctx: _Ctx, switch: Node | None = None) -> tuple:
    return ()


def _no_check(ctx: _Ctx) -> None:
    return None


@dataclass(frozen=True)
class Generator:
    """A topology generator: ``links`` gives each node's links, ``route`` the paths;
    ``shared(ctx, switch=None)`` the links no node owns (switch to switch), added after
    every node's (only those of ``switch`` when given); ``check`` rejects a cluster it
    cannot build (a ConfigError) before anything is."""

    links: LinksFn
    route: RouteFn
    doc: str = ""
    shared: Callable[[_Ctx, Node | None], Iterable[Link]] = _no_links
    check: Callable[[_Ctx], None] = _no_check


def _dev(i: int) -> Node:
    return ("dev", i)


def _torus_coords(index: int, dims: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major coordinates (last dimension fastest) of ``index`` in a ``dims`` grid."""
    out = []
    for k in reversed(dims):
        out.append(index % k)
        index //= k
    return tuple(reversed(out))


def _torus_index(coords: tuple[int, ...], dims: tuple[int, ...]) -> int:
    index = 0
    for c, k in zip(coords, dims):
        index = index * k + c
    return index


def _torus_edges(dims: tuple[int, ...], indices: Iterable[int] | None = None):
    """Each undirected torus link once, as (index a, index b), in a fixed order; only
    those from ``indices`` (default: all) when given.

    Same wiring as ``nx.grid_graph(dims, periodic=True)``: +1 neighbour in every dimension
    with wrap-around; a dimension of size 2 has a single link, size 1 none.
    """
    for a in range(math.prod(dims)) if indices is None else indices:
        ca = _torus_coords(a, dims)
        for d, k in enumerate(dims):
            if k == 1 or (k == 2 and ca[d] == 1):
                continue
            cb = list(ca)
            cb[d] = (ca[d] + 1) % k
            yield a, _torus_index(tuple(cb), dims)


def _torus_path(a: int, b: int, dims: tuple[int, ...]) -> list[int]:
    """Dimension-order route on a torus: fix dimension 0 first, then 1, ...; in each the
    shorter way round, ties (exactly half way) in the + direction. Deterministic."""
    cur = list(_torus_coords(a, dims))
    target = _torus_coords(b, dims)
    path = [a]
    for d, k in enumerate(dims):
        fwd = (target[d] - cur[d]) % k
        step = 1 if fwd <= k - fwd else -1
        while cur[d] != target[d]:
            cur[d] = (cur[d] + step) % k
            path.append(_torus_index(tuple(cur), dims))
    return path


def _ring_path(a: int, b: int, k: int) -> list[int]:
    """Shorter way round a ring of ``k`` positions; ties go the + way."""
    fwd = (b - a) % k
    step = 1 if fwd <= k - fwd else -1
    path = [a]
    while path[-1] != b:
        path.append((path[-1] + step) % k)
    return path


# ---- intra-node generators -----------------------------------------------------------


def _nvswitch_links(ctx: _Ctx, n: int) -> Iterator[Link]:
    # One switch node per node; each device attaches with its full per-direction NVLink
    # bandwidth, so any pair's bottleneck is the per-GPU NVLink bandwidth (NVSwitch is
    # non-blocking). The hop latency is split over the two edges.
    attrs = _attrs(ctx.intra_link, "intra", ctx.intra_link.latency_s / 2)
    for j in range(ctx.devices_per_node):
        yield Link(_dev(n * ctx.devices_per_node + j), ("nvsw", n), attrs)


def _route_nvswitch(topo: Topology, s: int, t: int) -> list:
    return [_dev(s), ("nvsw", topo.node_of(s)), _dev(t)]


def _mesh_links(ctx: _Ctx, n: int) -> Iterator[Link]:
    # Fully connected: one direct link per device pair (e.g. MI300X's 7 xGMI links).
    D = ctx.devices_per_node
    attrs = _attrs(ctx.intra_link, "intra", ctx.intra_link.latency_s)
    for a in range(D):
        for b in range(a + 1, D):
            yield Link(_dev(n * D + a), _dev(n * D + b), attrs)


def _route_mesh(topo: Topology, s: int, t: int) -> list:
    return [_dev(s), _dev(t)]


def _ring_links(ctx: _Ctx, n: int) -> Iterator[Link]:
    D = ctx.devices_per_node
    attrs = _attrs(ctx.intra_link, "intra", ctx.intra_link.latency_s)
    for a in range(D if D > 2 else D - 1):
        yield Link(_dev(n * D + a), _dev(n * D + (a + 1) % D), attrs)


def _route_ring(topo: Topology, s: int, t: int) -> list:
    D, base = topo.devices_per_node, topo.node_of(s) * topo.devices_per_node
    return [_dev(base + j) for j in _ring_path(s - base, t - base, D)]


def _intra_dims(ctx: _Ctx) -> tuple[int, ...]:
    dims = ctx.cluster.intra.dims
    if dims is None:
        raise ConfigError(ctx.source, "intra.dims",
                          f"required for intra.topology 'torus' (a list whose product is "
                          f"devices_per_node = {ctx.devices_per_node})")
    if math.prod(dims) != ctx.devices_per_node:
        raise ConfigError(ctx.source, "intra.dims",
                          f"product must equal devices_per_node ({ctx.devices_per_node}), "
                          f"got {list(dims)} (product {math.prod(dims)})")
    return tuple(dims)


def _intra_torus_links(ctx: _Ctx, n: int) -> Iterator[Link]:
    D = ctx.devices_per_node
    attrs = _attrs(ctx.intra_link, "intra", ctx.intra_link.latency_s)
    for a, b in _torus_edges(_intra_dims(ctx)):
        yield Link(_dev(n * D + a), _dev(n * D + b), attrs)


def _route_intra_torus(topo: Topology, s: int, t: int) -> list:
    dims = tuple(topo.cluster.intra.dims)
    base = topo.node_of(s) * topo.devices_per_node
    return [_dev(base + j) for j in _torus_path(s - base, t - base, dims)]


def _none_links(ctx: _Ctx, n: int) -> tuple:
    return ()


def _route_none(topo: Topology, s: int, t: int) -> None:
    return None


INTRA_GENERATORS: dict[str, Generator] = {
    "nvswitch": Generator(_nvswitch_links, _route_nvswitch,
                          "all devices of a node on one non-blocking NVSwitch"),
    "mesh": Generator(_mesh_links, _route_mesh, "a direct link between every device pair"),
    "ring": Generator(_ring_links, _route_ring, "devices of a node in a bidirectional ring"),
    "torus": Generator(_intra_torus_links, _route_intra_torus,
                       "devices of a node on a torus of shape intra.dims",
                       check=_intra_dims),
    "none": Generator(_none_links, _route_none, "no direct device links inside a node"),
}


# ---- inter-node generators -----------------------------------------------------------


def _nic_links(ctx: _Ctx, n: int) -> Iterator[Link]:
    # Each device uses NIC (local index % nics_per_node). The NIC is attached to its device
    # directly with the NIC's bandwidth (DGX boxes put a PCIe switch between GPU and NIC;
    # with GPUDirect RDMA the NIC port, not that PCIe hop, is the bottleneck: PCIe4 x16
    # 31.5 GB/s > HDR 25 GB/s, PCIe5 x16 63 GB/s > NDR 50 GB/s). Latency is carried by the
    # NIC-to-network edges.
    D, rails = ctx.devices_per_node, ctx.rails
    attrs = _attrs(ctx.inter_link, "nic", 0.0)
    for j in range(D):
        yield Link(("dev", n * D + j), ("nic", n, j % rails), attrs)


def _fat_tree_layout(ctx: _Ctx) -> tuple[int, bool]:
    """(nodes per leaf, rail optimised). Leaf ports split radix * o / (1 + o) down."""
    inter = ctx.cluster.inter
    o = inter.oversubscription
    down_ports = max(1, int(inter.switch_radix * o / (1 + o)))
    if inter.rail_optimized:
        return down_ports, True
    return max(1, down_ports // ctx.rails), False


def _leaf_of(ctx: _Ctx, node: int, rail: int, layout: tuple[int, bool]) -> Node:
    per_leaf, rail_opt = layout
    return ("leaf", rail if rail_opt else 0, node // per_leaf)


def _fat_tree_links(ctx: _Ctx, n: int) -> Iterator[Link]:
    # Two-level leaf/spine tree. Rail-optimised (NVIDIA DGX SuperPOD reference
    # architecture; Selene in Narayanan et al. 2021): NIC k of every node goes to a leaf of
    # rail k. Otherwise all NICs of a node go to one leaf. The spine level is modelled as
    # one non-blocking switch (see _fat_tree_uplinks).
    yield from _nic_links(ctx, n)
    layout = _fat_tree_layout(ctx)
    attrs = _attrs(ctx.inter_link, "net", ctx.inter_link.latency_s / 2)
    for k in range(ctx.rails):
        yield Link(("nic", n, k), _leaf_of(ctx, n, k, layout), attrs)


def _fat_tree_uplinks(ctx: _Ctx, switch: Node | None = None) -> Iterator[Link]:
    # Each leaf's uplinks are aggregated into one edge to the spine whose capacity is
    # (leaf downlink bandwidth in use) / oversubscription; none with a single leaf.
    # Leaves in order of first use by node (then rail), as the nodes' links reach them.
    per_leaf, rail_opt = _fat_tree_layout(ctx)
    leaves = -(-ctx.nodes // per_leaf)
    groups = ctx.rails if rail_opt else 1
    if leaves * groups < 2:
        return
    if switch is None:
        order = [("leaf", k, j) for j in range(leaves) for k in range(groups)]
    elif (len(switch) == 3 and switch[0] == "leaf" and type(switch[1]) is int
          and type(switch[2]) is int and 0 <= switch[1] < groups and 0 <= switch[2] < leaves):
        order = [switch]
    else:
        return
    for leaf in order:
        nics = min(per_leaf, ctx.nodes - leaf[2] * per_leaf) * (1 if rail_opt else ctx.rails)
        yield Link(leaf, ("spine", 0), _attrs(
            ctx.inter_link, "spine", 0.0,
            _summed(ctx.inter_link.bandwidth_bytes_per_s, nics) / ctx.cluster.inter.oversubscription))


@lru_cache(maxsize=1024)
def _summed(bandwidth: float, links: int) -> float:
    """``links`` equal bandwidths added one by one (as a switch's ports are counted)."""
    total = 0.0
    for _ in range(links):
        total += bandwidth
    return total


def _net_path(topo: Topology, a: int, b: int, rail_a: int, rail_b: int,
              hop: Callable[[Node, Node], list]) -> list:
    """dev a -> its NIC -> ... -> NIC of b -> dev b; ``hop`` fills in NIC to NIC."""
    nic_a = ("nic", topo.node_of(a), rail_a)
    nic_b = ("nic", topo.node_of(b), rail_b)
    if nic_a == nic_b:
        return [_dev(a), nic_a, _dev(b)]
    return [_dev(a)] + hop(nic_a, nic_b) + [_dev(b)]


def _pxn_route(topo: Topology, s: int, t: int, hop: Callable[[Node, Node], list],
               rail_match: bool = True) -> list:
    """Cross-node route with rail matching (NCCL PXN, NCCL 2.12+): if the destination's
    rail differs from the source's, first move over the intra-node fabric to the source
    node's device on the destination's rail, then cross the network on that rail.
    Without ``rail_match`` (or without an intra fabric) the source's own NIC is used."""
    rails = topo.rails
    ks, kt = topo.local_index(s) % rails, topo.local_index(t) % rails
    same_node = topo.node_of(s) == topo.node_of(t)
    if (rail_match and ks != kt and not same_node
            and topo.cluster.intra.topology != "none"):
        relay = topo.node_of(s) * topo.devices_per_node + kt
        first = topo.intra_route(s, relay) if relay != s else [_dev(s)]
        if first is not None:
            return first[:-1] + _net_path(topo, relay, t, kt, kt, hop)
    return _net_path(topo, s, t, ks, kt, hop)


def _route_fat_tree(topo: Topology, s: int, t: int) -> list:
    layout = _fat_tree_layout(topo._ctx)

    def hop(nic_a: Node, nic_b: Node) -> list:
        la = _leaf_of(topo._ctx, nic_a[1], nic_a[2], layout)
        lb = _leaf_of(topo._ctx, nic_b[1], nic_b[2], layout)
        return [nic_a, la] + ([] if la == lb else [("spine", 0), lb]) + [nic_b]

    return _pxn_route(topo, s, t, hop, rail_match=topo.cluster.inter.rail_optimized)


def _inter_ring_links(ctx: _Ctx, n: int) -> Iterator[Link]:
    # Nodes in a ring per rail: NIC k of node n links to NIC k of node n + 1. Node n owns
    # the link from n - 1 (the last node also the one back to node 0), so every NIC lists
    # its devices, then its ring neighbours in node order.
    yield from _nic_links(ctx, n)
    N = ctx.nodes
    ends = ([(n - 1, n)] if n > 0 else []) + ([(n, 0)] if n == N - 1 and N > 2 else [])
    attrs = _attrs(ctx.inter_link, "net", ctx.inter_link.latency_s)
    for a, b in ends:
        for k in range(ctx.rails):
            yield Link(("nic", a, k), ("nic", b, k), attrs)


def _route_inter_ring(topo: Topology, s: int, t: int) -> list | None:
    def hop(nic_a: Node, nic_b: Node) -> list:
        if nic_a[2] != nic_b[2]:
            raise _NoStructuralRoute
        return [("nic", n, nic_a[2]) for n in _ring_path(nic_a[1], nic_b[1], topo.nodes_count)]

    try:
        return _pxn_route(topo, s, t, hop)
    except _NoStructuralRoute:
        return None


class _NoStructuralRoute(Exception):
    """Internal: the structural router has no path; the generic fallback takes over."""


def _inter_dims(ctx: _Ctx) -> tuple[int, ...]:
    dims = ctx.cluster.inter.dims
    if ctx.cluster.intra.topology != "none":
        raise ConfigError(ctx.source, "intra.topology",
                          f"must be 'none' when inter.topology is 'torus' (the torus joins "
                          f"every chip), got {ctx.cluster.intra.topology!r}")
    if dims is None:
        raise ConfigError(ctx.source, "inter.dims",
                          f"required for inter.topology 'torus' (a list whose product is the "
                          f"device count, {ctx.num_devices})")
    if math.prod(dims) != ctx.num_devices:
        raise ConfigError(ctx.source, "inter.dims",
                          f"product must equal the device count nodes x devices_per_node = "
                          f"{ctx.nodes} x {ctx.devices_per_node} = {ctx.num_devices}, got "
                          f"{list(dims)} (product {math.prod(dims)})")
    return tuple(dims)


def _inter_torus_links(ctx: _Ctx, n: int) -> Iterator[Link]:
    # TPU pods: every chip on one torus (Jouppi et al. 2023), chip i at the row-major
    # coordinates of i; one ICI link per neighbour pair, owned by the chip it leaves in
    # the + direction.
    D = ctx.devices_per_node
    attrs = _attrs(ctx.inter_link, "inter", ctx.inter_link.latency_s)
    for a, b in _torus_edges(_inter_dims(ctx), range(n * D, (n + 1) * D)):
        yield Link(_dev(a), _dev(b), attrs)


def _route_inter_torus(topo: Topology, s: int, t: int) -> list:
    return [_dev(i) for i in _torus_path(s, t, tuple(topo.cluster.inter.dims))]


def _check_inter_none(ctx: _Ctx) -> None:
    if ctx.nodes > 1:
        raise ConfigError(ctx.source, "inter.topology",
                          f"'none' joins no nodes; it needs nodes: 1, got {ctx.nodes}")


INTER_GENERATORS: dict[str, Generator] = {
    "fat_tree": Generator(_fat_tree_links, _route_fat_tree,
                          "two-level leaf/spine tree, optionally rail-optimised",
                          shared=_fat_tree_uplinks),
    "ring": Generator(_inter_ring_links, _route_inter_ring, "nodes in a ring per rail"),
    "torus": Generator(_inter_torus_links, _route_inter_torus,
                       "every chip on one torus of shape inter.dims", check=_inter_dims),
    "none": Generator(_none_links, _route_none, "a single node", check=_check_inter_none),
}

#: Both registries, by level: ``GENERATORS["intra"]["nvswitch"]``.
GENERATORS: dict[str, dict[str, Generator]] = {"intra": INTRA_GENERATORS,
                                               "inter": INTER_GENERATORS}


# ---------------------------------------------------------------------------------------
# Topology


def _latency_code(src, dst, per_node: int, per_block: int):
    """The route class of device pairs, as one integer (ints or numpy arrays alike): the
    two local indices, same node, same leaf block (see Topology.route_latency_s)."""
    a, b = src // per_node, dst // per_node
    return (((src % per_node) * per_node + dst % per_node) * 2
            + (a == b)) * 2 + (a // per_block == b // per_block)


class Topology:
    """A cluster graph with deterministic, cached routes. Units in method names.

    Built without ``graph`` (see :func:`build_topology`), edge attributes come from the
    generators one node at a time, as routes reach them, and the networkx graph is built
    only when something asks for :attr:`graph`; both give every edge the same attributes
    (tests/test_topology.py)."""

    def __init__(self, cluster: ClusterSpec, device: DeviceSpec, graph: nx.DiGraph | None,
                 ctx: _Ctx) -> None:
        self.cluster = cluster
        self.device = device
        self._graph = graph
        self._ctx = ctx
        self._attrs: dict[Edge, dict] = {}     # the edges of the parts read so far
        self._parts_read: set[tuple] = set()   # (node, level) or (leaf,): see _parts
        self._routes: dict[tuple[int, int], tuple[Edge, ...]] = {}
        self._capacity: dict[Edge, float] = {}        # per-edge memo (the graph is fixed)
        self._edge_latency: dict[Edge, float] = {}
        self._class_latency: dict[int, float] = {}     # see route_latency_s
        self._n = ctx.num_devices
        self._per_node = ctx.devices_per_node
        # Nodes per repeating leaf block (route latency classes, see route_latency_s);
        # 0 where the network has none.
        self._latency_block = self.block_nodes() or 0
        self._bisection: float | None = None
        self._fallback_graph: nx.DiGraph | None = None

    @property
    def graph(self) -> nx.DiGraph:
        """The whole cluster as a ``networkx.DiGraph`` (built on first use)."""
        if self._graph is None:
            self._graph = _build_graph(self._ctx)
        return self._graph

    def edge_attrs(self, edge: Edge) -> dict:
        """The attributes of a directed edge (module docstring); KeyError if there is no
        such edge. Read-only."""
        if self._graph is not None:
            return self._graph.edges[edge]
        found = self._attrs.get(edge)
        if found is None:
            for part in _parts(edge, self._ctx):
                if part not in self._parts_read:
                    # Marked after its links are in: a thread that sees the mark finds
                    # them (two threads at most repeat the same work).
                    self._put(_part_links(self._ctx, part))
                    self._parts_read.add(part)
            found = self._attrs.get(edge)
            if found is None:
                raise KeyError(edge)
        return found

    def _put(self, links: Iterable[Link]) -> None:
        table = self._attrs
        for u, v, attrs in links:
            table[(u, v)] = table[(v, u)] = attrs

    # -- sizes -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.cluster.name

    @property
    def num_devices(self) -> int:
        return self._ctx.num_devices

    @property
    def nodes_count(self) -> int:
        return self._ctx.nodes

    @property
    def devices_per_node(self) -> int:
        return self._ctx.devices_per_node

    @property
    def rails(self) -> int:
        return self._ctx.rails

    def node_of(self, i: int) -> int:
        """Node index of device ``i``."""
        return i // self._per_node

    def local_index(self, i: int) -> int:
        """Index of device ``i`` inside its node."""
        return i % self._ctx.devices_per_node

    def block_nodes(self) -> int | None:
        """Nodes per repeating block of the network, or None when it has none.

        A fault-free fat-tree repeats per leaf: every leaf has the same downlinks and an
        uplink in proportion to them. A partial last leaf breaks that when the uplinks are
        oversubscribed (its smaller uplink can become the bottleneck), so then only full
        leaves qualify. Used by :func:`simwall.collectives.symmetry_window`.
        """
        if self.cluster.inter.topology != "fat_tree" or self.cluster.faults.links:
            return None
        per_leaf = _fat_tree_layout(self._ctx)[0]
        if self.cluster.inter.oversubscription > 1 and self.nodes_count % per_leaf:
            return None
        return per_leaf

    def shift_invariant(self, devices: int) -> bool:
        """Whether moving every device index by ``devices`` maps the network's costs onto
        themselves, as symmetric runs assume of pipeline stages: a translation of the
        torus (a whole number of slices along its slowest axis); otherwise whole nodes
        when there are several (a part-node shift moves pairs of ranks between the intra
        and the inter fabric; inside one node only switches and meshes are invariant
        under any shift), and whole leaves of a fat-tree with oversubscribed uplinks.
        tests/test_faults.py compares with per-device runs."""
        inter, intra = self.cluster.inter.topology, self.cluster.intra.topology
        per_node = self.devices_per_node
        if inter == "torus":
            return devices % math.prod(self.cluster.inter.dims[1:]) == 0
        if devices % per_node:
            return self.nodes_count == 1 and intra not in ("ring", "torus")
        if inter == "fat_tree" and self.cluster.inter.oversubscription > 1:
            return devices % (_fat_tree_layout(self._ctx)[0] * per_node) == 0
        return True

    def rails_disjoint(self) -> bool:
        """Whether traffic between devices of one rail (NIC index) on different nodes
        stays on that rail's own links: a fault-free rail-optimised fat-tree (every rail
        has its own leaves and leaf uplinks) or rings of nodes (one ring per rail). Then
        groups on different rails share no link, and a permutation of the rails maps the
        network onto itself."""
        if self.cluster.faults.links:
            return False
        inter = self.cluster.inter
        return inter.topology == "ring" or (inter.topology == "fat_tree"
                                            and inter.rail_optimized)

    def contention_nodes(self, node: int) -> range:
        """Nodes whose traffic can slow ``node``'s beyond its own links: every node on a
        torus or a ring of nodes (routes cross other nodes' links), the nodes of its leaf
        on a fat-tree with oversubscribed uplinks (they share them), else the node alone
        (a 1:1 leaf's uplinks carry at most what its NICs can send)."""
        inter = self.cluster.inter.topology
        if inter in ("torus", "ring"):
            return range(self.nodes_count)
        if inter != "fat_tree" or self.cluster.inter.oversubscription <= 1:
            return range(node, node + 1)
        per_leaf = _fat_tree_layout(self._ctx)[0]
        first = node - node % per_leaf
        return range(first, min(first + per_leaf, self.nodes_count))

    def host_edge(self, i: int) -> Edge:
        """The edge from device ``i`` to its node's host memory (for offload)."""
        return (_dev(i), ("host", self.node_of(i)))

    # -- routes ----------------------------------------------------------------------------
    def intra_route(self, s: int, t: int) -> list | None:
        """Structural node path inside one node, or None if the intra fabric has none."""
        return INTRA_GENERATORS[self.cluster.intra.topology].route(self, s, t)

    def _check_device(self, i: int) -> None:
        if type(i) is int and 0 <= i < self._n:
            return
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) \
                or not 0 <= i < self.num_devices:
            raise ValueError(f"device index must be in 0..{self.num_devices - 1}, got {i!r}")

    def route(self, src: int, dst: int) -> tuple[Edge, ...]:
        """Directed edges from device ``src`` to device ``dst`` (empty when equal).

        Structural and deterministic (see docs/hardware.md): inside a node over the intra
        fabric; across nodes device -> NIC -> leaf -> (spine) -> leaf -> NIC -> device, with
        rail matching over the intra fabric first (PXN). If a failed link lies on that
        path, the shortest path (fewest hops, networkx BFS in insertion order) is used.
        Host memory nodes are never on a route.
        """
        key = (src, dst)
        cached = self._routes.get(key)
        if cached is not None:
            return cached
        self._check_device(src)
        self._check_device(dst)
        src, dst = int(src), int(dst)
        if src == dst:
            return ()
        path = None
        if self.node_of(src) == self.node_of(dst):
            path = self.intra_route(src, dst)
        if path is None:
            path = INTER_GENERATORS[self.cluster.inter.topology].route(self, src, dst)
        edges = tuple(pairwise(path)) if path else ()
        # The builders add every edge a structural route uses; only a failed link can
        # take one away, so the check is needed only with faults.
        if not edges or (self.cluster.faults.links
                         and any(not self.graph.has_edge(u, v) for u, v in edges)):
            nodes = nx.shortest_path(self._routing_graph(), _dev(src), _dev(dst))
            edges = tuple(pairwise(nodes))
        self._routes[key] = edges
        return edges

    def _routing_graph(self) -> nx.DiGraph:
        if self._fallback_graph is None:
            self._fallback_graph = self.graph.subgraph(
                [n for n in self.graph.nodes if n[0] != "host"])
        return self._fallback_graph

    def capacity(self, edge: Edge) -> float:
        """Usable capacity of a directed edge in bytes/s: its bandwidth times its link
        class's ``efficiency`` (1.0 unless a cluster or the catalog sets it)."""
        cap = self._capacity.get(edge)
        if cap is None:
            attrs = self.edge_attrs(edge)
            cap = self._capacity[edge] = attrs["bandwidth_bytes_per_s"] * attrs["efficiency"]
        return cap

    def _latency(self, edge: Edge) -> float:
        lat = self._edge_latency.get(edge)
        if lat is None:
            lat = self._edge_latency[edge] = self.edge_attrs(edge)["latency_s"]
        return lat

    def route_bandwidth_bytes_per_s(self, src: int, dst: int) -> float:
        """Bottleneck capacity along ``route(src, dst)``; ``inf`` when src == dst."""
        edges = self.route(src, dst)
        return min((self.capacity(e) for e in edges), default=math.inf)

    def route_latency_s(self, src: int, dst: int) -> float:
        """Sum of edge latencies along ``route(src, dst)``.

        On a fault-free fat-tree a route's edge kinds, hence its latency, depend only on
        the two local indices and on whether the ends share a node or a leaf block, so
        the sum is memoised per such class (tests/test_topology.py compares with the
        edge-by-edge sum)."""
        key = self._latency_class(src, dst)
        if key is None:
            return sum(self._latency(e) for e in self.route(src, dst))
        lat = self._class_latency.get(key)
        if lat is None:
            lat = self._class_latency[key] = sum(self._latency(e)
                                                 for e in self.route(src, dst))
        return lat

    def route_latencies_s(self, pairs) -> list[float]:
        """:meth:`route_latency_s` of every ``(src, dst)`` in ``pairs``, in order (on a
        fault-free fat-tree the classes are found with array arithmetic)."""
        per_block = self._latency_block
        arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if not per_block or not len(arr) or arr.min() < 0 or arr.max() >= self._n:
            return [self.route_latency_s(a, b) for a, b in pairs]
        code = _latency_code(arr[:, 0], arr[:, 1], self._per_node, per_block)
        _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
        by_code = [self.route_latency_s(int(arr[i, 0]), int(arr[i, 1])) for i in first]
        return [by_code[j] for j in inverse.tolist()]

    def _latency_class(self, src: int, dst: int) -> int | None:
        per_block = self._latency_block
        if not per_block:
            return None
        if not (type(src) is int and type(dst) is int and 0 <= src < self._n
                and 0 <= dst < self._n):
            self._check_device(src)
            self._check_device(dst)
            src, dst = int(src), int(dst)
        return int(_latency_code(src, dst, self._per_node, per_block))

    # -- whole-graph figures ---------------------------------------------------------------
    def bisection_bandwidth_bytes_per_s(self) -> float:
        """Max flow, one direction, from devices ``0 .. n/2 - 1`` to ``n/2 .. n - 1``.

        Equal to the minimum cut separating the two index halves (edges counted once, in
        the A -> B direction; the B -> A figure is the same as every link is symmetric).
        Host memory nodes are excluded. 0.0 with fewer than two devices.
        """
        if self._bisection is None:
            n = self.num_devices
            if n < 2:
                self._bisection = 0.0
            else:
                g = nx.DiGraph(self._routing_graph())
                src, dst = ("_src",), ("_dst",)
                for i in range(n):  # edges without capacity count as infinite
                    if i < n // 2:
                        g.add_edge(src, _dev(i))
                    else:
                        g.add_edge(_dev(i), dst)
                self._bisection = float(nx.maximum_flow_value(
                    g, src, dst, capacity="bandwidth_bytes_per_s"))
        return self._bisection

    def describe(self) -> dict:
        """Plain-data summary: sizes, link classes (undirected counts), bisection."""
        groups: dict[tuple[str, str], list[float]] = {}
        for u, v, data in self.graph.edges(data=True):
            if (v, u) < (u, v) and self.graph.has_edge(v, u):
                continue  # count each full-duplex link once
            groups.setdefault((data["kind"], data["link"]), []).append(
                data["bandwidth_bytes_per_s"])
        links = [{"kind": kind, "link": link, "count": len(bws),
                  "bandwidth_bytes_per_s": min(bws),
                  "total_bandwidth_bytes_per_s": sum(bws)}
                 for (kind, link), bws in sorted(groups.items())]
        return {
            "name": self.name,
            "device": self.device.name,
            "devices": self.num_devices,
            "nodes": self.nodes_count,
            "devices_per_node": self.devices_per_node,
            "intra": self.cluster.intra.topology,
            "inter": self.cluster.inter.topology,
            "links": links,
            "faults": len(self.cluster.faults.links),
            "bisection_bandwidth_bytes_per_s": self.bisection_bandwidth_bytes_per_s(),
        }


# ---------------------------------------------------------------------------------------
# Building


def _apply_faults(g: nx.DiGraph, cluster: ClusterSpec, source: str) -> None:
    """Scale (or, with factor 0, remove) both directions of each listed link."""
    for idx, fault in enumerate(cluster.faults.links):
        key = f"faults.links[{idx}].between"
        ends = []
        for text in fault.between:
            node = parse_node_name(text)
            if node is None or node not in g:
                raise ConfigError(source, key,
                                  f"unknown graph node {text!r} (expected e.g. 'dev3' or '3', "
                                  f"'nic0.2', 'nvsw0', 'leaf1.0', 'spine', 'host0')")
            ends.append(node)
        u, v = ends
        if not g.has_edge(u, v):
            near = ", ".join(node_name(w) for w in list(g.successors(u))[:8])
            raise ConfigError(source, key,
                              f"no link between {node_name(u)} and {node_name(v)} "
                              f"({node_name(u)} links to: {near or 'nothing'})")
        for a, b in ((u, v), (v, u)):
            if fault.bandwidth_factor == 0:
                g.remove_edge(a, b)
            else:
                g.edges[a, b]["bandwidth_bytes_per_s"] *= fault.bandwidth_factor


def _check_connected(g: nx.DiGraph, ctx: _Ctx) -> None:
    # Links are full duplex (both directions added and removed together), so reaching
    # every device from dev0 along out-edges is connectivity. Host memory nodes are not
    # part of the network and are not crossed.
    succ = g.succ
    reached = {_dev(0)}
    todo = [_dev(0)]
    while todo:
        for v in succ[todo.pop()]:
            if v not in reached and v[0] != "host":
                reached.add(v)
                todo.append(v)
    cut = [i for i in range(ctx.num_devices) if _dev(i) not in reached]
    if not cut:
        return
    shown = ", ".join(f"dev{i}" for i in cut[:8]) + (" ..." if len(cut) > 8 else "")
    if any(f.bandwidth_factor == 0 for f in ctx.cluster.faults.links):
        raise ConfigError(ctx.source, "faults.links",
                          f"the failed links disconnect the cluster: {shown} cannot reach dev0")
    raise ConfigError(ctx.source, "inter.topology",
                      f"intra {ctx.cluster.intra.topology!r} with inter "
                      f"{ctx.cluster.inter.topology!r} leaves {shown} unreachable from dev0")


def _host_links(ctx: _Ctx, n: int) -> Iterator[Link]:
    attrs = _attrs(ctx.host_link, "host", ctx.host_link.latency_s)
    for i in range(n * ctx.devices_per_node, (n + 1) * ctx.devices_per_node):
        yield Link(_dev(i), ("host", n), attrs)


_SWITCHES = ("leaf", "spine")
_NETWORK = ("nic", "leaf", "spine")


def _parts(edge: Edge, ctx: _Ctx) -> list[tuple]:
    """The parts of the cluster whose links may include ``edge``: ``(node, level)`` with
    level 'intra', 'inter' or 'host' (a link is owned by a cluster node at one of its
    ends), or ``(leaf,)`` for a leaf's uplink (the spine owns nothing: its every link
    has a leaf at the other end)."""
    if not (isinstance(edge, tuple) and len(edge) == 2):
        return []
    kinds = {end[0] for end in edge if isinstance(end, tuple) and end}
    if "host" in kinds:
        levels = ("host",)
    elif kinds & set(_NETWORK):
        levels = ("inter",)
    elif "nvsw" in kinds:
        levels = ("intra",)
    else:                    # device to device: an intra fabric, or a torus of chips
        levels = ("intra", "inter")
    out: list[tuple] = []
    for end in edge:
        if isinstance(end, tuple) and end and end[0] in _SWITCHES:
            if end[0] == "leaf":
                out.append((end,))
            continue
        n = _owner(end, ctx)
        if n is not None:
            out.extend((n, level) for level in levels)
    return out


def _part_links(ctx: _Ctx, part: tuple) -> Iterable[Link]:
    if len(part) == 1:
        return INTER_GENERATORS[ctx.cluster.inter.topology].shared(ctx, part[0])
    n, level = part
    if level == "intra":
        return INTRA_GENERATORS[ctx.cluster.intra.topology].links(ctx, n)
    if level == "inter":
        return INTER_GENERATORS[ctx.cluster.inter.topology].links(ctx, n)
    return _host_links(ctx, n)


def _owner(node: Node, ctx: _Ctx) -> int | None:
    """The cluster node whose links include those of graph node ``node`` (None for a
    name outside the cluster)."""
    kind = node[0] if isinstance(node, tuple) and len(node) >= 2 else None
    n = node[1] if kind in ("dev", "nvsw", "nic", "host") else None
    if type(n) is not int:
        return None
    if kind == "dev":
        n //= ctx.devices_per_node
    return n if 0 <= n < ctx.nodes else None


def _build_graph(ctx: _Ctx) -> nx.DiGraph:
    """The whole graph, faults applied and connectivity checked."""
    intra = INTRA_GENERATORS[ctx.cluster.intra.topology]
    inter = INTER_GENERATORS[ctx.cluster.inter.topology]
    g = nx.DiGraph()
    # Devices first, so node order (and so fallback routing) is fixed by index; then one
    # level at a time, so each node's neighbours are listed intra, network, host.
    g.add_nodes_from(_dev(i) for i in range(ctx.num_devices))
    for n in range(ctx.nodes):
        _add_links(g, intra.links(ctx, n))
    for n in range(ctx.nodes):
        _add_links(g, inter.links(ctx, n))
    _add_links(g, inter.shared(ctx))
    for n in range(ctx.nodes):
        _add_links(g, _host_links(ctx, n))
    _apply_faults(g, ctx.cluster, ctx.source)
    _check_connected(g, ctx)
    return g


def build_topology(cluster: ClusterSpec) -> Topology:
    """The topology of ``cluster`` (``nodes`` must already be an int).

    A cluster with failed or degraded links, or without an intra-node fabric, gets its
    whole graph now: faults are applied to it, and routes around them and the
    connectivity check need it. Otherwise the graph is left for first use: every intra
    fabric but 'none' joins a node's devices and every inter generator joins the nodes
    (fat-tree through the spine, a ring per rail, the torus every chip; 'none' allows one
    node), so the cluster is connected by construction, and the costing reads edge
    attributes node by node (:meth:`Topology.edge_attrs`), which keeps it independent of
    the cluster's size.

    Raises
    ------
    ConfigError
        ``nodes`` still 'auto'; torus dims that do not match the device count; unknown
        catalog names; a fault naming a missing link; a cluster that is disconnected.
    """
    source = cluster.file
    if not isinstance(cluster.nodes, int):
        raise ConfigError(source, "nodes",
                          f"must be resolved to a number before building the topology "
                          f"(simwall.plan.resolve sizes it), got {cluster.nodes!r}")
    device = resolve_device(cluster.device, "device", source)
    ctx = _Ctx(cluster=cluster, source=source, nodes=cluster.nodes,
               devices_per_node=cluster.devices_per_node,
               intra_link=resolve_link(cluster.intra.link, "intra.link", source),
               inter_link=resolve_link(cluster.inter.link, "inter.link", source),
               host_link=resolve_link(cluster.host.link, "host.link", source))
    INTRA_GENERATORS[cluster.intra.topology].check(ctx)
    INTER_GENERATORS[cluster.inter.topology].check(ctx)
    eager = bool(cluster.faults.links) or cluster.intra.topology == "none"
    return Topology(cluster, device, _build_graph(ctx) if eager else None, ctx)
