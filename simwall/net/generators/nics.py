"""NICs, shared by the generators that join nodes through them (fat-tree, ring of nodes):
each device's link to its NIC, and the cross-node route with rail matching (PXN)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..names import Node, device_node
from .base import GeneratorContext, Link, link_attrs

if TYPE_CHECKING:                      # types only: the topology calls the generators
    from ..topology import Topology

__all__ = ["NoStructuralRoute", "net_path", "nic_links", "pxn_route"]


class NoStructuralRoute(Exception):
    """The structural router has no path; the generic fallback takes over."""


def nic_links(ctx: GeneratorContext, n: int) -> Iterator[Link]:
    """The links from node ``n``'s devices to their NICs."""
    # Each device uses NIC (local index % nics_per_node). The NIC is attached to its device
    # directly with the NIC's bandwidth (DGX boxes put a PCIe switch between GPU and NIC;
    # with GPUDirect RDMA the NIC port, not that PCIe hop, is the bottleneck: PCIe4 x16
    # 31.5 GB/s > HDR 25 GB/s, PCIe5 x16 63 GB/s > NDR 50 GB/s). Latency is carried by the
    # NIC-to-network edges.
    D, rails = ctx.devices_per_node, ctx.rails
    attrs = link_attrs(ctx.inter_link, "nic", 0.0)
    for j in range(D):
        yield Link(("dev", n * D + j), ("nic", n, j % rails), attrs)


def net_path(topo: Topology, a: int, b: int, rail_a: int, rail_b: int,
             hop: Callable[[Node, Node], list]) -> list:
    """dev a -> its NIC -> ... -> NIC of b -> dev b; ``hop`` fills in NIC to NIC."""
    nic_a = ("nic", topo.node_of(a), rail_a)
    nic_b = ("nic", topo.node_of(b), rail_b)
    if nic_a == nic_b:
        return [device_node(a), nic_a, device_node(b)]
    return [device_node(a)] + hop(nic_a, nic_b) + [device_node(b)]


def pxn_route(topo: Topology, s: int, t: int, hop: Callable[[Node, Node], list],
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
        first = topo.intra_route(s, relay) if relay != s else [device_node(s)]
        if first is not None:
            return first[:-1] + net_path(topo, relay, t, kt, kt, hop)
    return net_path(topo, s, t, ks, kt, hop)
