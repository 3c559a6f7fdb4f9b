"""What a topology generator is, and what it reads.

A generator is a :class:`Generator`: a ``links`` function that gives the links one
cluster node owns, a ``route`` function that gives the structural path between two
devices, and the symmetry traits the costing may rely on. Each lives in its own module
of :mod:`simwall.net.generators` as ``GENERATOR`` and is registered by the name a cluster
file uses in :data:`simwall.registry.INTRA_TOPOLOGIES` or
:data:`simwall.registry.INTER_TOPOLOGIES`; adding one is a module plus a registry entry.

Symmetry is declared, never assumed: a generator that declares no trait gets the
conservative answer everywhere (no shift invariance, so runs are costed stage by stage;
no disjoint rails; every node may slow every other; no repeating blocks, so no symmetry
window).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from ...config import ClusterSpec, LinkSpec
from ...errors import ConfigError
from ..names import Node

if TYPE_CHECKING:                      # types only: the topology calls the generators
    from ..topology import Topology

__all__ = [
    "Generator",
    "GeneratorContext",
    "Link",
    "LinksFn",
    "RouteFn",
    "declared",
    "link_attrs",
    "no_check",
    "no_links",
    "no_route",
    "no_shared_links",
    "torus_dims",
]


@dataclass(frozen=True)
class GeneratorContext:
    """What generators read: sizes and resolved link classes. Units in names."""

    cluster: ClusterSpec
    source: str
    nodes: int
    devices_per_node: int
    intra_link: LinkSpec
    inter_link: LinkSpec
    host_link: LinkSpec

    @property
    def num_devices(self) -> int:
        return self.nodes * self.devices_per_node

    @property
    def rails(self) -> int:
        """NICs per node that some device uses (device ``i`` uses NIC ``i % nics``)."""
        return min(self.cluster.inter.nics_per_node, self.devices_per_node)


class Link(NamedTuple):
    """One full-duplex link between graph nodes ``u`` and ``v``: two directed edges with
    the same attributes (see :mod:`simwall.net.topology`; links of one kind may share the
    dict, which is read-only)."""

    u: Node
    v: Node
    attrs: dict


def torus_dims(ctx: GeneratorContext, level: str, count: int, whose: str, equal: str
               ) -> tuple[int, ...]:
    """``{level}.dims`` of a torus (``level``: intra or inter), checked: given, and its
    product is ``count`` (``whose`` and ``equal`` say what ``count`` is in the messages);
    a ConfigError names the key."""
    dims, key = getattr(ctx.cluster, level).dims, f"{level}.dims"
    if dims is None:
        raise ConfigError(ctx.source, key, f"required for {level}.topology 'torus' (a list "
                          f"whose product is {whose})")
    if math.prod(dims) != count:
        raise ConfigError(ctx.source, key, f"product must equal {equal}, got {list(dims)} "
                          f"(product {math.prod(dims)})")
    return tuple(dims)


def link_attrs(spec: LinkSpec, kind: str, latency_s: float,
               bandwidth_bytes_per_s: float | None = None) -> dict:
    """Edge attributes of a link of class ``spec`` (its bandwidth unless given)."""
    bw = spec.bandwidth_bytes_per_s if bandwidth_bytes_per_s is None else bandwidth_bytes_per_s
    return {"bandwidth_bytes_per_s": bw, "latency_s": latency_s, "link": spec.name,
            "kind": kind, "efficiency": spec.efficiency}


# links(ctx, n) -> the links node n owns (each has an end on node n: one of its devices,
# its NVSwitch, NICs or host memory), in the order they are added to the graph.
LinksFn = Callable[[GeneratorContext, int], Iterable[Link]]
# route(topology, src, dst) -> node path from ("dev", src) to ("dev", dst), or None when
# this generator cannot connect them (e.g. intra 'none').
RouteFn = Callable[["Topology", int, int], "list | None"]

T = TypeVar("T")
#: A trait: a constant, or a function of the build context giving it.
Trait = T | Callable[[GeneratorContext], T]


def declared(trait: Trait, ctx: GeneratorContext):
    """The value of a declared trait for ``ctx`` (a constant, or a function of it)."""
    return trait(ctx) if callable(trait) else trait


def no_links(ctx: GeneratorContext, n: int) -> tuple:
    """A node owns no links at this level."""
    return ()


def no_shared_links(ctx: GeneratorContext, switch: Node | None = None) -> tuple:
    """No links are owned by no node (no switch-to-switch links)."""
    return ()


def no_check(ctx: GeneratorContext) -> None:
    """Every cluster can be built."""
    return


def no_route(topo: Topology, s: int, t: int) -> None:
    """No structural path (the generic fallback routes)."""
    return


@dataclass(frozen=True)
class Generator:
    """A topology generator: ``links`` gives each node's links, ``route`` the paths;
    ``shared(ctx, switch=None)`` the links no node owns (switch to switch), added after
    every node's (only those of ``switch`` when given); ``check`` rejects a cluster it
    cannot build (a ConfigError) before anything is.

    Symmetry traits (each a constant or a function of the :class:`GeneratorContext`; the
    defaults assume nothing, so a generator that declares none is costed stage by stage
    and without a symmetry window). Read by :class:`simwall.net.topology.Topology`:

    - ``shift_symmetric`` (intra-node): moving every device index inside a node by any
      amount maps the fabric's costs onto themselves (a non-blocking switch, a full mesh,
      no fabric at all).
    - ``shift_period`` (inter-node): devices per translation period: moving every device
      index by a multiple of it maps the network's costs onto themselves; None: no
      translation is assumed (``Topology.shift_invariant`` is then False).
    - ``node_traffic_intra`` (inter-node): traffic between two devices of one node stays
      on the intra fabric (not so for a torus that joins every chip), so a shift by part
      of a node within a single node is decided by the intra fabric's ``shift_symmetric``.
    - ``rail_disjoint`` (inter-node): traffic between devices of one rail (NIC index) on
      different nodes stays on that rail's own links.
    - ``block_nodes`` (inter-node, "periodic"): nodes per repeating block (a leaf of a
      fat-tree), or None: the network is made of identical blocks, and a route's latency
      depends only on the two local indices and on whether the ends share a node or a
      block. Enables the symmetry window (:func:`simwall.net.collectives.symmetry_window`).
    - ``contention_nodes`` (inter-node): ``(ctx, node) -> range`` of the nodes whose
      traffic can slow ``node``'s beyond its own links; None: every node.
    - ``rail_matching`` (inter-node): cross-node routes first move inside the source node
      to the device on the destination's rail (NCCL PXN); what an exported graph file
      says of its routing (:mod:`simwall.net.export`).
    """

    links: LinksFn
    route: RouteFn
    doc: str = ""
    shared: Callable[[GeneratorContext, Node | None], Iterable[Link]] = no_shared_links
    check: Callable[[GeneratorContext], None] = no_check
    shift_symmetric: Trait[bool] = False
    shift_period: Trait[int | None] = None
    node_traffic_intra: Trait[bool] = False
    rail_disjoint: Trait[bool] = False
    block_nodes: Trait[int | None] = None
    contention_nodes: Callable[[GeneratorContext, int], range] | None = None
    rail_matching: Trait[bool] = False
