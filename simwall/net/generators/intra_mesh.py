"""Intra-node ``mesh``: a direct link between every device pair of a node."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..names import device_node
from .base import Generator, GeneratorContext, Link, link_attrs

if TYPE_CHECKING:                      # types only: the topology calls the generators
    from ..topology import Topology

__all__ = ["GENERATOR"]


def links(ctx: GeneratorContext, n: int) -> Iterator[Link]:
    """One link per device pair of node ``n``."""
    # Fully connected: one direct link per device pair (e.g. MI300X's 7 xGMI links).
    D = ctx.devices_per_node
    attrs = link_attrs(ctx.intra_link, "intra", ctx.intra_link.latency_s)
    for a in range(D):
        for b in range(a + 1, D):
            yield Link(device_node(n * D + a), device_node(n * D + b), attrs)


def route(topo: Topology, s: int, t: int) -> list:
    """The direct link."""
    return [device_node(s), device_node(t)]


GENERATOR = Generator(links, route, "a direct link between every device pair",
                      shift_symmetric=True)     # every pair has its own link
