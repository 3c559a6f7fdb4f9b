"""Inter-node ``multi_plane``: each NIC's bandwidth split over ``inter.planes``
independent, identical planes (a NIC port per plane, a switch hierarchy per plane), each
plane the fabric ``inter.plane_topology`` (fat_tree, fat_tree3, rail_only or dragonfly).

Shape: Qian et al., "Alibaba HPN: A Data Center Network for Large Language Model
Training", SIGCOMM 2024, Sec. 5 (dual-plane: each 400 Gb/s NIC has two 200 Gb/s ports,
each to a ToR of its own plane, and a plane's ToRs uplink only to that plane's
aggregation switches; a 51.2 Tb/s switch serves 128 x 200 Gb/s hosts, twice what it
would at 400 Gb/s); NVIDIA Spectrum-X multiplane (NVIDIA Network Operator
documentation, "NVIDIA Spectrum-X Ethernet Networking Platform": a ConnectX-8 SuperNIC
split over 2 or 4 independent planes, "numberOfPlanes"; ConnectX-8 firmware release
notes: 800 Gb/s as 2 x 400 GbE, "planarized topology"); Zhao et al. (DeepSeek-AI),
"Insights into DeepSeek-V3: Scaling Challenges and Reflections on Hardware for AI
Architectures", ISCA 2025 (arXiv 2505.09343): a multi-plane two-layer fat-tree, and a
single queue pair striping packets over every port of a multi-port NIC.

Modelled here. A transfer is striped over every plane (packet spraying across the NIC's
ports, as the sources describe), so a device pair's bandwidth is the sum of its planes'.
The planes are not drawn as separate switches: ``P`` identical planes each carrying
``1/P`` of every transfer share bandwidth exactly as one plane with the summed capacity
(max-min fair rates scale linearly with all capacities, Bertsekas and Gallager, *Data
Networks*, 2nd ed., Sec. 6.5.2, so each plane's allocation is ``1/P`` of the pooled one),
so the graph is the plane fabric's, each of its links standing for the ``P`` plane links
in that position and carrying their sum, and each device pair keeps one route. The plane
fabric is built from the cluster's keys unchanged: ``inter.link`` is the NIC's whole
bandwidth (each plane port carries ``1/P`` of it), ``inter.switch_radix`` the ports of
one plane's switch (at ``1/P`` of the NIC's speed: the same switch silicon has ``P``
times the ports it has at the NIC's full speed, which is how a multi-plane fabric reaches
more NICs with fewer tiers).

Faults (``faults.planes``): plane ``p`` degraded by a factor, everywhere or on one link
``between`` two graph nodes (a NIC and its leaf or router, or two switches). A link then
carries ``(sum over planes of the plane's factor) / P`` of its capacity: a failed plane of
two halves every transfer that crosses it. This pooling assumes the NIC moves each
plane's share of a transfer to what the plane can carry (adaptive striping); it is exact
for one transfer, and for any number of transfers when every plane is degraded alike;
with several transfers and one plane degraded on one link it can be optimistic (a fixed
even split would wait for the slow plane). A whole plane degraded everywhere scales every
network link alike and keeps every symmetry of the plane fabric; a plane degraded on one
link declares none, so such clusters are costed device by device.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ...errors import ConfigError
from ...registry import INTER_TOPOLOGIES
from ..names import Node, node_name, parse_node_name
from .base import Generator, GeneratorContext, Link, declared

if TYPE_CHECKING:                      # types only: the topology calls the generators
    from ..topology import Topology

__all__ = ["GENERATOR", "PLANE_FABRICS", "plane_shares"]

#: Fabrics a plane may be: switched networks a NIC port plugs into (a torus or a ring of
#: nodes has no NIC-to-switch port to split; 'graph' gives its own links).
PLANE_FABRICS = ("fat_tree", "fat_tree3", "rail_only", "dragonfly")
#: Edge kinds that belong to a plane: NIC to switch, switch to switch. A device's link to
#: its NIC (kind 'nic') is the host side of the NIC, shared by its ports.
_PLANE_KINDS = ("net", "spine")


def _inner(ctx: GeneratorContext) -> Generator:
    return INTER_TOPOLOGIES[ctx.cluster.inter.plane_topology]


def _link_key(u: Node, v: Node) -> frozenset:
    return frozenset((u, v))


def plane_shares(ctx: GeneratorContext) -> tuple[float, dict[frozenset, float]]:
    """(share of capacity every plane link keeps, {link ends: share} for links degraded
    on their own): the mean over planes of each plane's product of fault factors."""
    planes = ctx.cluster.inter.planes
    whole = [1.0] * planes
    own: dict[frozenset, list[float]] = {}
    for fault in ctx.cluster.faults.planes:
        if fault.plane >= planes:
            continue                      # refused by check()
        if fault.between is None:
            whole[fault.plane] *= fault.bandwidth_factor
            continue
        ends = [parse_node_name(t) for t in fault.between]
        if None in ends:
            continue                      # refused by check()
        factors = own.setdefault(_link_key(*ends), [1.0] * planes)
        factors[fault.plane] *= fault.bandwidth_factor
    uniform = sum(whole) / planes
    return uniform, {k: sum(w * f for w, f in zip(whole, fs)) / planes
                     for k, fs in own.items()}


