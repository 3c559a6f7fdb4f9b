"""Inter-node ``dragonfly``: groups of routers joined all-to-all inside a group (local
links) and group to group (global links), with minimal routing.

Shape: Kim, Dally, Scott and Abts, "Technology-Driven, Highly-Scalable Dragonfly
Topology", ISCA 2008, Sec. 3: ``p`` terminals per router (here: nodes, ``router_nodes``),
``a`` routers per group (``group_routers``), fully connected by local channels, and ``h``
global channels per router (``global_links``), so a group has ``a*h`` global channels to
the other groups (at most ``a*h + 1`` groups); balanced when a = 2p = 2h. Minimal routing
(Sec. 4.1): at most one local hop in the source group, one global hop, one local hop in
the destination group.

Modelled here: a node's NICs all attach to its router (one port each); every channel is
as wide as a node's NICs (one port per rail), so a router's terminal, local and global
ports carry the same bandwidth per port as in the paper's balanced design. Global port
``q`` of group G goes to group (G + 1 + q mod (g - 1)) mod g (a cyclic arrangement: the
same wiring seen from every group); two groups are joined by the fewer of the ports each
points at the other (:func:`_channels`), aggregated into one edge from the router
holding the first of them. Router and global edges carry no latency
of their own (as the fat-tree's spine: the link class's latency is per network transfer).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ...errors import ConfigError
from ..names import Node
from .base import Generator, GeneratorContext, Link, link_attrs
from .nics import net_path, nic_links

if TYPE_CHECKING:                      # types only: the topology calls the generators
    from ..topology import Topology

__all__ = ["GENERATOR", "router_of"]


def _shape(ctx: GeneratorContext) -> tuple[int, int, int, int]:
    """(p nodes per router, a routers per group, h global links per router, groups)."""
    inter = ctx.cluster.inter
    p, a, h = inter.router_nodes, inter.group_routers, inter.global_links
    return p, a, h, -(-ctx.nodes // (p * a))


def check(ctx: GeneratorContext) -> None:
    """A group's ``a*h`` global channels must reach every other group."""
    p, a, h, g = _shape(ctx)
    if g - 1 > a * h:
        raise ConfigError(ctx.source, "inter.global_links", f"{g} groups of {a} routers x "
                          f"{p} nodes need at least {g - 1} global channels per group, "
                          f"got group_routers x global_links = {a} x {h} = {a * h}")


def router_of(ctx: GeneratorContext, node: int) -> Node:
    """The router node ``node`` attaches to."""
    p, a, _, _ = _shape(ctx)
    r = node // p
    return ("rtr", r // a, r % a)


def _global_router(ctx: GeneratorContext, src: int, dst: int) -> int:
    """The router of group ``src`` holding its (first) global channel to group ``dst``
    (in a partial last group, the last router it has holds those of the missing ones)."""
    p, a, h, g = _shape(ctx)
    present = min(a, -(-ctx.nodes // p) - src * a)
    return min(((dst - src - 1) % g) // h, present - 1)


def _ports(ctx: GeneratorContext, src: int, dst: int) -> int:
    """Global ports of group ``src`` the cyclic arrangement points at group ``dst``
    (ports q = d, d + g-1, ...)."""
    _, a, h, g = _shape(ctx)
    d = (dst - src - 1) % g
    return len(range(d, a * h, g - 1))


def _channels(ctx: GeneratorContext, src: int, dst: int) -> int:
    """Global channels between groups ``src`` and ``dst``: a channel is one cable with a
    port at each end, so the fewer of the ports each side points at the other. When
    ``g - 1`` does not divide ``a*h`` the two counts differ; taking one side's count gave
    a group more channels than its ``a*h`` ports. The same for (src, dst) as for (dst,
    src), and a function of ``dst - src`` alone (the wiring stays shift-symmetric)."""
    return min(_ports(ctx, src, dst), _ports(ctx, dst, src))


def links(ctx: GeneratorContext, n: int) -> Iterator[Link]:
    """Node ``n``'s device-to-NIC links, then each NIC to the node's router."""
    yield from nic_links(ctx, n)
    attrs = link_attrs(ctx.inter_link, "net", ctx.inter_link.latency_s / 2)
    for k in range(ctx.rails):
        yield Link(("nic", n, k), router_of(ctx, n), attrs)


def _routers(ctx: GeneratorContext) -> list[Node]:
    p, a, _, _ = _shape(ctx)
    used = -(-ctx.nodes // p)
    return [("rtr", r // a, r % a) for r in range(used)]


def router_links(ctx: GeneratorContext, switch: Node | None = None) -> Iterator[Link]:
    """Local links (router to router in a group) and global links (group to group), all
    of them, or those with an end at router ``switch``."""
    _, a, _, groups = _shape(ctx)
    routers = _routers(ctx)
    present = set(routers)
    if switch is not None and switch not in present:
        return
    width = ctx.inter_link.bandwidth_bytes_per_s * ctx.rails
    local = link_attrs(ctx.inter_link, "spine", 0.0, width)
    for u in routers:
        for r in range(u[2] + 1, a):
            v = ("rtr", u[1], r)
            if v in present and (switch is None or switch in (u, v)):
                yield Link(u, v, local)
    for src in range(groups):
        for dst in range(src + 1, groups):
            u = ("rtr", src, _global_router(ctx, src, dst))
            v = ("rtr", dst, _global_router(ctx, dst, src))
            if u in present and v in present and (switch is None or switch in (u, v)):
                yield Link(u, v, link_attrs(ctx.inter_link, "spine", 0.0,
                                            width * _channels(ctx, src, dst)))


def route(topo: Topology, s: int, t: int) -> list:
    """Minimal: source router, (local hop to the global router), global hop, (local hop
    to the destination router). A node's NICs share its router: no rail matching."""
    ctx = topo.context

    def hop(nic_a: Node, nic_b: Node) -> list:
        ra, rb = router_of(ctx, nic_a[1]), router_of(ctx, nic_b[1])
        path = [nic_a, ra]
        if ra[1] != rb[1]:
            ga = ("rtr", ra[1], _global_router(ctx, ra[1], rb[1]))
            gb = ("rtr", rb[1], _global_router(ctx, rb[1], ra[1]))
            path += [ga, gb] if ga != ra else [gb]
        if path[-1] != rb:
            path.append(rb)
        return path + [nic_b]

    rails = topo.rails
    return net_path(topo, s, t, topo.local_index(s) % rails, topo.local_index(t) % rails,
                    hop)


def shift_period(ctx: GeneratorContext) -> int | None:
    """Whole groups, when every group is full: the cyclic global wiring maps group G to
    G + 1; None with a partial last group."""
    p, a, _, _ = _shape(ctx)
    if ctx.nodes % (p * a):
        return None
    return p * a * ctx.devices_per_node


# Not rail_disjoint (rails share routers, local and global links); no block_nodes (groups
# are joined all to all, not repeated independently); contention_nodes not declared
# (minimal routes cross other groups' routers).
GENERATOR = Generator(links, route, "dragonfly: router groups, all-to-all local and global "
                      "links, minimal routing (Kim et al. 2008)", shared=router_links,
                      check=check, shift_period=shift_period, node_traffic_intra=True)
