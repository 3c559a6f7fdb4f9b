"""Topology generators: one module per generator, registered by the name a cluster file
uses (:data:`simwall.registry.INTRA_TOPOLOGIES`, :data:`simwall.registry.INTER_TOPOLOGIES`);
:mod:`.base` says what a generator is and which symmetry traits it may declare."""

from ...registry import INTER_TOPOLOGIES, INTRA_TOPOLOGIES
from .base import Generator, GeneratorContext, Link, LinksFn, RouteFn, link_attrs

__all__ = [
    "GENERATORS",
    "INTER_GENERATORS",
    "INTRA_GENERATORS",
    "Generator",
    "GeneratorContext",
    "Link",
    "LinksFn",
    "RouteFn",
    "link_attrs",
]

#: Intra-node generators by name (the registry; entries imported on first use).
INTRA_GENERATORS = INTRA_TOPOLOGIES
#: Inter-node generators by name (the registry; entries imported on first use).
INTER_GENERATORS = INTER_TOPOLOGIES
#: Both, by level: ``GENERATORS["intra"]["nvswitch"]``.
GENERATORS = {"intra": INTRA_GENERATORS, "inter": INTER_GENERATORS}
