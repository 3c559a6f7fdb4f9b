"""Inter-node ``torus``: every chip on one torus of shape ``inter.dims`` (TPU pods)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ...errors import ConfigError
from ..names import device_node
from .base import Generator, GeneratorContext, Link, link_attrs, torus_dims
from .paths import torus_edges, torus_path

if TYPE_CHECKING:                      # types only: the topology calls the generators
    from ..topology import Topology

__all__ = ["GENERATOR", "inter_dims"]


def inter_dims(ctx: GeneratorContext) -> tuple[int, ...]:
    """``inter.dims``, checked against the device count and ``intra.topology: none``
    (ConfigError)."""
    if ctx.cluster.intra.topology != "none":
        raise ConfigError(ctx.source, "intra.topology",
                          f"must be 'none' when inter.topology is 'torus' (the torus joins "
                          f"every chip), got {ctx.cluster.intra.topology!r}")
    n, D, N = ctx.nodes, ctx.devices_per_node, ctx.num_devices
    return torus_dims(ctx, "inter", N, f"the device count, {N}",
                      f"the device count nodes x devices_per_node = {n} x {D} = {N}")


def links(ctx: GeneratorContext, n: int) -> Iterator[Link]:
    """The torus links leaving node ``n``'s chips in the + direction."""
    # TPU pods: every chip on one torus (Jouppi et al. 2023), chip i at the row-major
    # coordinates of i; one ICI link per neighbour pair, owned by the chip it leaves in
    # the + direction.
    D = ctx.devices_per_node
    attrs = link_attrs(ctx.inter_link, "inter", ctx.inter_link.latency_s)
    for a, b in torus_edges(inter_dims(ctx), range(n * D, (n + 1) * D)):
        yield Link(device_node(a), device_node(b), attrs)


def route(topo: Topology, s: int, t: int) -> list:
    """Dimension-order route on the torus."""
    return [device_node(i) for i in torus_path(s, t, tuple(topo.cluster.inter.dims))]


def shift_period(ctx: GeneratorContext) -> int:
    """A translation of the torus: a whole number of slices along its slowest axis."""
    return math.prod(ctx.cluster.inter.dims[1:])


# node_traffic_intra False: the torus joins the chips of one node too.
# contention_nodes not declared: routes cross other nodes' links, so every node counts.
GENERATOR = Generator(links, route, "every chip on one torus of shape inter.dims",
                      check=inter_dims, shift_period=shift_period)
