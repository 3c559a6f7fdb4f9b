"""Inter-node ``fat_tree3``: a three-tier fat-tree (leaf, pod aggregation, core) with an
oversubscription per tier, optionally rail-optimised.

Shape: Al-Fares, Loukissas and Vahdat, "A Scalable, Commodity Data Center Network
Architecture", SIGCOMM 2008 (the k-ary fat-tree: pods of k/2 edge and k/2 aggregation
switches under a core layer; ``pod_leaves`` defaults to k/2 = switch_radix / 2), with the
per-tier oversubscription of production Clos fabrics (Singh et al., "Jupiter Rising",
SIGCOMM 2015, Sec. 3: edge and aggregation blocks each with their own uplink ratio).
Leaves are those of ``fat_tree`` (``inter.oversubscription`` splits their ports);
each pod's aggregation layer is modelled as one switch ``agg{rail}.{pod}`` per rail group,
the core as one non-blocking switch ``spine``, as ``fat_tree`` models its spine: a leaf's
uplink carries its down ports' bandwidth / ``oversubscription``
(``fat_tree.leaf_uplink_bytes_per_s``), a pod's uplink the sum of its leaves' uplinks /
``agg_oversubscription``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..names import Node
from . import inter_fat_tree as fat_tree
from .base import Generator, GeneratorContext, Link, link_attrs
from .inter_fat_tree import fat_tree_layout, leaf_of
from .nics import pxn_route

if TYPE_CHECKING:                      # types only: the topology calls the generators
    from ..topology import Topology

__all__ = ["GENERATOR", "pod_of"]


def _pod_leaves(ctx: GeneratorContext) -> int:
    return ctx.cluster.inter.pod_leaves or max(1, ctx.cluster.inter.switch_radix // 2)


def pod_of(ctx: GeneratorContext, leaf: Node) -> Node:
    """The aggregation switch above ``leaf``."""
    return ("agg", leaf[1], leaf[2] // _pod_leaves(ctx))


def _sizes(ctx: GeneratorContext) -> tuple[int, int, int, bool]:
    """(nodes per leaf, leaves, pods, rail optimised)."""
    per_leaf, rail_opt = fat_tree_layout(ctx)
    leaves = -(-ctx.nodes // per_leaf)
    return per_leaf, leaves, -(-leaves // _pod_leaves(ctx)), rail_opt


def links(ctx: GeneratorContext, n: int) -> Iterator[Link]:
    """Node ``n``'s device-to-NIC links, then its NIC-to-leaf links: the two-level
    ``fat_tree``'s leaf level, unchanged."""
    return fat_tree.links(ctx, n)


def uplinks(ctx: GeneratorContext, switch: Node | None = None) -> Iterator[Link]:
    """Leaf-to-pod and pod-to-core links (only ``switch``'s own uplink when given)."""
    _, leaves, pods, rail_opt = _sizes(ctx)
    groups = ctx.rails if rail_opt else 1
    if leaves * groups < 2:
        return
    pl = _pod_leaves(ctx)
    core = pods * groups > 1
    if switch is None:
        order = [("leaf", k, j) for j in range(leaves) for k in range(groups)]
        order += [("agg", k, p) for p in range(pods) for k in range(groups)] if core else []
    elif (len(switch) == 3 and switch[0] in ("leaf", "agg") and type(switch[1]) is int
          and type(switch[2]) is int and 0 <= switch[1] < groups
          and 0 <= switch[2] < (leaves if switch[0] == "leaf" else pods)):
        order = [switch] if switch[0] == "leaf" or core else []
    else:
        return
    for sw in order:
        if sw[0] == "leaf":
            yield Link(sw, pod_of(ctx, sw), link_attrs(
                ctx.inter_link, "spine", 0.0, fat_tree.leaf_uplink_bytes_per_s(ctx)))
        else:
            total = 0.0
            for _ in range(sw[2] * pl, min((sw[2] + 1) * pl, leaves)):
                total += fat_tree.leaf_uplink_bytes_per_s(ctx)
            yield Link(sw, ("spine", 0), link_attrs(
                ctx.inter_link, "spine", 0.0, total / ctx.cluster.inter.agg_oversubscription))


def route(topo: Topology, s: int, t: int) -> list:
    """device -> NIC -> leaf -> (pod -> (core -> pod) -> leaf) -> NIC -> device, rail
    matched when rail-optimised."""
    ctx = topo.context
    layout = fat_tree_layout(ctx)

    def hop(nic_a: Node, nic_b: Node) -> list:
        la = leaf_of(ctx, nic_a[1], nic_a[2], layout)
        lb = leaf_of(ctx, nic_b[1], nic_b[2], layout)
        if la == lb:
            return [nic_a, la, nic_b]
        pa, pb = pod_of(ctx, la), pod_of(ctx, lb)
        mid = [pa] if pa == pb else [pa, ("spine", 0), pb]
        return [nic_a, la, *mid, lb, nic_b]

    return pxn_route(topo, s, t, hop, rail_match=topo.cluster.inter.rail_optimized)


# ---- symmetry traits -----------------------------------------------------------------


def _pod_nodes(ctx: GeneratorContext) -> int:
    return fat_tree_layout(ctx)[0] * _pod_leaves(ctx)


def shift_period(ctx: GeneratorContext) -> int:
    """Whole nodes when no tier is oversubscribed; whole leaves when only the leaves
    are; whole pods when the aggregation tier is."""
    inter = ctx.cluster.inter
    if inter.agg_oversubscription > 1:
        return _pod_nodes(ctx) * ctx.devices_per_node
    if inter.oversubscription > 1:
        return fat_tree_layout(ctx)[0] * ctx.devices_per_node
    return ctx.devices_per_node


def rail_disjoint(ctx: GeneratorContext) -> bool:
    """Rail-optimised: every rail has its own leaves and pod switches (the core is one
    non-blocking switch)."""
    return ctx.cluster.inter.rail_optimized


def block_nodes(ctx: GeneratorContext) -> int | None:
    """Nodes per pod: the tree repeats per pod (full pods only when a tier is
    oversubscribed, as ``fat_tree`` requires full leaves)."""
    inter = ctx.cluster.inter
    pod = _pod_nodes(ctx)
    oversub = inter.oversubscription > 1 or inter.agg_oversubscription > 1
    if oversub and ctx.nodes % pod:
        return None
    return pod


def contention_nodes(ctx: GeneratorContext, node: int) -> range:
    """The node alone when no tier is oversubscribed; its leaf's nodes when only the
    leaves are; its pod's nodes when the aggregation tier is."""
    inter = ctx.cluster.inter
    if inter.agg_oversubscription > 1:
        size = _pod_nodes(ctx)
    elif inter.oversubscription > 1:
        size = fat_tree_layout(ctx)[0]
    else:
        return range(node, node + 1)
    first = node - node % size
    return range(first, min(first + size, ctx.nodes))


GENERATOR = Generator(links, route, "three-tier fat-tree (leaf, pod, core), oversubscription "
                      "per tier, optionally rail-optimised", shared=uplinks,
                      shift_period=shift_period, node_traffic_intra=True,
                      rail_disjoint=rail_disjoint, block_nodes=block_nodes,
                      contention_nodes=contention_nodes,
                      rail_matching=lambda ctx: (ctx.cluster.inter.rail_optimized
                                                 and ctx.cluster.intra.topology != "none"))
