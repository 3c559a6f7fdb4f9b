"""A generated cluster written out as an explicit graph (``simwall topo NAME --export
FILE``), so that users can start their own topology from a built-in one.

The exported cluster file gives every node and link of the generators' graph (faults
left out: the file keeps its ``faults``, applied when it is read), the link attributes
exactly (floats as Python writes them, so they read back bit for bit), the symmetry the
generators declare for this size, and rail matching where the generator's routes use
it. Routes are checked: every route of the generators must be the one the graph file
gives (shortest path, or rail matched); those that differ are written out as ``routes``
when the cluster is small enough to check every pair (:data:`CHECK_ALL_PAIRS`), else the
export is refused rather than written unfaithfully.
"""

from __future__ import annotations

from typing import Any

from ..config import ClusterSpec
from ..errors import ConfigError
from ..hardware.catalog import get_link
from .build import build_topology
from .generators.base import declared
from .generators.explicit import link_kind
from .names import node_name
from .topology import Topology

__all__ = ["CHECK_ALL_PAIRS", "export_graph_doc", "export_graph_text", "export_graphml_text",
           "graph_node_doc"]

#: Devices up to which every device pair's route is compared (n^2 routes); above it the
#: routes between the first node's devices and those of nodes 0, 1, 2, the middle one
#: and the last (every kind of route of a periodic generator: same node, same leaf,
#: other leaf, every rail pair).
CHECK_ALL_PAIRS = 128

_KIND = {"dev": "device", "nic": "nic", "host": "host"}


def graph_node_doc(node: tuple, per_node: int) -> dict:
    """The file entry of a generator's graph node."""
    kind = _KIND.get(node[0], "switch")
    out: dict[str, Any] = {"name": node_name(node), "kind": kind}
    if node[0] == "dev":
        out["node"] = node[1] // per_node
    elif node[0] in ("nic",):
        out["node"], out["rail"] = node[1], node[2]
    elif node[0] in ("host", "nvsw"):
        out["node"] = node[1]
    return out


def export_graph_text(cluster: ClusterSpec) -> str:
    """:func:`export_graph_doc` as the YAML text of a cluster file (libyaml's emitter;
    floats as ``repr`` writes them, so they read back exactly)."""
    import yaml
    doc = export_graph_doc(cluster)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return (f"# {cluster.name} written out as an explicit graph by 'simwall topo --export' "
            f"(docs/input-formats.md, \"Graph files\").\n"
            + yaml.dump(doc, Dumper=dumper, sort_keys=False, default_flow_style=None,
                        width=100))


def _graph_attrs(doc: Any, prefix: str = "") -> tuple[dict[str, Any], list[str]]:
    """(dotted key -> value) of every single value of a cluster document, nested keys
    dotted as ``--set`` writes them (``device.memory_bandwidth``), and the keys whose
    values are non-empty lists (which GraphML attributes cannot hold)."""
    attrs: dict[str, Any] = {}
    lists: list[str] = []
    for key, value in doc.items():
        dotted = prefix + str(key)
        if isinstance(value, dict):
            sub, sub_lists = _graph_attrs(value, dotted + ".")
            attrs.update(sub)
            lists += sub_lists
        elif isinstance(value, (list, tuple)):
            if value:
                lists.append(dotted)
        elif value is not None:
            attrs[dotted] = value
    return attrs, lists


def export_graphml_text(cluster: ClusterSpec) -> str:
    """:func:`export_graph_doc` as GraphML (``networkx.generate_graphml``): node and edge
    attributes as in a graph file, every cluster key as a graph attribute dotted as
    ``--set`` writes it (``device.base``, ``device.memory_bandwidth``, ``inter.link``,
    ``pue``), the routing and symmetry as ``rail_matching`` and ``symmetry.<trait>``
    (docs/input-formats.md), read back exactly. A cluster with lists, which GraphML
    attributes cannot hold (``faults.stragglers``, ``faults.links``, ``mixed``, routes
    that must be written out), is refused: export it as YAML."""
    import networkx as nx
    doc = export_graph_doc(cluster)
    graph = doc["graph"]
    attrs, lists = _graph_attrs({k: v for k, v in doc.items() if k != "graph"})
    if graph.get("routes"):
        lists.append("routes that shortest paths would not give")
    if lists:
        raise ConfigError("--export", None, f"GraphML cannot hold {cluster.name}'s "
                          f"{', '.join(lists)} (lists; a GraphML attribute holds one "
                          f"value): export to a .yaml file, which keeps them")
    g = nx.Graph()
    g.graph.update(attrs)
    g.graph["rail_matching"] = graph["routing"]["rail_matching"]
    for key, value in graph["symmetry"].items():
        g.graph[f"symmetry.{key}"] = value
    for node in graph["nodes"]:
        g.add_node(node["name"], **{k: v for k, v in node.items() if k != "name"})
    for link in graph["links"]:
        a, b = link["between"]
        g.add_edge(a, b, **{k: v for k, v in link.items() if k != "between"})
    return "\n".join(nx.generate_graphml(g)) + "\n"


def _symmetry(topo: Topology) -> dict:
    ctx, intra, inter = topo.context, topo.intra_generator, topo.inter_generator
    out: dict[str, Any] = {}
    if declared(intra.shift_symmetric, ctx):
        out["shift_symmetric"] = True
    for trait in ("shift_period", "block_nodes"):
        value = declared(getattr(inter, trait), ctx)
        if value:
            out[trait] = int(value)
    for trait in ("node_traffic_intra", "rail_disjoint"):
        if declared(getattr(inter, trait), ctx):
            out[trait] = True
    if inter.contention_nodes is not None:
        ranges = [inter.contention_nodes(ctx, n) for n in range(ctx.nodes)]
        block = len(ranges[0])
        if block and all(r == range(n - n % block, min(n - n % block + block, ctx.nodes))
                         for n, r in enumerate(ranges)):
            out["contention_block"] = block
    return out


