"""Inter-node ``none``: a single node, no network between nodes."""

from __future__ import annotations

from ...errors import ConfigError
from .base import Generator, GeneratorContext, no_links, no_route

__all__ = ["GENERATOR"]


def check(ctx: GeneratorContext) -> None:
    """One node only (ConfigError otherwise)."""
    if ctx.nodes > 1:
        raise ConfigError(ctx.source, "inter.topology",
                          f"'none' joins no nodes; it needs nodes: 1, got {ctx.nodes}")


def shift_period(ctx: GeneratorContext) -> int:
    """Whole nodes (inside the single node the intra fabric decides)."""
    return ctx.devices_per_node


def own_node(ctx: GeneratorContext, node: int) -> range:
    """No network: nothing but the node itself."""
    return range(node, node + 1)


GENERATOR = Generator(no_links, no_route, "a single node", check=check,
                      shift_period=shift_period, node_traffic_intra=True,
                      contention_nodes=own_node)
