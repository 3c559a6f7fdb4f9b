"""Inter-node ``ring``: the nodes in a ring per rail (NIC k of node n to NIC k of n + 1)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..names import Node
from .base import Generator, GeneratorContext, Link, link_attrs
from .nics import NoStructuralRoute, nic_links, pxn_route
from .paths import ring_path

if TYPE_CHECKING:                      # types only: the topology calls the generators
    from ..topology import Topology

__all__ = ["GENERATOR"]


def links(ctx: GeneratorContext, n: int) -> Iterator[Link]:
    """Node ``n``'s device-to-NIC links, then the ring links it owns."""
    # Nodes in a ring per rail: NIC k of node n links to NIC k of node n + 1. Node n owns
    # the link from n - 1 (the last node also the one back to node 0), so every NIC lists
    # its devices, then its ring neighbours in node order.
    yield from nic_links(ctx, n)
    N = ctx.nodes
    ends = ([(n - 1, n)] if n > 0 else []) + ([(n, 0)] if n == N - 1 and N > 2 else [])
    attrs = link_attrs(ctx.inter_link, "net", ctx.inter_link.latency_s)
    for a, b in ends:
        for k in range(ctx.rails):
            yield Link(("nic", a, k), ("nic", b, k), attrs)


def route(topo: Topology, s: int, t: int) -> list | None:
    """Rail matched, then the shorter way round that rail's ring of NICs."""
    def hop(nic_a: Node, nic_b: Node) -> list:
        if nic_a[2] != nic_b[2]:
            raise NoStructuralRoute
        return [("nic", n, nic_a[2]) for n in ring_path(nic_a[1], nic_b[1], topo.nodes_count)]

    try:
        return pxn_route(topo, s, t, hop)
    except NoStructuralRoute:
        return None


def shift_period(ctx: GeneratorContext) -> int:
    """Whole nodes: a ring of identical nodes maps onto itself when rotated by one."""
    return ctx.devices_per_node


# contention_nodes not declared: routes cross other nodes' links, so every node counts.
GENERATOR = Generator(links, route, "nodes in a ring per rail", shift_period=shift_period,
                      node_traffic_intra=True, rail_disjoint=True,   # one ring per rail
                      rail_matching=lambda ctx: ctx.cluster.intra.topology != "none")
