"""The cluster graph from the generators: whole (faults applied, connectivity checked)
or one part at a time (the links one cluster node owns at one level), for a topology
that reads edges without building the graph."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ..config import ClusterSpec
from ..errors import ConfigError
from ..registry import INTER_TOPOLOGIES, INTRA_TOPOLOGIES
from .generators.base import GeneratorContext, Link, link_attrs
from .names import Edge, Node, device_node, node_name, parse_node_name

if TYPE_CHECKING:  # networkx loads when a graph is built (a symmetric run builds none)
    import networkx as nx

__all__ = ["apply_faults", "build_graph", "check_connected", "edge_parts", "host_links",
           "part_links", "shown_name"]

_SWITCHES = ("leaf", "spine", "agg", "rtr")
_NETWORK = ("nic", "leaf", "spine", "agg", "rtr")


def _add_links(g: nx.DiGraph, links: Iterable[Link]) -> None:
    for u, v, attrs in links:            # each edge gets its own copy (faults scale it)
        g.add_edge(u, v, **attrs)
        g.add_edge(v, u, **attrs)


def host_links(ctx: GeneratorContext, n: int) -> Iterator[Link]:
    """Each device of node ``n`` to the node's host memory."""
    attrs = link_attrs(ctx.host_link, "host", ctx.host_link.latency_s)
    for i in range(n * ctx.devices_per_node, (n + 1) * ctx.devices_per_node):
        yield Link(device_node(i), ("host", n), attrs)


def shown_name(g: nx.DiGraph, node: Node) -> str:
    """A graph node as the user names it: an explicit graph's own name (``gpu0``), else
    simwall's (``nic0.2``)."""
    return g.nodes[node].get("name") or node_name(node)


def _node_names(g: nx.DiGraph) -> dict[str, Node]:
    """Name -> graph node for an explicit graph's own node names (``gpu0``, ``tor``);
    empty for a generated graph, whose nodes have simwall's names only."""
    return {own: node for node, own in g.nodes(data="name") if own is not None}


def _unknown_node(g: nx.DiGraph, names: dict[str, Node], text: str) -> str:
    """What to say about a name that is no node of ``g``: a few of its real names."""
    if not names:
        return (f"unknown graph node {text!r} (expected e.g. 'dev3' or '3', 'nic0.2', "
                f"'nvsw0', 'leaf1.0', 'spine', 'host0')")
    near = difflib.get_close_matches(text, list(names), n=3, cutoff=0.6)
    first: dict[str, str] = {}
    for node, data in g.nodes(data=True):
        first.setdefault(data.get("kind", ""), data.get("name") or node_name(node))
    shown = ", ".join(repr(n) for n in dict.fromkeys(near + list(first.values())))
    return f"no node of the cluster's graph is named {text!r} (its nodes include {shown})"


def apply_faults(g: nx.DiGraph, cluster: ClusterSpec, source: str) -> None:
    """Scale (or, with factor 0, remove) both directions of each listed link. Its ends
    are named as an explicit graph names its nodes, first, or as simwall names graph
    nodes (``dev0``, ``3``, ``nic0.2``, ``leaf1.0``: a generated graph's, and the names
    runs print)."""
    names = _node_names(g)
    for idx, fault in enumerate(cluster.faults.links):
        key = f"faults.links[{idx}].between"
        ends = []
        for text in fault.between:
            node = names.get(text) or parse_node_name(text)
            if node is None or node not in g:
                raise ConfigError(source, key, _unknown_node(g, names, text))
            ends.append(node)
        u, v = ends
        if not g.has_edge(u, v):
            near = ", ".join(shown_name(g, w) for w in list(g.successors(u))[:8])
            raise ConfigError(source, key,
                              f"no link between {shown_name(g, u)} and {shown_name(g, v)} "
                              f"({shown_name(g, u)} links to: {near or 'nothing'})")
        for a, b in ((u, v), (v, u)):
            if fault.bandwidth_factor == 0:
                g.remove_edge(a, b)
            else:
                g.edges[a, b]["bandwidth_bytes_per_s"] *= fault.bandwidth_factor


