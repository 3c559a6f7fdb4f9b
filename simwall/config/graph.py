"""Explicit cluster graphs: a cluster file's ``graph`` (inline, an edge-list YAML file or
a GraphML file) or a ``networkx`` graph, read into a :class:`~simwall.config.GraphSpec`.

The file format is in docs/input-formats.md ("Graph files"). What is checked here is the
shape (schema) and the sizes the cluster takes from the graph (devices per node, nodes);
the links themselves (link classes, capacities, reachability, routes) are checked where
the graph is built, :mod:`simwall.net.generators.explicit`, each error naming the node or
link and its line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .limits import MAX_GRAPH_YAML_VALUES
from .schema import GraphSpec
from .validation import flat_lines, validate
from .yamlio import LineDict, load_yaml

__all__ = ["GRAPH_TOPOLOGY", "attach_graph", "cluster_doc_from_networkx", "cluster_from_networkx",
           "graph_doc_from_networkx", "graph_sizes", "load_graph_file", "read_graphml_cluster"]

#: The ``intra.topology`` / ``inter.topology`` of a cluster that gives its graph.
GRAPH_TOPOLOGY = "graph"


def graph_doc_from_networkx(g: Any) -> dict:
    """The edge-list document of a ``networkx`` graph: node attributes (``kind``,
    ``node``, ``rail``, ``device``, ``memory_capacity``) and edge attributes (``type``,
    ``bandwidth``, ``latency``, ``efficiency``, ``kind``) as in a graph file; graph
    attributes ``rail_matching`` and ``symmetry.<trait>`` (GraphML has no nesting).
    A directed graph's two directions of a link count once."""
    nodes = [{"name": str(n), **dict(data)} for n, data in g.nodes(data=True)]
    seen: set = set()
    links = []
    for u, v, data in g.edges(data=True):
        key = frozenset((u, v))
        if g.is_directed() and key in seen:
            continue
        seen.add(key)
        links.append({"between": [str(u), str(v)], **dict(data)})
    doc: dict = {"nodes": nodes, "links": links}
    attrs = {k: v for k, v in dict(getattr(g, "graph", {}) or {}).items()
             if k == "rail_matching" or str(k).startswith("symmetry.")}
    if "rail_matching" in attrs:
        doc["routing"] = {"rail_matching": attrs.pop("rail_matching")}
    symmetry = {k.split(".", 1)[1]: attrs.pop(k) for k in list(attrs)
                if isinstance(k, str) and k.startswith("symmetry.")}
    if symmetry:
        doc["symmetry"] = symmetry
    return doc


def load_graph_file(path: Path, source: str) -> GraphSpec:
    """A graph file: edge-list YAML (``.yaml``/``.yml``) or GraphML (``.graphml``, read
    with ``networkx.read_graphml``); a ConfigError names the file (and line)."""
    if path.suffix.lower() == ".graphml":
        import networkx as nx
        if not path.is_file():
            raise ConfigError(source, None, "no such file")
        try:
            g = nx.read_graphml(path)
        except Exception as err:  # noqa: BLE001 - any parse failure is bad input
            raise ConfigError(source, None, f"not a readable GraphML file: "
                              f"{type(err).__name__}: {err}") from None
        doc: Any = graph_doc_from_networkx(g)
    else:
        doc = load_yaml(path, MAX_GRAPH_YAML_VALUES)
    spec = validate(GraphSpec, doc, source)
    return spec.model_copy(update={"file": source, "lines": flat_lines(doc)})


def graph_sizes(spec: GraphSpec, per_node: int | None) -> tuple[int, int]:
    """(nodes, devices per node) of a graph: devices grouped by their ``node`` (listed
    node by node, every node with as many); without ``node`` on any device, one node of
    every device, or nodes of ``per_node`` devices when the cluster file sets it."""
    src = spec.file
    nkey = spec.key_prefix + "nodes"

    def at(i: int, msg: str) -> ConfigError:
        key = f"nodes[{i}]"
        return ConfigError(src, spec.key_prefix + key, msg, line=spec.line(f"{key}.node") or spec.line(key))

    devices = [(i, n) for i, n in enumerate(spec.nodes) if n.kind == "device"]
    if not devices:
        raise ConfigError(src, nkey, "the graph has no node of kind 'device'",
                          line=spec.line("nodes"))
    given = [n.node is not None for _, n in devices]
    if not any(given):
        count = len(devices)
        per = per_node or count
        if count % per:
            raise ConfigError(src, nkey, f"{count} devices do not fill whole nodes of "
                              f"devices_per_node = {per} (give each device its 'node')")
        return count // per, per
    if not all(given):
        i = devices[given.index(False)][0]
        raise at(i, f"device {spec.nodes[i].name!r} has no 'node' (other devices give "
                 f"theirs: give every device the cluster node it belongs to)")
    counts: dict[int, int] = {}
    previous = -1
    for i, n in devices:
        if n.node != previous and n.node in counts or n.node < previous:
            raise at(i, f"device {n.name!r} of node {n.node} is listed apart from that "
                     f"node's other devices (list devices node by node, nodes ascending)")
        if n.node != previous and n.node != previous + 1:
            raise at(i, f"device {n.name!r}: node {n.node} follows node {previous} "
                     f"(number the nodes 0, 1, 2, ... without gaps)")
        previous = n.node
        counts[n.node] = counts.get(n.node, 0) + 1
    sizes = set(counts.values())
    if len(sizes) > 1:
        small = min(counts, key=lambda k: (counts[k], k))
        raise ConfigError(src, nkey, f"nodes hold different numbers of devices "
                          f"(node {small}: {counts[small]}, node 0: {counts[0]}); every "
                          f"node must hold as many", line=spec.line("nodes"))
    per = sizes.pop()
    if per_node is not None and per_node != per:
        raise ConfigError(src, nkey, f"the graph's nodes hold {per} devices each, but "
                          f"the cluster sets devices_per_node = {per_node}")
    return len(counts), per


