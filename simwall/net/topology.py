"""The cluster as a graph: devices, NICs, switches and host memory, joined by directed links.

:func:`simwall.net.build.build_topology` turns a validated
:class:`~simwall.config.ClusterSpec` (with ``nodes`` resolved) into a :class:`Topology`: a
``networkx.DiGraph`` (built on first use for a fault-free cluster; :meth:`Topology.edge_attrs`
reads single edges without it) whose every directed edge carries

- ``bandwidth_bytes_per_s``: capacity in that direction (a link's per-direction bandwidth,
  scaled by any fault factor),
- ``latency_s``: this edge's share of the hop latency of its link class,
- ``link``: the catalog link class name (``NVLink3``, ``IB-HDR`` ...),
- ``kind``: ``intra`` (device to device or to the node's NVSwitch), ``nic`` (device to
  its NIC), ``net`` (NIC to leaf switch, or NIC to NIC for an inter-node ring), ``spine``
  (leaf to spine, aggregated), ``inter`` (chip to chip on a pod-wide torus), ``host``
  (device to its node's host memory),
- ``efficiency``: the link class's achievable fraction of bandwidth (for the network model).

Node names: :mod:`simwall.net.names`. The links and structural routes come from the two
generators the cluster names (:mod:`simwall.net.generators`), and so do the symmetry
traits the costing relies on (:meth:`Topology.shift_invariant`,
:meth:`Topology.rails_disjoint`, :meth:`Topology.contention_nodes`,
:meth:`Topology.block_nodes`): what a generator does not declare is not assumed.
See docs/hardware.md for the routing and bisection definitions.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from itertools import pairwise
from typing import TYPE_CHECKING

from .. import memo
from ..config import ClusterSpec, DeviceSpec
from ..registry import INTER_TOPOLOGIES, INTRA_TOPOLOGIES
from .generators.base import Generator, GeneratorContext, Link, declared
from .graph import build_graph, edge_parts, part_links, shown_name
from .names import Edge, device_node, node_name

if TYPE_CHECKING:  # networkx and numpy load on first use: a symmetric run needs neither
    import networkx as nx

__all__ = ["Topology"]

# Topology.route_latencies_s looks up a list of at most this many pairs one by one, a
# longer one with numpy. A round number, not tuned: numpy's fixed cost per call (and its
# import, some 50-70 ms, in a process that needs it for nothing else) outweighs the Python
# loop on short lists; both give the same latencies.
_FEW_PAIRS = 64


def _latency_code(src, dst, per_node: int, per_block: int):
    """The route class of device pairs, as one integer (ints or numpy arrays alike): the
    two local indices, same node, same leaf block (see Topology.route_latency_s)."""
    a, b = src // per_node, dst // per_node
    return (((src % per_node) * per_node + dst % per_node) * 2
            + (a == b)) * 2 + (a // per_block == b // per_block)


class Topology:
    """A cluster graph with deterministic, cached routes. Units in method names.

    Built without ``graph`` (see :func:`simwall.net.build.build_topology`), edge
    attributes come from the generators one node at a time, as routes reach them, and the
    networkx graph is built only when something asks for :attr:`graph`; both give every
    edge the same attributes (tests/test_topology.py). Memoised values live in
    :func:`simwall.memo.table` tables of this object."""

    def __init__(self, cluster: ClusterSpec, device: DeviceSpec, graph: nx.DiGraph | None,
                 ctx: GeneratorContext) -> None:
        self.cluster = cluster
        self.device = device
        #: What the generators read (sizes, resolved link classes).
        self.context = ctx
        #: The generators the cluster names, from the registries.
        self.intra_generator: Generator = INTRA_TOPOLOGIES[cluster.intra.topology]
        self.inter_generator: Generator = INTER_TOPOLOGIES[cluster.inter.topology]
        self._eager_graph = graph              # with faults or without an intra fabric
        self._n = ctx.num_devices
        self._per_node = ctx.devices_per_node
        # Memo tables (the tables live as long as this topology; simwall.clear_caches
        # empties them).
        self._attrs: dict[Edge, dict] = memo.table(self, "edge_attrs")  # parts read so far
        self._parts_read: dict[tuple, bool] = memo.table(self, "parts_read")  # edge_parts
        self._routes: dict[tuple[int, int], tuple[Edge, ...]] = memo.table(self, "routes")
        self._capacity: dict[Edge, float] = memo.table(self, "capacity")
        self._edge_latency: dict[Edge, float] = memo.table(self, "edge_latency")
        self._class_latency: dict[int, float] = memo.table(self, "class_latency")
        self._whole: dict[str, object] = memo.table(self, "whole")   # graph-wide values
        # Nodes per repeating leaf block (route latency classes, see route_latency_s);
        # 0 where the network has none.
        self._latency_block = self.block_nodes() or 0

    @property
    def graph(self) -> nx.DiGraph:
        """The whole cluster as a ``networkx.DiGraph`` (built on first use)."""
        if self._eager_graph is not None:
            return self._eager_graph
        g = self._whole.get("graph")
        if g is None:
            g = self._whole["graph"] = build_graph(self.context)
        return g

    @property
    def graph_built(self) -> bool:
        """Whether the whole graph exists yet (at once with faults or without an intra
        fabric; else on first use of :attr:`graph`)."""
        return self._built_graph() is not None

    def _built_graph(self) -> nx.DiGraph | None:
        if self._eager_graph is not None:
            return self._eager_graph
        return self._whole.get("graph")

    def display_name(self, node) -> str:
        """The name a user reads for graph node ``node``: an explicit graph's own (its
        file's ``gpu0``, ``nvs0``), else simwall's (``dev0``, ``nic0.2``; names.node_name)."""
        graph = self._built_graph() if self.cluster.graph is not None else None
        if graph is not None and node in graph:
            return shown_name(graph, node)
        return node_name(node)

    def edge_attrs(self, edge: Edge) -> dict:
        """The attributes of a directed edge (module docstring); KeyError if there is no
        such edge. Read-only."""
        graph = self._built_graph()
        if graph is not None:
            return graph.edges[edge]
        found = self._attrs.get(edge)
        if found is None:
            for part in edge_parts(edge, self.context):
                if part not in self._parts_read:
                    # Marked after its links are in: a thread that sees the mark finds
                    # them (two threads at most repeat the same work).
                    self._put(part_links(self.context, part))
                    self._parts_read[part] = True
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
        return self.context.num_devices

    @property
    def nodes_count(self) -> int:
        return self.context.nodes

    @property
    def devices_per_node(self) -> int:
        return self.context.devices_per_node

    @property
    def rails(self) -> int:
        return self.context.rails

    def node_of(self, i: int) -> int:
        """Node index of device ``i``."""
        return i // self._per_node

    def local_index(self, i: int) -> int:
        """Index of device ``i`` inside its node."""
        return i % self.context.devices_per_node

    # -- symmetry (declared by the generators, see simwall.net.generators.base) -------------
    def block_nodes(self) -> int | None:
        """Nodes per repeating block of the network, or None when it has none: what the
        inter generator declares (``block_nodes``; a fault-free fat-tree repeats per leaf),
        None with faults. Used by :func:`simwall.net.collectives.symmetry_window`.
        """
        if self.cluster.faults.links:
            return None
        return declared(self.inter_generator.block_nodes, self.context)

    def shift_invariant(self, devices: int) -> bool:
        """Whether moving every device index by ``devices`` maps the network's costs onto
        themselves, as symmetric runs assume of pipeline stages: a multiple of the inter
        generator's declared ``shift_period`` (a translation of the torus: a whole number
        of slices along its slowest axis; whole nodes; whole leaves of a fat-tree with
        oversubscribed uplinks); else, where traffic inside a node stays on the intra
        fabric, a shift by part of the only node when that fabric is ``shift_symmetric``
        (a part-node shift across several nodes moves pairs of ranks between the intra and
        the inter fabric). False when nothing is declared.
        tests/test_faults.py compares with per-device runs."""
        ctx, inter = self.context, self.inter_generator
        period = declared(inter.shift_period, ctx)
        if not period:
            return False
        if devices % period == 0:
            return True
        if devices % self.devices_per_node and declared(inter.node_traffic_intra, ctx):
            return self.nodes_count == 1 and bool(
                declared(self.intra_generator.shift_symmetric, ctx))
        return False

    def rails_disjoint(self) -> bool:
        """Whether traffic between devices of one rail (NIC index) on different nodes
        stays on that rail's own links, as the inter generator declares
        (``rail_disjoint``: a rail-optimised fat-tree, where every rail has its own leaves
        and leaf uplinks, or rings of nodes, one ring per rail) and no link failed. Then
        groups on different rails share no link, and a permutation of the rails maps the
        network onto itself."""
        if self.cluster.faults.links:
            return False
        return bool(declared(self.inter_generator.rail_disjoint, self.context))

    def contention_nodes(self, node: int) -> range:
        """Nodes whose traffic can slow ``node``'s beyond its own links, as the inter
        generator declares (``contention_nodes``: the nodes of its leaf on a fat-tree
        with oversubscribed uplinks, which share them; the node alone on a 1:1 fat-tree,
        whose leaf uplinks carry at most what its NICs can send); every node when it
        declares nothing (a torus or a ring of nodes: routes cross other nodes' links)."""
        fn = self.inter_generator.contention_nodes
        if fn is None:
            return range(self.nodes_count)
        return fn(self.context, node)

    def host_edge(self, i: int) -> Edge:
        """The edge from device ``i`` to its node's host memory (for offload)."""
        return (device_node(i), ("host", self.node_of(i)))

    # -- routes ----------------------------------------------------------------------------
    def intra_route(self, s: int, t: int) -> list | None:
        """Structural node path inside one node, or None if the intra fabric has none."""
        return self.intra_generator.route(self, s, t)

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
            path = self.inter_generator.route(self, src, dst)
        edges = tuple(pairwise(path)) if path else ()
        # The builders add every edge a structural route uses; only a failed link can
        # take one away, so the check is needed only with faults.
        if not edges or (self.cluster.faults.links
                         and any(not self.graph.has_edge(u, v) for u, v in edges)):
            import networkx as nx
            nodes = nx.shortest_path(self._routing_graph(), device_node(src), device_node(dst))
            edges = tuple(pairwise(nodes))
        self._routes[key] = edges
        return edges

    def _routing_graph(self) -> nx.DiGraph:
        found = self._whole.get("routing_graph")
        if found is None:
            found = self._whole["routing_graph"] = self.graph.subgraph(
                [n for n in self.graph.nodes if n[0] != "host"])
        return found

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

        On a periodic network (fault-free fat-tree) a route's edge kinds, hence its
        latency, depend only on the two local indices and on whether the ends share a node
        or a leaf block, so the sum is memoised per such class (tests/test_topology.py
        compares with the edge-by-edge sum)."""
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
        periodic network the classes of a long list are found with array arithmetic; a
        short one, a symmetric run's, pair by pair without importing numpy: the same
        values, as each class's latency is memoised from its first pair either way)."""
        if len(pairs) <= _FEW_PAIRS:
            return [self.route_latency_s(a, b) for a, b in pairs]
        import numpy as np
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
        found = self._whole.get("bisection")
        if found is None:
            n = self.num_devices
            if n < 2:
                found = 0.0
            else:
                import networkx as nx
                g = nx.DiGraph(self._routing_graph())
                src, dst = ("_src",), ("_dst",)
                for i in range(n):  # edges without capacity count as infinite
                    if i < n // 2:
                        g.add_edge(src, device_node(i))
                    else:
                        g.add_edge(device_node(i), dst)
                found = float(nx.maximum_flow_value(
                    g, src, dst, capacity="bandwidth_bytes_per_s"))
            self._whole["bisection"] = found
        return found

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
