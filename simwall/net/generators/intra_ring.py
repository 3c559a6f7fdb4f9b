"""Intra-node ``ring``: the devices of a node in a bidirectional ring."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..names import device_node
from .base import Generator, GeneratorContext, Link, link_attrs
from .paths import ring_path

if TYPE_CHECKING:                      # types only: the topology calls the generators
    from ..topology import Topology

__all__ = ["GENERATOR"]


def links(ctx: GeneratorContext, n: int) -> Iterator[Link]:
    """Each device of node ``n`` to the next (a single link for two devices)."""
    D = ctx.devices_per_node
    attrs = link_attrs(ctx.intra_link, "intra", ctx.intra_link.latency_s)
    for a in range(D if D > 2 else D - 1):
        yield Link(device_node(n * D + a), device_node(n * D + (a + 1) % D), attrs)


def route(topo: Topology, s: int, t: int) -> list:
    """The shorter way round the node's ring."""
    D, base = topo.devices_per_node, topo.node_of(s) * topo.devices_per_node
    return [device_node(base + j) for j in ring_path(s - base, t - base, D)]


# Not shift_symmetric: a shift by part of a node moves pairs of ranks to other distances.
GENERATOR = Generator(links, route, "devices of a node in a bidirectional ring")
