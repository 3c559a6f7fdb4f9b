"""Inter-node ``fat_tree``: a two-level leaf/spine tree, optionally rail-optimised."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ...memo import memoized
from ..names import Node
from .base import Generator, GeneratorContext, Link, link_attrs
from .nics import nic_links, pxn_route

if TYPE_CHECKING:                      # types only: the topology calls the generators
    from ..topology import Topology

__all__ = ["GENERATOR", "fat_tree_layout", "leaf_down_ports", "leaf_of",
           "leaf_uplink_bytes_per_s", "summed_links"]


def leaf_down_ports(ctx: GeneratorContext) -> int:
    """A leaf switch's ports facing the nodes: its radix split ``o : 1`` by the
    oversubscription ``o``, ``int(radix x o / (1 + o))``."""
    inter = ctx.cluster.inter
    o = inter.oversubscription
    return max(1, int(inter.switch_radix * o / (1 + o)))


def leaf_uplink_bytes_per_s(ctx: GeneratorContext) -> float:
    """A leaf's uplink capacity: its down ports' bandwidth / oversubscription, the same
    for every leaf, also one the last nodes fill only in part or whose down ports whole
    nodes leave partly unused (a switch's uplinks are fixed by its design, not by the
    ports in use)."""
    return (summed_links(ctx.inter_link.bandwidth_bytes_per_s, leaf_down_ports(ctx))
            / ctx.cluster.inter.oversubscription)


def fat_tree_layout(ctx: GeneratorContext) -> tuple[int, bool]:
    """(nodes per leaf, rail optimised): whole nodes on a leaf's down ports
    (:func:`leaf_down_ports`), one NIC each when rail-optimised, else all of a node's."""
    down_ports = leaf_down_ports(ctx)
    if ctx.cluster.inter.rail_optimized:
        return down_ports, True
    return max(1, down_ports // ctx.rails), False


def leaf_of(ctx: GeneratorContext, node: int, rail: int, layout: tuple[int, bool]) -> Node:
    """The leaf switch that NIC ``rail`` of ``node`` plugs into."""
    per_leaf, rail_opt = layout
    return ("leaf", rail if rail_opt else 0, node // per_leaf)


def links(ctx: GeneratorContext, n: int) -> Iterator[Link]:
    """Node ``n``'s device-to-NIC links, then its NIC-to-leaf links."""
    # Two-level leaf/spine tree. Rail-optimised (NVIDIA DGX SuperPOD reference
    # architecture; Selene in Narayanan et al. 2021): NIC k of every node goes to a leaf of
    # rail k. Otherwise all NICs of a node go to one leaf. The spine level is modelled as
    # one non-blocking switch (see uplinks).
    yield from nic_links(ctx, n)
    layout = fat_tree_layout(ctx)
    attrs = link_attrs(ctx.inter_link, "net", ctx.inter_link.latency_s / 2)
    for k in range(ctx.rails):
        yield Link(("nic", n, k), leaf_of(ctx, n, k, layout), attrs)


def uplinks(ctx: GeneratorContext, switch: Node | None = None) -> Iterator[Link]:
    """Every leaf's aggregated uplink to the spine (only ``switch``'s when given)."""
    # Each leaf's uplinks are aggregated into one edge to the spine of
    # leaf_uplink_bytes_per_s (sizing it by the down ports in use made a partly filled leaf
    # the bottleneck, and a higher oversubscription could then speed a step). None with a
    # single leaf.
    # Leaves in order of first use by node (then rail), as the nodes' links reach them.
    per_leaf, rail_opt = fat_tree_layout(ctx)
    leaves = -(-ctx.nodes // per_leaf)
    groups = ctx.rails if rail_opt else 1
    if leaves * groups < 2:
        return
    if switch is None:
        order = [("leaf", k, j) for j in range(leaves) for k in range(groups)]
    elif (len(switch) == 3 and switch[0] == "leaf" and type(switch[1]) is int
          and type(switch[2]) is int and 0 <= switch[1] < groups and 0 <= switch[2] < leaves):
        order = [switch]
    else:
        return
    up = leaf_uplink_bytes_per_s(ctx)
    for leaf in order:
        yield Link(leaf, ("spine", 0), link_attrs(ctx.inter_link, "spine", 0.0, up))


@memoized(maxsize=1024)
def summed_links(bandwidth: float, links: int) -> float:
    """``links`` equal bandwidths added one by one (as a switch's ports are counted)."""
    total = 0.0
    for _ in range(links):
        total += bandwidth
    return total


def route(topo: Topology, s: int, t: int) -> list:
    """device -> NIC -> leaf -> (spine -> leaf) -> NIC -> device, rail matched when the
    tree is rail-optimised."""
    layout = fat_tree_layout(topo.context)

    def hop(nic_a: Node, nic_b: Node) -> list:
        la = leaf_of(topo.context, nic_a[1], nic_a[2], layout)
        lb = leaf_of(topo.context, nic_b[1], nic_b[2], layout)
        return [nic_a, la] + ([] if la == lb else [("spine", 0), lb]) + [nic_b]

    return pxn_route(topo, s, t, hop, rail_match=topo.cluster.inter.rail_optimized)


# ---- symmetry traits -----------------------------------------------------------------


def shift_period(ctx: GeneratorContext) -> int:
    """Whole nodes; whole leaves when the uplinks are oversubscribed (a shift by part of
    a leaf moves traffic between the shared uplinks)."""
    if ctx.cluster.inter.oversubscription > 1:
        return fat_tree_layout(ctx)[0] * ctx.devices_per_node
    return ctx.devices_per_node


def rail_disjoint(ctx: GeneratorContext) -> bool:
    """Rail-optimised: every rail has its own leaves and leaf uplinks."""
    return ctx.cluster.inter.rail_optimized


def block_nodes(ctx: GeneratorContext) -> int | None:
    """Nodes per leaf. A fault-free fat-tree repeats per leaf: every leaf has the same
    downlinks and an uplink in proportion to them. A partial last leaf breaks that when
    the uplinks are oversubscribed (its smaller uplink can become the bottleneck), so then
    only full leaves qualify."""
    per_leaf = fat_tree_layout(ctx)[0]
    if ctx.cluster.inter.oversubscription > 1 and ctx.nodes % per_leaf:
        return None
    return per_leaf


def contention_nodes(ctx: GeneratorContext, node: int) -> range:
    """The nodes of ``node``'s leaf when the uplinks are oversubscribed (they share them),
    else the node alone (a 1:1 leaf's uplinks carry at most what its NICs can send)."""
    if ctx.cluster.inter.oversubscription <= 1:
        return range(node, node + 1)
    per_leaf = fat_tree_layout(ctx)[0]
    first = node - node % per_leaf
    return range(first, min(first + per_leaf, ctx.nodes))


GENERATOR = Generator(links, route, "two-level leaf/spine tree, optionally rail-optimised",
                      shared=uplinks, shift_period=shift_period, node_traffic_intra=True,
                      rail_disjoint=rail_disjoint, block_nodes=block_nodes,
                      contention_nodes=contention_nodes,
                      rail_matching=lambda ctx: (ctx.cluster.inter.rail_optimized
                                                 and ctx.cluster.intra.topology != "none"))
