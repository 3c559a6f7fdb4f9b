"""Intra-node ``nvswitch``: all devices of a node on one non-blocking NVSwitch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..names import device_node
from .base import Generator, GeneratorContext, Link, link_attrs

if TYPE_CHECKING:                      # types only: the topology calls the generators
    from ..topology import Topology

__all__ = ["GENERATOR"]


def links(ctx: GeneratorContext, n: int) -> Iterator[Link]:
    """Each device of node ``n`` to the node's switch."""
    # One switch node per node; each device attaches with its full per-direction NVLink
    # bandwidth, so any pair's bottleneck is the per-GPU NVLink bandwidth (NVSwitch is
    # non-blocking). The hop latency is split over the two edges.
    attrs = link_attrs(ctx.intra_link, "intra", ctx.intra_link.latency_s / 2)
    for j in range(ctx.devices_per_node):
        yield Link(device_node(n * ctx.devices_per_node + j), ("nvsw", n), attrs)


def route(topo: Topology, s: int, t: int) -> list:
    """Through the node's switch."""
    return [device_node(s), ("nvsw", topo.node_of(s)), device_node(t)]


GENERATOR = Generator(links, route, "all devices of a node on one non-blocking NVSwitch",
                      shift_symmetric=True)     # non-blocking: every pair alike