def _scaled(ctx: GeneratorContext, links: Iterable[Link]) -> Iterator[Link]:
    """``links`` with each plane link's capacity scaled by its planes' share."""
    if not ctx.cluster.faults.planes:
        yield from links
        return
    uniform, own = plane_shares(ctx)
    for link in links:
        if link.attrs["kind"] not in _PLANE_KINDS:
            yield link
            continue
        share = own.get(_link_key(link.u, link.v), uniform)
        if share == 1.0:
            yield link
        else:                             # attrs may be shared between links: copy
            yield Link(link.u, link.v, {**link.attrs, "bandwidth_bytes_per_s":
                                        link.attrs["bandwidth_bytes_per_s"] * share})


def links(ctx: GeneratorContext, n: int) -> Iterator[Link]:
    """Node ``n``'s links in the plane fabric, plane links scaled by their planes."""
    return _scaled(ctx, _inner(ctx).links(ctx, n))


def shared(ctx: GeneratorContext, switch: Node | None = None) -> Iterator[Link]:
    """The plane fabric's switch-to-switch links, scaled by their planes."""
    return _scaled(ctx, _inner(ctx).shared(ctx, switch))


def route(topo: Topology, s: int, t: int) -> list | None:
    """The plane fabric's route: every plane takes the same path through its own
    switches, so one path stands for all (the module docstring)."""
    return _inner(topo.context).route(topo, s, t)


def _find_link(ctx: GeneratorContext, u: Node, v: Node) -> Link | None:
    """The plane fabric's link between ``u`` and ``v``, if any (looked up among the
    links of the node or switch that owns it)."""
    inner = _inner(ctx)
    for end in (u, v):
        if end[0] == "nic" and 0 <= end[1] < ctx.nodes:
            found: Iterable[Link] = inner.links(ctx, end[1])
        elif end[0] in ("leaf", "agg", "rtr"):
            found = inner.shared(ctx, end)
        else:
            continue
        for link in found:
            if _link_key(link.u, link.v) == _link_key(u, v):
                return link
    return None