def export_graph_doc(cluster: ClusterSpec) -> dict:
    """The cluster file (a plain mapping) of ``cluster`` (``nodes`` resolved) with its
    generated graph written out (module docstring)."""
    if cluster.graph is not None:
        raise ConfigError(cluster.file, "graph", "the cluster already gives its graph")
    plain = cluster.model_copy(update={"faults": cluster.faults.model_copy(
        update={"links": ()})})
    topo = build_topology(plain)
    g = topo.graph
    per_node = topo.devices_per_node
    nodes = [graph_node_doc(n, per_node) for n in g.nodes]
    kinds = {n: d["kind"] for n, d in zip(g.nodes, nodes)}
    owner = {n: d.get("node") for n, d in zip(g.nodes, nodes)}
    links = []
    done = set()
    for u, v, attrs in g.edges(data=True):
        if (v, u) in done:
            continue
        done.add((u, v))
        entry: dict[str, Any] = {"between": [node_name(u), node_name(v)],
                                 "type": attrs["link"],
                                 "bandwidth": attrs["bandwidth_bytes_per_s"],
                                 "latency": attrs["latency_s"]}
        if attrs["efficiency"] != get_link(attrs["link"]).efficiency:
            entry["efficiency"] = attrs["efficiency"]
        if attrs["kind"] != link_kind(kinds[u], kinds[v], owner[u], owner[v]):
            entry["kind"] = attrs["kind"]
        links.append(entry)
    doc = cluster.model_dump(by_alias=True, exclude_none=True, exclude={"graph"})
    if not cluster.faults.links and not cluster.faults.stragglers:
        del doc["faults"]
    doc["source"] = (f"{cluster.name} ({cluster.intra.topology} + {cluster.inter.topology} "
                     f"generators, {topo.nodes_count} nodes) written out by simwall topo "
                     f"--export; " + (cluster.source or ""))
    doc["intra"] = {k: v for k, v in doc["intra"].items() if k != "dims"}
    # A multi-plane fabric is written out as its pooled plane links (plane faults
    # included in their bandwidths; simwall.net.generators.inter_multi_plane).
    doc["inter"] = {k: v for k, v in doc["inter"].items()
                    if k not in ("dims", "planes", "plane_topology")}
    doc.get("faults", {}).pop("planes", None)
    doc["intra"]["topology"] = doc["inter"]["topology"] = "graph"
    for level in ("intra", "inter", "host"):
        # Every link is written out with its own figures; a what-if mapping left here
        # would scale them a second time (simwall.net.generators.explicit).
        if isinstance(doc[level].get("link"), dict):
            doc[level]["link"] = doc[level]["link"]["base"]
    doc["nodes"] = topo.nodes_count
    rail_matching = bool(declared(getattr(topo.inter_generator, "rail_matching", False),
                                  topo.context))
    graph: dict[str, Any] = {"nodes": nodes, "links": links,
                             "routing": {"rail_matching": rail_matching},
                             "symmetry": _symmetry(topo)}
    routes = _differing_routes(topo, rail_matching, graph, cluster)
    if routes:
        graph["routes"] = routes
    doc["graph"] = graph
    return doc


def _differing_routes(topo: Topology, rail_matching: bool, graph: dict,
                      cluster: ClusterSpec) -> list[dict]:
    """The generators' routes that the graph file's routing would not give."""
    from ..config import GraphSpec
    spec = GraphSpec.model_validate(graph)
    doc = cluster.model_dump(by_alias=True, exclude_none=True)
    doc.update({"graph": spec, "nodes": topo.nodes_count,
                "faults": {"stragglers": doc.get("faults", {}).get("stragglers", [])}})
    doc["inter"] = {k: v for k, v in doc["inter"].items()
                    if k not in ("planes", "plane_topology")}      # pooled in the links
    doc["intra"]["topology"] = doc["inter"]["topology"] = "graph"
    explicit = build_topology(ClusterSpec.model_validate(doc))
    n, per_node = topo.num_devices, topo.devices_per_node
    if n <= CHECK_ALL_PAIRS:
        pairs = [(a, b) for a in range(n) for b in range(n) if a != b]
    else:
        nodes = topo.nodes_count
        far = sorted({m for m in (1, 2, nodes // 2, nodes - 1) if 0 < m < nodes})
        targets = [b for m in [0, *far] for b in range(m * per_node, (m + 1) * per_node)]
        pairs = [(a, b) for a in range(per_node) for b in targets if a != b]
        pairs += [(b, a) for a, b in pairs]
    out = []
    for a, b in pairs:
        want = topo.route(a, b)
        if explicit.route(a, b) != want:
            if n > CHECK_ALL_PAIRS:
                raise ConfigError(cluster.file, "inter.topology", f"cannot export "
                                  f"{cluster.inter.topology!r} with {n} devices faithfully: "
                                  f"its route {a} -> {b} is neither a shortest path nor rail "
                                  f"matched, and only clusters of up to {CHECK_ALL_PAIRS} "
                                  f"devices are exported with every route written out")
            path = [want[0][0]] + [e[1] for e in want]
            out.append({"path": [node_name(x) for x in path]})
    return out
