"""Explicit cluster graphs: a cluster file's ``graph`` (inline, an edge-list YAML file or
a GraphML file) or a ``networkx`` graph, read into a :class:`~simwall.config.GraphSpec`.

The file format is in docs/input-formats.md ("Graph files"). What is checked here is the
shape (schema) and the sizes the cluster takes from the graph (devices per node, nodes);
the links themselves (link classes, capacities, reachability, routes) are checked where
the graph is built, :mod:`simwall.net.generators.explicit`, each error naming the node or
link and its line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError
from .limits import MAX_GRAPH_YAML_VALUES
from .schema import ClusterSpec, GraphSpec, PosInt, Strict
from .validation import flat_lines, key_path_problem, validate
from .yamlio import LineDict, format_value, load_yaml

__all__ = ["GRAPH_TOPOLOGY", "attach_graph", "cluster_doc_from_networkx", "cluster_from_networkx",
           "graph_doc_from_networkx", "graph_key", "graph_sizes", "load_graph_file",
           "read_graphml_cluster"]

#: The ``intra.topology`` / ``inter.topology`` of a cluster that gives its graph.
GRAPH_TOPOLOGY = "graph"

#: The graph attributes in which networkx keeps a GraphML file's key defaults (they
#: apply to the nodes and edges that lack the attribute).
_DEFAULTS = ("node_default", "edge_default")

_ITEM_RE = re.compile(r"^(nodes|links)\[(\d+)\](?:\.([^.\[]+))?")


def _item_key(key: str | None, node_id: Callable[[int], Any],
              edge_ends: Callable[[int], Any]) -> str | None:
    """``key`` as the user of a GraphML file or networkx graph knows it: ``nodes[3].rail``
    -> ``node 'nic0' attribute 'rail'``, ``links[7]`` -> ``edge 'nic0' - 'tor'``,
    ``routing.rail_matching`` and ``symmetry.<trait>`` -> ``graph attribute ...``."""
    if key is None:
        return None
    m = _ITEM_RE.match(key)
    if m is None:
        if key == "routing.rail_matching" or key.startswith("symmetry."):
            return f"graph attribute {key.removeprefix('routing.')!r}"
        return key
    i, attr = int(m.group(2)), m.group(3)
    try:
        what = (f"node {node_id(i)!r}" if m.group(1) == "nodes"
                else "edge {!r} - {!r}".format(*edge_ends(i)))
    except (IndexError, KeyError, TypeError, ValueError):   # no such item: keep the index
        return key
    return what if attr in (None, "name", "between") else f"{what} attribute {attr!r}"


def graph_key(spec: GraphSpec, key: str) -> str:
    """``key`` of ``spec`` (``links[3].bandwidth``) as errors name it: after the graph's
    key prefix (``graph.`` inline in a cluster file), or for a GraphML file or networkx
    graph by the node's id or the edge's ends (``edge 'nic0' - 'tor' attribute
    'bandwidth'``)."""
    if not spec.item_names:
        return spec.key_prefix + key
    return _item_key(key, lambda i: spec.nodes[i].name, lambda i: spec.links[i].between)


def _edge_key(u: Any, v: Any) -> str:
    return f"edge {str(u)!r} - {str(v)!r}"


def _shown(data: dict, key: str) -> str:
    return format_value(data[key]) if key in data else "not given"


def _both_ways(u: Any, v: Any, forward: list[dict], back: list[dict], source: str) -> None:
    """Refuse a directed graph's link whose two directions differ (or one is missing):
    a link is full duplex, the same both ways."""
    a, b = str(u), str(v)
    fix = "give both directions the same attributes, or use an undirected graph"
    if not back:
        raise ConfigError(source, _edge_key(u, v), f"the directed graph has the edge {a!r} "
                          f"-> {b!r} but not {b!r} -> {a!r}; a link is full duplex: {fix}")
    if len(forward) != len(back):
        raise ConfigError(source, _edge_key(u, v), f"{len(forward)} edges {a!r} -> {b!r} "
                          f"but {len(back)} back; a link is full duplex: {fix}")
    for there, back_again in zip(forward, back):
        keys = [k for k in sorted(set(there) | set(back_again), key=str)
                if (k in there) != (k in back_again) or there.get(k) != back_again.get(k)]
        if keys:
            diff = "; ".join(f"{k}: {_shown(there, k)} from {a!r}, {_shown(back_again, k)} "
                             f"from {b!r}" for k in keys)
            raise ConfigError(source, _edge_key(u, v), f"the two directions of the link "
                              f"differ ({diff}); a link is full duplex: {fix}")


def _links_of(g: Any, source: str) -> list[dict]:
    """The links of a ``networkx`` graph, GraphML's edge defaults applied: an undirected
    graph's edges; a directed graph's pairs of opposite edges, each pair one full-duplex
    link (refused where the two differ)."""
    default = dict(getattr(g, "graph", {}).get("edge_default") or {})
    edges = [(u, v, {**default, **data}) for u, v, data in g.edges(data=True)]
    if not g.is_directed():
        return [{"between": [str(u), str(v)], **data} for u, v, data in edges]
    by_pair: dict[tuple, list[dict]] = {}
    for u, v, data in edges:
        by_pair.setdefault((u, v), []).append(data)
    links: list[dict] = []
    done: set[tuple] = set()
    for (u, v), forward in by_pair.items():
        if (v, u) in done:                    # the reverse of a link already written
            continue
        done.add((u, v))
        if u != v:                            # a loop is refused where the graph is built
            _both_ways(u, v, forward, by_pair.get((v, u), []), source)
        links.extend({"between": [str(u), str(v)], **data} for data in forward)
    return links


def graph_doc_from_networkx(g: Any, source: str = "<networkx graph>") -> dict:
    """The edge-list document of a ``networkx`` graph: node attributes (``kind``,
    ``node``, ``rail``, ``device``, ``memory_capacity``) and edge attributes (``type``,
    ``bandwidth``, ``latency``, ``efficiency``, ``kind``) as in a graph file, GraphML's key
    defaults applied; graph attributes ``rail_matching`` and ``symmetry.<trait>`` (GraphML
    has no nesting). A directed graph's two directions of a link are one link, refused
    (a ConfigError naming ``source`` and the edge) unless both are given alike."""
    attrs = {str(k): v for k, v in dict(getattr(g, "graph", {}) or {}).items()}
    node_default = dict(attrs.get("node_default") or {})
    nodes = [{"name": str(n), **node_default, **dict(data)} for n, data in g.nodes(data=True)]
    doc: dict = {"nodes": nodes, "links": _links_of(g, source)}
    if "rail_matching" in attrs:
        doc["routing"] = {"rail_matching": attrs["rail_matching"]}
    symmetry = {k.split(".", 1)[1]: v for k, v in attrs.items() if k.startswith("symmetry.")}
    if symmetry:
        doc["symmetry"] = symmetry
    return doc


def _cluster_attrs(g: Any, source: str) -> dict[str, Any]:
    """The graph attributes of a ``networkx`` graph that are cluster keys (dotted:
    ``inter.link``, ``device.memory_bandwidth``); a ConfigError for one that is neither
    a cluster key nor the graph's own (``rail_matching``, ``symmetry.<trait>``)."""
    out = {}
    for key, value in dict(getattr(g, "graph", {}) or {}).items():
        key = str(key)
        if key == "rail_matching" or key.startswith("symmetry.") or key in _DEFAULTS:
            continue
        problem = ("the graph is the file itself, not a graph attribute"
                   if key.split(".")[0] == "graph" else key_path_problem(ClusterSpec, key))
        if problem:
            raise ConfigError(source, key, _unknown_attribute(problem))
        out[key] = value
    return out