def check(ctx: GeneratorContext) -> None:
    """A switched plane fabric that can be built; plane faults that name a plane below
    ``inter.planes`` and a link of the planes, and leave every link some capacity."""
    inter, src = ctx.cluster.inter, ctx.source
    if inter.plane_topology not in PLANE_FABRICS:
        raise ConfigError(src, "inter.plane_topology", f"expected one of "
                          f"{', '.join(repr(f) for f in PLANE_FABRICS)} (a switched fabric "
                          f"each NIC port plugs into), got {inter.plane_topology!r}")
    _inner(ctx).check(ctx)
    for i, fault in enumerate(ctx.cluster.faults.planes):
        key = f"faults.planes[{i}]"
        if fault.plane >= inter.planes:
            raise ConfigError(src, f"{key}.plane", f"must be below inter.planes "
                              f"({inter.planes}; planes are numbered from 0), got {fault.plane}")
        if fault.between is None:
            continue
        ends = [parse_node_name(t) for t in fault.between]
        for text, end in zip(fault.between, ends):
            if end is None or end[0] not in ("nic", "leaf", "agg", "spine", "rtr"):
                raise ConfigError(src, f"{key}.between", f"expected a NIC or switch of "
                                  f"the planes (e.g. 'nic0.2', 'leaf2.0', 'agg0.1', 'spine', "
                                  f"'rtr3.1'), got {text!r}")
        link = _find_link(ctx, *ends)
        if link is None:
            raise ConfigError(src, f"{key}.between", f"no link of the planes between "
                              f"{node_name(ends[0])} and {node_name(ends[1])} in "
                              f"{inter.plane_topology!r}")
        if link.attrs["kind"] not in _PLANE_KINDS:
            raise ConfigError(src, f"{key}.between", f"{node_name(ends[0])} - "
                              f"{node_name(ends[1])} is not a plane link (kind "
                              f"{link.attrs['kind']!r})")
    if not ctx.cluster.faults.planes:
        return
    uniform, own = plane_shares(ctx)
    if uniform == 0.0:
        raise ConfigError(src, "faults.planes", f"every one of the {inter.planes} planes "
                          f"failed: no network is left (fail links with faults.links)")
    for i, fault in enumerate(ctx.cluster.faults.planes):
        ends = [parse_node_name(t) for t in fault.between or ()]
        if ends and own[_link_key(*ends)] == 0.0:
            raise ConfigError(src, f"faults.planes[{i}].between", f"every plane of the link "
                              f"{node_name(ends[0])} - {node_name(ends[1])} failed (a link "
                              f"of no capacity; fail it with faults.links to route around it)")


# ---- symmetry traits: the plane fabric's, unless a plane is degraded on one link -------


def _local_faults(ctx: GeneratorContext) -> bool:
    return any(f.between is not None for f in ctx.cluster.faults.planes)


def shift_period(ctx: GeneratorContext) -> int | None:
    """The plane fabric's; none when a plane is degraded on one link only."""
    return None if _local_faults(ctx) else declared(_inner(ctx).shift_period, ctx)


def node_traffic_intra(ctx: GeneratorContext) -> bool:
    """The plane fabric's (a property of its routes, which faults do not change)."""
    return bool(declared(_inner(ctx).node_traffic_intra, ctx))


def rail_disjoint(ctx: GeneratorContext) -> bool:
    """The plane fabric's; not with a plane degraded on one link (rails stop being
    alike)."""
    return not _local_faults(ctx) and bool(declared(_inner(ctx).rail_disjoint, ctx))


def block_nodes(ctx: GeneratorContext) -> int | None:
    """The plane fabric's blocks; none with a plane degraded on one link."""
    return None if _local_faults(ctx) else declared(_inner(ctx).block_nodes, ctx)


def contention_nodes(ctx: GeneratorContext, node: int) -> range:
    """The plane fabric's; every node with a plane degraded on one link (or when the
    plane fabric declares nothing)."""
    fn = _inner(ctx).contention_nodes
    if fn is None or _local_faults(ctx):
        return range(ctx.nodes)
    return fn(ctx, node)


def rail_matching(ctx: GeneratorContext) -> bool:
    """The plane fabric's routing (PXN where it rail-matches)."""
    return bool(declared(_inner(ctx).rail_matching, ctx))


GENERATOR = Generator(links, route, "each NIC split over independent identical planes of "
                      "another fabric (HPN dual-plane, Spectrum-X multiplane); transfers "
                      "striped over every plane", shared=shared, check=check,
                      shift_period=shift_period, node_traffic_intra=node_traffic_intra,
                      rail_disjoint=rail_disjoint, block_nodes=block_nodes,
                      contention_nodes=contention_nodes, rail_matching=rail_matching)
