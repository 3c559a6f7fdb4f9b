"""``graph``: a cluster that gives its graph explicitly (``ClusterSpec.graph``; a graph
file, inline, or a ``networkx`` graph through the API; docs/input-formats.md).

The graph is checked and built whole (:func:`build_explicit_graph`), every problem a
:class:`~simwall.errors.ConfigError` naming the node or link and its line: an unknown
end, a duplicate, a link with no capacity, a device without memory, a device that cannot
reach the others, a route that is not a path. Routes: the file's ``routes`` for their
device pairs; else shortest paths (fewest hops) through the network (host memory is never
crossed), one of several equal-cost next hops chosen at each hop by a deterministic hash
of the device pair and the hop (ECMP hashing, so different pairs spread over the equal
paths while one pair keeps one path); with ``routing.rail_matching`` a cross-node route
first moves inside its node to the device on the destination's rail (NCCL PXN).

A what-if link at a level (``inter.link: {base: IB-NDR, bandwidth: 1.0e11}``, as
``simwall whatif`` sets it) scales the graph's links of that class at that level alike
(:func:`_class_overrides`).

Symmetry is what the file declares (``symmetry``), nothing more: an explicit graph that
declares none is costed stage by stage, with every node able to slow every other.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from ... import memo
from ...config import GraphSpec
from ...config.graph import graph_key
from ...errors import ConfigError
from ...hardware.catalog import resolve_device, resolve_link
from ..names import Node, device_node, parse_node_name
from .base import Generator, GeneratorContext, link_attrs, no_links

if TYPE_CHECKING:                      # types only: the topology calls the generators
    import networkx as nx

    from ..topology import Topology

__all__ = ["INTER_GENERATOR", "INTRA_GENERATOR", "build_explicit_graph", "graph_node",
           "link_kind"]


def graph_node(kind: str, name: str, index: int, node: int | None) -> Node:
    """The graph node of a file's node: ``("dev", i)`` for the i-th device listed,
    ``("host", node)`` for a host; a name simwall itself writes (``nic0.2``, ``leaf1.0``,
    ``spine``, ``nvsw0``) as that node; any other name as ``(kind, name)``."""
    if kind == "device":
        return device_node(index)
    if kind == "host":
        return ("host", node)
    parsed = parse_node_name(name)
    if parsed is not None and parsed[0] not in ("dev", "host"):
        return parsed
    return (kind, name)


def link_kind(kind_a: str, kind_b: str, node_a: int | None, node_b: int | None) -> str:
    """The edge kind of a link between nodes of these kinds (and cluster nodes):
    device-device 'intra' in one node, else 'inter'; device-switch 'intra' when the
    switch belongs to a node (an NVSwitch), else 'net'; device-NIC 'nic'; anything-host
    'host'; NIC-NIC and NIC-switch 'net'; switch-switch 'spine'."""
    kinds = {kind_a, kind_b}
    if "host" in kinds:
        return "host"
    if kinds == {"device"}:
        return "intra" if node_a == node_b else "inter"
    if kinds == {"device", "switch"}:
        switch_node = node_a if kind_a == "switch" else node_b
        return "intra" if switch_node is not None else "net"
    if kinds == {"device", "nic"}:
        return "nic"
    if kinds == {"switch"}:
        return "spine"
    return "net"


#: The edge kinds of each level of a cluster (whose ``{level}.link`` they belong to).
_LEVEL_KINDS = {"intra": ("intra",), "inter": ("nic", "net", "spine", "inter"),
                "host": ("host",)}


def _class_overrides(ctx: GeneratorContext) -> dict[tuple[str, str], tuple]:
    """(edge kind, link class) -> (bandwidth factor, latency factor, efficiency or None)
    for each level whose link is a what-if mapping (``inter.link: {base: IB-NDR,
    bandwidth: 1e11}``, as ``simwall whatif`` writes): the graph's links of that class at
    that level are scaled as the class is (a link of 8 ports stays 8 ports of the new
    rate), so a what-if reaches an explicit graph as it reaches a generated one."""
    out: dict[tuple[str, str], tuple] = {}
    for level, kinds in _LEVEL_KINDS.items():
        ref = getattr(ctx.cluster, level).link
        if isinstance(ref, str):
            continue
        spec = getattr(ctx, f"{level}_link")
        base = resolve_link(ref.base, f"{level}.link.base", ctx.source)
        bw = spec.bandwidth_bytes_per_s / base.bandwidth_bytes_per_s
        lat = spec.latency_s / base.latency_s if base.latency_s else 1.0
        eff = ref.efficiency
        for kind in kinds:
            out[(kind, base.name)] = (bw, lat, eff)
    return out


def build_explicit_graph(ctx: GeneratorContext) -> nx.DiGraph:
    """The cluster's explicit graph, checked (module docstring); faults are applied and
    connectivity is checked by the caller."""
    spec: GraphSpec = ctx.cluster.graph
    src = spec.file or ctx.source

    def err(key: str, msg: str, sub: str = "") -> ConfigError:
        return ConfigError(src, graph_key(spec, key), msg,
                           line=spec.line(key + sub) or spec.line(key))

    def catalog(key: str, resolve: Callable, name: str) -> Any:
        """The catalog entry ``name`` at ``key``; an unknown name located as the graph's
        other errors are (key prefix or node and edge names, line)."""
        try:
            return resolve(name, key, src)
        except ConfigError as e:
            raise err(key, e.message) from None

    import networkx as nx
    g = nx.DiGraph()
    names: dict[str, Node] = {}
    kinds: dict[Node, str] = {}
    owner: dict[Node, int | None] = {}
    device = ctx.cluster.device
    per_node = ctx.devices_per_node
    index = 0
    for i, n in enumerate(spec.nodes):
        key = f"nodes[{i}]"
        if n.name in names:
            raise err(key, f"node {n.name!r} is listed twice", ".name")
        node_of = n.node
        if n.kind == "device":
            if node_of is None:
                node_of = index // per_node
            if n.memory_capacity_bytes is not None and n.memory_capacity_bytes <= 0:
                raise err(key, f"device {n.name!r} has no memory (memory_capacity "
                          f"{n.memory_capacity_bytes:g})", ".memory_capacity")
            if n.device is not None:
                spec_dev = catalog(f"{key}.device", resolve_device, n.device)
                base = resolve_device(device, "device", ctx.source)
                if spec_dev.name != base.name:
                    raise err(key, f"device {n.name!r} is a {spec_dev.name}, the cluster's "
                              f"devices are {base.name} (one device kind per cluster)",
                              ".device")
            parsed = parse_node_name(n.name)
            if parsed is not None and parsed[0] == "dev" and parsed[1] != index:
                raise err(key, f"device {n.name!r} is device {index} in listing order "
                          f"(a name devN must be the N-th device listed)", ".name")
        elif n.kind == "host":
            if node_of is None:
                raise err(key, f"host {n.name!r} needs the 'node' whose devices it serves")
            if node_of >= ctx.nodes:
                raise err(key, f"host {n.name!r}: node {node_of} is not one of the graph's "
                          f"{ctx.nodes} nodes", ".node")
        if node_of is not None and node_of >= ctx.nodes and n.kind != "device":
            raise err(key, f"{n.kind} {n.name!r}: node {node_of} is not one of the graph's "
                      f"{ctx.nodes} nodes", ".node")
        tup = graph_node(n.kind, n.name, index, node_of)
        if tup in kinds:
            same = f"a host of node {node_of}" if n.kind == "host" else tup
            raise err(key, f"node {n.name!r} is the same graph node as an earlier one "
                      f"({same})")
        names[n.name] = tup
        kinds[tup] = n.kind
        owner[tup] = node_of
        g.add_node(tup, kind=n.kind, name=n.name, node=node_of, rail=n.rail)
        if n.kind == "device":
            index += 1
    hosts_given = {owner[t] for t, k in kinds.items() if k == "host"}
    overrides = _class_overrides(ctx)

    for i, link in enumerate(spec.links):
        key = f"links[{i}]"
        ends = []
        for end in link.between:
            if end not in names:
                raise err(key, f"link {link.between[0]!r} - {link.between[1]!r}: no node "
                          f"named {end!r}", ".between")
            ends.append(names[end])
        u, v = ends
        what = f"link {link.between[0]!r} - {link.between[1]!r}"
        if u == v:
            raise err(key, f"{what} joins a node to itself", ".between")
        if g.has_edge(u, v):
            raise err(key, f"{what} is listed twice (one entry per full-duplex link)",
                      ".between")
        kind = link.kind or link_kind(kinds[u], kinds[v], owner[u], owner[v])
        if link.type is not None:
            cls = catalog(f"{key}.type", resolve_link, link.type)
        elif link.bandwidth_bytes_per_s is None:
            raise err(key, f"{what} has no capacity: give its bandwidth (bytes/s per "
                      f"direction) or a link type")
        else:
            cls = None
        bandwidth = (link.bandwidth_bytes_per_s if link.bandwidth_bytes_per_s is not None
                     else cls.bandwidth_bytes_per_s)
        if bandwidth <= 0:
            raise err(key, f"{what} has no capacity (bandwidth {bandwidth:g})", ".bandwidth")
        latency = (link.latency_s if link.latency_s is not None
                   else cls.latency_s if cls is not None else 0.0)
        efficiency = (link.efficiency if link.efficiency is not None
                      else cls.efficiency if cls is not None else 1.0)
        scale = overrides.get((kind, cls.name)) if cls is not None else None
        if scale is not None:
            bandwidth, latency = bandwidth * scale[0], latency * scale[1]
            if scale[2] is not None and link.efficiency is None:
                efficiency = scale[2]
        attrs = {"bandwidth_bytes_per_s": bandwidth, "latency_s": latency,
                 "link": cls.name if cls is not None else "custom", "kind": kind,
                 "efficiency": efficiency}
        g.add_edge(u, v, **attrs)
        g.add_edge(v, u, **dict(attrs))

    # Host memory the file does not give: each device to its node's host over host.link.
    for n in range(ctx.nodes):
        if n in hosts_given:
            continue
        attrs = link_attrs(ctx.host_link, "host", ctx.host_link.latency_s)
        g.add_node(("host", n), kind="host", name=f"host{n}", node=n, rail=None)
        for i in range(n * per_node, (n + 1) * per_node):
            g.add_edge(device_node(i), ("host", n), **attrs)
            g.add_edge(("host", n), device_node(i), **dict(attrs))
    for i in range(ctx.num_devices):
        if not g.has_edge(device_node(i), ("host", i // per_node)):
            j = _listed(spec, "device", i)
            raise err(f"nodes[{j}]", f"device {spec.nodes[j].name!r} has no link to the host "
                      f"of its node {i // per_node} (offload and the host side need one)")
    _check_reachable(g, spec, src)
    _check_routes(g, spec, names, src)
    return g


def _listed(spec: GraphSpec, kind: str, k: int) -> int:
    """The position in ``nodes`` of the ``k``-th node of ``kind``."""
    seen = -1
    for i, n in enumerate(spec.nodes):
        if n.kind == kind:
            seen += 1
            if seen == k:
                return i
    return 0


def _network_succ(g: nx.DiGraph) -> dict:
    return {u: [v for v in g.succ[u] if v[0] != "host"] for u in g if u[0] != "host"}


def _bfs(succ: dict, start: Node) -> dict[Node, int]:
    dist = {start: 0}
    todo = deque([start])
    while todo:
        u = todo.popleft()
        for v in succ.get(u, ()):
            if v not in dist:
                dist[v] = dist[u] + 1
                todo.append(v)
    return dist


def _check_reachable(g: nx.DiGraph, spec: GraphSpec, src: str) -> None:
    devices = [n for n in g if n[0] == "dev"]
    dist = _bfs(_network_succ(g), devices[0])
    for k, dev in enumerate(devices):
        if dev not in dist:
            j = _listed(spec, "device", k)
            first = spec.nodes[_listed(spec, "device", 0)].name
            raise ConfigError(src, graph_key(spec, f"nodes[{j}]"), f"device {spec.nodes[j].name!r} is "
                              f"unreachable: no path through the network to device "
                              f"{first!r}", line=spec.line(f"nodes[{j}]"))


def _check_routes(g: nx.DiGraph, spec: GraphSpec, names: dict, src: str) -> None:
    for i, r in enumerate(spec.routes):
        key = f"routes[{i}].path"
        line = spec.line(key) or spec.line(f"routes[{i}]")
        where = graph_key(spec, key)
        for name in r.path:
            if name not in names:
                raise ConfigError(src, where, f"no node named {name!r}", line=line)
        nodes = [names[n] for n in r.path]
        if nodes[0][0] != "dev" or nodes[-1][0] != "dev":
            raise ConfigError(src, where, f"a route goes from a device to a device, got "
                              f"{r.path[0]!r} to {r.path[-1]!r}", line=line)
        for a, b in pairwise(nodes):
            if not g.has_edge(a, b):
                raise ConfigError(src, where, f"no link between {g.nodes[a]['name']!r} and "
                                  f"{g.nodes[b]['name']!r}", line=line)


# ---- routes ----------------------------------------------------------------------------


def _fixed_routes(topo: Topology) -> dict:
    table = memo.table(topo, "graph_fixed_routes")
    if not table and topo.cluster.graph.routes:
        by_name = {data["name"]: n for n, data in topo.graph.nodes(data=True)}
        for r in topo.cluster.graph.routes:
            path = [by_name[name] for name in r.path]
            table[(path[0][1], path[-1][1])] = path
        table[None] = True
    return table


def _succ(topo: Topology) -> dict:
    table = memo.table(topo, "graph_succ")
    if not table:
        table.update(_network_succ(topo.graph))
    return table


def _dist_to(topo: Topology, t: int) -> dict[Node, int]:
    table = memo.table(topo, "graph_dist")
    found = table.get(t)
    if found is None:
        # Links are full duplex, so distances from t are distances to t.
        found = table[t] = _bfs(_succ(topo), device_node(t))
    return found


def _mix(a: int, b: int, hop: int) -> int:
    """A deterministic hash of a device pair and a hop (ECMP path choice)."""
    x = (a * 0x9E3779B1 + b * 0x85EBCA77 + hop * 0xC2B2AE3D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    return x ^ (x >> 12)


def _walk(topo: Topology, s: int, t: int) -> list:
    """A shortest path from device s to device t, equal-cost next hops chosen by hash."""
    dist = _dist_to(topo, t)
    succ = _succ(topo)
    cur = device_node(s)
    if cur not in dist:
        return []
    path = [cur]
    hop = 0
    while dist[cur]:
        nxt = [v for v in succ[cur] if dist.get(v) == dist[cur] - 1]
        cur = nxt[_mix(s, t, hop) % len(nxt)] if len(nxt) > 1 else nxt[0]
        path.append(cur)
        hop += 1
    return path


def _rail(topo: Topology, i: int) -> int | None:
    """The rail of device i: that of the first NIC it links to (None without one)."""
    table = memo.table(topo, "graph_rail")
    if i not in table:
        g = topo.graph
        table[i] = next((g.nodes[v]["rail"] for v in g.succ[device_node(i)]
                         if g.nodes[v].get("kind") == "nic"), None)
    return table[i]


def _relay(topo: Topology, s: int, t: int) -> int | None:
    """The device of s's node on t's rail (None when the rails match or are unknown)."""
    if topo.node_of(s) == topo.node_of(t):
        return None
    rs, rt = _rail(topo, s), _rail(topo, t)
    if rs is None or rt is None or rs == rt:
        return None
    table = memo.table(topo, "graph_relay")
    key = (topo.node_of(s), rt)
    if key not in table:
        base = key[0] * topo.devices_per_node
        table[key] = next((j for j in range(base, base + topo.devices_per_node)
                           if _rail(topo, j) == rt), None)
    return table[key]


def route(topo: Topology, s: int, t: int) -> list:
    """The file's route for (s, t) if it gives one; else a shortest path with ECMP
    hashing, rail matched first when ``routing.rail_matching`` (module docstring)."""
    fixed = _fixed_routes(topo)
    if (s, t) in fixed:
        return list(fixed[(s, t)])
    if topo.cluster.graph.routing.rail_matching:
        relay = _relay(topo, s, t)
        if relay is not None and relay != s:
            return _walk(topo, s, relay)[:-1] + _walk(topo, relay, t)
    return _walk(topo, s, t)


def _no_route(topo: Topology, s: int, t: int) -> None:
    """Routes inside a node are the graph's routes too (the inter generator's)."""
    return


# ---- declared symmetry -----------------------------------------------------------------


def _sym(ctx: GeneratorContext):
    return ctx.cluster.graph.symmetry


def _contention(ctx: GeneratorContext, node: int) -> range:
    block = _sym(ctx).contention_block
    if block is None:
        return range(ctx.nodes)
    first = node - node % block
    return range(first, min(first + block, ctx.nodes))


INTRA_GENERATOR = Generator(
    no_links, _no_route, "the cluster's own graph (inside a node)",
    shift_symmetric=lambda ctx: _sym(ctx).shift_symmetric)

INTER_GENERATOR = Generator(
    no_links, route, "the cluster's own graph: shortest paths with ECMP, or its routes",
    shift_period=lambda ctx: _sym(ctx).shift_period,
    node_traffic_intra=lambda ctx: _sym(ctx).node_traffic_intra,
    rail_disjoint=lambda ctx: _sym(ctx).rail_disjoint,
    block_nodes=lambda ctx: _sym(ctx).block_nodes,
    contention_nodes=_contention)