def _unknown_attribute(problem: str) -> str:
    """What is wrong with a graph attribute that is no cluster key (``problem``: what
    :func:`~simwall.config.validation.key_path_problem` says)."""
    if "did you mean" in problem or "valid keys of" in problem:
        return problem.replace("unknown key", "unknown graph attribute", 1)
    if problem.startswith("unknown key"):
        return ("unknown graph attribute (graph attributes are cluster keys, dotted as "
                "--set writes them: name, device, device.memory_bandwidth, inter.link, pue, "
                "...; and rail_matching, symmetry.<trait>)")
    return problem


def _graph_spec(g: Any, source: str) -> GraphSpec:
    """The checked :class:`GraphSpec` of a ``networkx`` graph; its errors name nodes by
    id and links by their ends (:func:`graph_key`)."""
    doc = graph_doc_from_networkx(g, source)
    try:
        spec = validate(GraphSpec, doc, source)
    except ConfigError as err:
        raise ConfigError(err.source, _item_key(err.key, lambda i: doc["nodes"][i]["name"],
                                                lambda i: doc["links"][i]["between"]),
                          err.message, line=err.line) from None
    return spec.model_copy(update={"file": source, "item_names": True})


def _read_graphml(path: Path, source: str) -> Any:
    """The ``networkx`` graph of a GraphML file, without the edge ids networkx keeps as
    an ``id`` attribute (an element's id in the file, as a node's id is)."""
    import networkx as nx
    if not path.is_file():
        raise ConfigError(source, None, "no such file")
    try:
        g = nx.read_graphml(path)
    except Exception as err:  # noqa: BLE001 - any parse failure is bad input
        raise ConfigError(source, None, f"not a readable GraphML file: "
                          f"{type(err).__name__}: {err}") from None
    if not g.is_multigraph():
        for _, _, data in g.edges(data=True):
            data.pop("id", None)
    return g


