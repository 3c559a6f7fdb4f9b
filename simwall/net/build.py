"""Building a :class:`~simwall.net.topology.Topology` from a cluster spec."""

from __future__ import annotations

from dataclasses import replace

from ..config import ClusterSpec
from ..errors import ConfigError
from ..hardware.catalog import link_base, resolve_device, resolve_link
from ..registry import INTER_TOPOLOGIES, INTRA_TOPOLOGIES
from .generators.base import GeneratorContext
from .graph import apply_faults, build_graph, check_connected
from .topology import Topology

__all__ = ["build_topology"]

#: The edge kinds of each level of an explicit graph whose link class stands for the
#: level (the device's own attachment: NVLink inside a node, the NIC link across).
_LEVEL_EDGE_KINDS = {"intra": ("intra",), "inter": ("nic", "net")}


def _level_links_of_graph(ctx: GeneratorContext, g) -> GeneratorContext:
    """``ctx`` with each level's link class the one its graph's links have, which is what
    the collectives' latency and protocol model, what-ifs and the confidence statement
    read: ``{level}.link`` when some of the level's typed links are of its class (a
    what-if mapping on it included), else the class of most of them (ties by name). A
    level without typed links keeps ``{level}.link``."""
    cluster, updates = ctx.cluster, {}
    for level, kinds in _LEVEL_EDGE_KINDS.items():
        counts: dict[str, int] = {}
        for _, _, data in g.edges(data=True):
            if data["kind"] in kinds and data["link"] != "custom":
                counts[data["link"]] = counts.get(data["link"], 0) + 1
        if not counts or link_base(getattr(cluster, level).link) in counts:
            continue
        most = min(counts, key=lambda name: (-counts[name], name))
        updates[f"{level}_link"] = resolve_link(most, f"{level}.link", cluster.file)
    return replace(ctx, **updates) if updates else ctx


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
    ctx = GeneratorContext(cluster=cluster, source=source, nodes=cluster.nodes,
                           devices_per_node=cluster.devices_per_node,
                           intra_link=resolve_link(cluster.intra.link, "intra.link", source),
                           inter_link=resolve_link(cluster.inter.link, "inter.link", source),
                           host_link=resolve_link(cluster.host.link, "host.link", source))
    graph_named = [lvl for lvl in ("intra", "inter")
                   if getattr(cluster, lvl).topology == "graph"]
    if cluster.graph is not None or graph_named:
        if cluster.graph is None:
            raise ConfigError(source, f"{graph_named[0]}.topology",
                              "'graph' needs the cluster's graph (key 'graph': a graph file "
                              "or nodes and links)")
        for lvl in ("intra", "inter"):
            if lvl not in graph_named:
                raise ConfigError(source, f"{lvl}.topology", f"must be 'graph' when the "
                                  f"cluster gives its graph, got "
                                  f"{getattr(cluster, lvl).topology!r}")
        from .generators.explicit import build_explicit_graph  # only for a given graph
        g = build_explicit_graph(ctx)
        apply_faults(g, cluster, source)
        check_connected(g, ctx)
        return Topology(cluster, device, g, _level_links_of_graph(ctx, g))
    INTRA_TOPOLOGIES[cluster.intra.topology].check(ctx)
    INTER_TOPOLOGIES[cluster.inter.topology].check(ctx)
    eager = bool(cluster.faults.links) or cluster.intra.topology == "none"
    return Topology(cluster, device, build_graph(ctx) if eager else None, ctx)