def check_connected(g: nx.DiGraph, ctx: GeneratorContext) -> None:
    """ConfigError when some device cannot reach dev0."""
    # Links are full duplex (both directions added and removed together), so reaching
    # every device from dev0 along out-edges is connectivity. Host memory nodes are not
    # part of the network and are not crossed.
    succ = g.succ
    reached = {device_node(0)}
    todo = [device_node(0)]
    while todo:
        for v in succ[todo.pop()]:
            if v not in reached and v[0] != "host":
                reached.add(v)
                todo.append(v)
    cut = [i for i in range(ctx.num_devices) if device_node(i) not in reached]
    if not cut:
        return
    shown = ", ".join(f"dev{i}" for i in cut[:8]) + (" ..." if len(cut) > 8 else "")
    if any(f.bandwidth_factor == 0 for f in ctx.cluster.faults.links):
        raise ConfigError(ctx.source, "faults.links",
                          f"the failed links disconnect the cluster: {shown} cannot reach dev0")
    raise ConfigError(ctx.source, "inter.topology",
                      f"intra {ctx.cluster.intra.topology!r} with inter "
                      f"{ctx.cluster.inter.topology!r} leaves {shown} unreachable from dev0")


def edge_parts(edge: Edge, ctx: GeneratorContext) -> list[tuple]:
    """The parts of the cluster whose links may include ``edge``: ``(node, level)`` with
    level 'intra', 'inter' or 'host' (a link is owned by a cluster node at one of its
    ends), or ``(switch,)`` for a leaf's, pod aggregation switch's or router's own
    switch-to-switch links (the spine owns nothing: its every link has one of those at
    the other end)."""
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
            if end[0] != "spine":         # a leaf, pod or router owns its uplinks
                out.append((end,))
            continue
        n = _owner(end, ctx)
        if n is not None:
            out.extend((n, level) for level in levels)
    return out


def part_links(ctx: GeneratorContext, part: tuple) -> Iterable[Link]:
    """The links of one part (see :func:`edge_parts`)."""
    if len(part) == 1:
        return INTER_TOPOLOGIES[ctx.cluster.inter.topology].shared(ctx, part[0])
    n, level = part
    if level == "intra":
        return INTRA_TOPOLOGIES[ctx.cluster.intra.topology].links(ctx, n)
    if level == "inter":
        return INTER_TOPOLOGIES[ctx.cluster.inter.topology].links(ctx, n)
    return host_links(ctx, n)


def _owner(node: Node, ctx: GeneratorContext) -> int | None:
    """The cluster node whose links include those of graph node ``node`` (None for a
    name outside the cluster)."""
    kind = node[0] if isinstance(node, tuple) and len(node) >= 2 else None
    n = node[1] if kind in ("dev", "nvsw", "nic", "host") else None
    if type(n) is not int:
        return None
    if kind == "dev":
        n //= ctx.devices_per_node
    return n if 0 <= n < ctx.nodes else None


def build_graph(ctx: GeneratorContext) -> nx.DiGraph:
    """The whole graph, faults applied and connectivity checked."""
    intra = INTRA_TOPOLOGIES[ctx.cluster.intra.topology]
    inter = INTER_TOPOLOGIES[ctx.cluster.inter.topology]
    import networkx as nx
    g = nx.DiGraph()
    # Devices first, so node order (and so fallback routing) is fixed by index; then one
    # level at a time, so each node's neighbours are listed intra, network, host.
    g.add_nodes_from(device_node(i) for i in range(ctx.num_devices))
    for n in range(ctx.nodes):
        _add_links(g, intra.links(ctx, n))
    for n in range(ctx.nodes):
        _add_links(g, inter.links(ctx, n))
    _add_links(g, inter.shared(ctx))
    for n in range(ctx.nodes):
        _add_links(g, host_links(ctx, n))
    apply_faults(g, ctx.cluster, ctx.source)
    check_connected(g, ctx)
    return g
