"""Intra-node ``torus``: the devices of a node on a torus of shape ``intra.dims``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..names import device_node
from .base import Generator, GeneratorContext, Link, link_attrs, torus_dims
from .paths import torus_edges, torus_path

if TYPE_CHECKING:                      # types only: the topology calls the generators
    from ..topology import Topology

__all__ = ["GENERATOR", "intra_dims"]


def intra_dims(ctx: GeneratorContext) -> tuple[int, ...]:
    """``intra.dims``, checked against the devices per node (ConfigError)."""
    D = ctx.devices_per_node
    return torus_dims(ctx, "intra", D, f"devices_per_node = {D}", f"devices_per_node ({D})")


def links(ctx: GeneratorContext, n: int) -> Iterator[Link]:
    """The torus links among node ``n``'s devices."""
    D = ctx.devices_per_node
    attrs = link_attrs(ctx.intra_link, "intra", ctx.intra_link.latency_s)
    for a, b in torus_edges(intra_dims(ctx)):
        yield Link(device_node(n * D + a), device_node(n * D + b), attrs)


def route(topo: Topology, s: int, t: int) -> list:
    """Dimension-order route on the node's torus."""
    dims = tuple(topo.cluster.intra.dims)
    base = topo.node_of(s) * topo.devices_per_node
    return [device_node(base + j) for j in torus_path(s - base, t - base, dims)]


# Not shift_symmetric: a shift by part of a node moves pairs of ranks to other distances.
GENERATOR = Generator(links, route, "devices of a node on a torus of shape intra.dims",
                      check=intra_dims)
