"""Inter-node ``rail_only``: one switch per rail and no spine; traffic between rails
crosses the NVLink domain.

Shape: Wang, Ghobadi et al., "How to Build Low-cost Networks for Large Language Models
(without Sacrificing Performance)", arXiv 2307.12169 (2023), Sec. 4: GPUs of the same
rank in every high-bandwidth (NVLink) domain form a rail joined by its own any-to-any
network; the spine that joins rails in a rail-optimised fat-tree is removed, and the
little traffic that must change rail is forwarded over the NVLink domain first (as NCCL
PXN does). Each rail's network is modelled as one non-blocking switch ``leaf{k}.0`` (a
rail of more nodes than a switch has ports is a non-blocking Clos of its own, which
costs the same: the paper's rails are full-bisection).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ...errors import ConfigError
from ..names import Node
from .base import Generator, GeneratorContext, Link, link_attrs
from .nics import nic_links, pxn_route

if TYPE_CHECKING:                      # types only: the topology calls the generators
    from ..topology import Topology

__all__ = ["GENERATOR"]


def check(ctx: GeneratorContext) -> None:
    """Cross-rail traffic needs an intra-node fabric; every device needs its own rail
    (a rail's switch joins one NIC per node)."""
    if ctx.cluster.intra.topology == "none" and ctx.rails > 1:
        raise ConfigError(ctx.source, "inter.topology", "'rail_only' moves traffic between "
                          "rails over the intra-node fabric; intra.topology 'none' has none")


def links(ctx: GeneratorContext, n: int) -> Iterator[Link]:
    """Node ``n``'s device-to-NIC links, then NIC ``k`` to rail ``k``'s switch."""
    yield from nic_links(ctx, n)
    attrs = link_attrs(ctx.inter_link, "net", ctx.inter_link.latency_s / 2)
    for k in range(ctx.rails):
        yield Link(("nic", n, k), ("leaf", k, 0), attrs)


def route(topo: Topology, s: int, t: int) -> list:
    """Rail matched over the intra fabric first, then NIC -> rail switch -> NIC."""
    def hop(nic_a: Node, nic_b: Node) -> list:
        return [nic_a, ("leaf", nic_a[2], 0), nic_b]

    return pxn_route(topo, s, t, hop, rail_match=True)


def whole_nodes(ctx: GeneratorContext) -> int:
    """Whole nodes: every node hangs off the same rail switches alike."""
    return ctx.devices_per_node


def one_block(ctx: GeneratorContext) -> int:
    """The whole cluster is one block: a route's latency depends only on the two local
    indices and whether the ends share a node."""
    return ctx.nodes


def own_node(ctx: GeneratorContext, node: int) -> range:
    """A non-blocking rail switch: a node's traffic is bounded by its own NIC links (a
    relayed cross-rail transfer relays inside its source node)."""
    return range(node, node + 1)


GENERATOR = Generator(links, route, "one non-blocking switch per rail, no spine "
                      "(Wang et al. 2023, rail-only)", check=check,
                      shift_period=whole_nodes, node_traffic_intra=True, rail_disjoint=True,
                      block_nodes=one_block, contention_nodes=own_node, rail_matching=True)
