"""Intra-node ``none``: no direct device links inside a node (devices talk through the
inter-node network)."""

from __future__ import annotations

from .base import Generator, no_links, no_route

__all__ = ["GENERATOR"]

# shift_symmetric: no fabric, nothing a shift inside a node could change (as before the
# traits were declared: every intra fabric but ring and torus counted as symmetric).
GENERATOR = Generator(no_links, no_route, "no direct device links inside a node",
                      shift_symmetric=True)