def load_graph_file(path: Path, source: str) -> GraphSpec:
    """A graph file: edge-list YAML (``.yaml``/``.yml``) or GraphML (``.graphml``, read
    with ``networkx.read_graphml``); a ConfigError names the file (and line, or for
    GraphML the node or edge). A GraphML file's cluster keys (graph attributes) are not
    read here: the cluster file that names the graph gives them."""
    if path.suffix.lower() == ".graphml":
        g = _read_graphml(path, source)
        _cluster_attrs(g, source)                   # unknown attributes are refused
        return _graph_spec(g, source)
    doc = load_yaml(path, MAX_GRAPH_YAML_VALUES)
    spec = validate(GraphSpec, doc, source)
    return spec.model_copy(update={"file": source, "lines": flat_lines(doc)})


def graph_sizes(spec: GraphSpec, per_node: int | None) -> tuple[int, int]:
    """(nodes, devices per node) of a graph: devices grouped by their ``node`` (listed
    node by node, every node with as many); without ``node`` on any device, one node of
    every device, or nodes of ``per_node`` devices when the cluster file sets it."""
    src = spec.file
    nkey = graph_key(spec, "nodes")

    def at(i: int, msg: str) -> ConfigError:
        key = f"nodes[{i}]"
        return ConfigError(src, graph_key(spec, key), msg,
                           line=spec.line(f"{key}.node") or spec.line(key))

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


class _GivenSizes(Strict):
    """The sizes a cluster file may give beside its graph, typed as in ClusterSpec (so
    refused alike: ``devices_per_node: 4.5`` is not taken as 'not given')."""

    nodes: PosInt | Literal["auto"] = "auto"
    devices_per_node: PosInt = 8


def _check_sizes(doc: dict, source: str) -> None:
    """Refuse ``nodes`` and ``devices_per_node`` that the cluster schema would refuse,
    before the graph's own sizes replace them; located as the schema locates them."""
    given = LineDict({k: doc[k] for k in ("nodes", "devices_per_node") if k in doc})
    given.lines = {k: v for k, v in getattr(doc, "lines", {}).items() if k in given}
    given.overridden = getattr(doc, "overridden", ())
    validate(_GivenSizes, given, source)


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
    _check_sizes(doc, source)
    nodes, per = graph_sizes(spec, doc.get("devices_per_node"))
    found = doc.get("nodes", "auto")
    if found != "auto" and found != nodes:
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


def cluster_from_networkx(g: Any, source: str = "<networkx graph>") -> Any:
    """A :class:`~simwall.config.ClusterSpec` whose graph is the ``networkx`` graph ``g``
    (node and edge attributes as in a graph file, :func:`graph_doc_from_networkx`;
    cluster keys from its graph attributes, :func:`cluster_doc_from_networkx`). A
    ConfigError names what is wrong, with ``source`` as the file."""
    return validate(ClusterSpec, attach_graph(cluster_doc_from_networkx(g, source), None,
                                              source), source)


def read_graphml_cluster(path: Path, source: str) -> dict:
    """The cluster document of a GraphML file given as the cluster itself (``--cluster
    x.graphml``): :func:`cluster_doc_from_networkx` of what networkx reads."""
    return cluster_doc_from_networkx(_read_graphml(path, source), source)


def _put(doc: dict, key: str, value: Any, source: str) -> None:
    """Set dotted ``key`` (``device.memory_bandwidth``) of ``doc`` to ``value``; refused
    where another graph attribute gives a value above or below it (``device`` and
    ``device.memory_bandwidth``)."""
    parts = key.split(".")
    node = doc
    for i, part in enumerate(parts):
        above = ".".join(parts[:i + 1])
        found = node.get(part)
        last = i == len(parts) - 1
        if found is not None and isinstance(found, dict) == last:
            raise ConfigError(source, above, f"given both as a value and as a mapping "
                              f"(graph attribute {key!r} among them): give a what-if as "
                              f"'{above}.base' and the keys it changes, or {above!r} alone")
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {})


def cluster_doc_from_networkx(g: Any, source: str) -> dict:
    """The cluster document of a ``networkx`` graph, its graph read and located in
    ``source``: its graph attributes are cluster keys, dotted as ``--set`` writes them
    (``device``, ``device.base``, ``device.memory_bandwidth``, ``inter.link``, ``pue``,
    ...; every key whose value is not a list), besides ``rail_matching`` and
    ``symmetry.<trait>``; ``name`` defaults to 'networkx-graph'."""
    doc: dict = {"name": "networkx-graph"}
    for key, value in _cluster_attrs(g, source).items():
        _put(doc, key, value, source)
    doc["graph"] = _graph_spec(g, source)
    return doc