def attach_graph(doc: Any, cluster_path: Path | None, source: str) -> Any:
    """A cluster document with its ``graph`` read (a file named relative to the cluster
    file, or inline) and the sizes and topologies it fixes: ``nodes`` and
    ``devices_per_node`` from the graph, ``intra.topology`` and ``inter.topology``
    'graph'. Other documents are returned as they are."""
    if not isinstance(doc, dict) or doc.get("graph") is None:
        return doc
    value = doc["graph"]
    line = getattr(doc, "lines", {}).get("graph")
    if isinstance(value, str):
        path = Path(value)
        if not path.is_absolute() and cluster_path is not None:
            path = cluster_path.parent / path
        if not path.exists():
            raise ConfigError(source, "graph", f"no such graph file {value!r}", line=line)
        spec = load_graph_file(path, str(value) if cluster_path is None else str(path))
    elif isinstance(value, GraphSpec):
        spec = value
    elif isinstance(value, dict):
        try:
            spec = validate(GraphSpec, value, source)
        except ConfigError as err:            # keys inside the cluster file: graph.*
            raise ConfigError(err.source, f"graph.{err.key}" if err.key else "graph",
                              err.message, line=err.line or line) from None
        lines = {f"graph.{k}": v for k, v in flat_lines(value).items()}
        spec = spec.model_copy(update={"file": source, "key_prefix": "graph.", "lines": {
            k[len("graph."):]: v for k, v in lines.items()}})
    else:
        raise ConfigError(source, "graph", "expected a graph file name or a mapping "
                          "(nodes, links)", line=line)
    per_node = doc.get("devices_per_node")
    nodes, per = graph_sizes(spec, per_node if isinstance(per_node, int) else None)
    found = doc.get("nodes", "auto")
    if found not in ("auto", nodes):
        by_set = ("nodes",) in getattr(doc, "overridden", ())
        raise ConfigError(source, "nodes", f"the graph has {nodes} nodes, got {found!r} "
                          f"({'from --set; ' if by_set else ''}leave it out or 'auto')",
                          line=None if by_set else getattr(doc, "lines", {}).get("nodes"))
    out = doc
    if not isinstance(doc, LineDict):
        out = LineDict(doc)
        out.lines = {}
    out["graph"] = spec
    out["nodes"] = nodes
    out["devices_per_node"] = per
    for level in ("intra", "inter"):
        sub = out.get(level)
        if sub is None:
            out[level] = {"topology": GRAPH_TOPOLOGY}
        elif isinstance(sub, dict):
            if sub.get("topology", GRAPH_TOPOLOGY) != GRAPH_TOPOLOGY:
                raise ConfigError(source, f"{level}.topology", f"must be 'graph' (or left "
                                  f"out) when the cluster gives its graph, got "
                                  f"{sub.get('topology')!r}")
            sub["topology"] = GRAPH_TOPOLOGY
    return out


#: Graph attributes of a ``networkx`` graph that are cluster keys (the rest of the
#: cluster takes its defaults): ``name``, ``device``, ``source``, and dotted keys such as
#: ``intra.link``, ``inter.link``, ``inter.nics_per_node``, ``host.link``.
_CLUSTER_ATTRS = ("name", "device", "source", "memory_reserved", "memory_fragmentation")


def cluster_from_networkx(g: Any, source: str = "<networkx graph>") -> Any:
    """A :class:`~simwall.config.ClusterSpec` whose graph is the ``networkx`` graph ``g``
    (node and edge attributes as in a graph file, :func:`graph_doc_from_networkx`;
    cluster keys from its graph attributes, :data:`_CLUSTER_ATTRS` and dotted
    ``level.key``). A ConfigError names what is wrong, with ``source`` as the file."""
    from .schema import ClusterSpec
    return validate(ClusterSpec, attach_graph(cluster_doc_from_networkx(g, source), None,
                                              source), source)


def read_graphml_cluster(path: Path, source: str) -> dict:
    """The cluster document of a GraphML file given as the cluster itself (``--cluster
    x.graphml``): :func:`cluster_doc_from_networkx` of what networkx reads."""
    import networkx as nx
    try:
        g = nx.read_graphml(path)
    except Exception as err:  # noqa: BLE001 - any parse failure is bad input
        raise ConfigError(source, None, f"not a readable GraphML file: "
                          f"{type(err).__name__}: {err}") from None
    return cluster_doc_from_networkx(g, source)


def cluster_doc_from_networkx(g: Any, source: str) -> dict:
    """The cluster document of a ``networkx`` graph (see :func:`cluster_from_networkx`),
    its graph read and located in ``source``."""
    doc: dict = {"name": "networkx-graph"}
    for key, value in dict(getattr(g, "graph", {}) or {}).items():
        key = str(key)
        if key in _CLUSTER_ATTRS:
            doc[key] = value
        elif "." in key and key.split(".", 1)[0] in ("intra", "inter", "host"):
            level, sub = key.split(".", 1)
            doc.setdefault(level, {})[sub] = value
    spec = validate(GraphSpec, graph_doc_from_networkx(g), source)
    doc["graph"] = spec.model_copy(update={"file": source})
    return doc
