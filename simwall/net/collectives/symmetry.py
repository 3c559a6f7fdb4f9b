"""The periodic symmetry window: on a network of identical blocks, translated groups load
every block alike, so only the flows leaving the first blocks need costing. And block
translations: groups moved by whole blocks cost the same, bit for bit, so the costing
memoises on the moved groups (:func:`block_translate`, :func:`block_translate_all`)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from .phases import TopologyLike, Window
from .routes import by_node, memo_on

__all__ = ["WINDOW_BLOCKS", "WINDOW_MIN_BLOCKS", "WINDOW_MIN_NODES", "block_shift",
           "block_translate", "block_translate_all", "symmetry_window"]

#: Blocks a group must span before :func:`symmetry_window` truncates it.
WINDOW_MIN_BLOCKS = 4
#: Blocks whose outgoing flows the window keeps (one is not enough for trees: the
#: flows entering the first leaf from outside it would be missing).
WINDOW_BLOCKS = 2
#: Group nodes the window must hold, so that every kind of tree position (leaf, inner
#: node of one tree or of the other) has flows in it.
WINDOW_MIN_NODES = 8


def symmetry_window(group: Sequence[int], topology: TopologyLike) -> Window:
    """The nodes of the first blocks ``group`` touches (two, or more until they hold
    :data:`WINDOW_MIN_NODES` of its nodes), when the topology is periodic (it has
    ``block_nodes() -> int | None``, the nodes per repeating block, which a topology
    generator must declare: :class:`simwall.net.generators.Generator`) and the group
    spans at least twice as many blocks; else None (cost every flow). Memoised per
    topology."""
    return memo_on(topology, "window", tuple(group), lambda: _symmetry_window(group, topology))


def _symmetry_window(group: Sequence[int], topology: TopologyLike) -> Window:
    block_fn = getattr(topology, "block_nodes", None)
    per_block = block_fn() if block_fn is not None else None
    if not per_block:
        return None
    node_of = topology.node_of
    nodes = [int(node_of(devs[0])) for devs in by_node(group, topology)]  # ascending
    blocks = sorted({n // per_block for n in nodes})
    keep = WINDOW_BLOCKS
    # Nodes ascending: those in the first ``keep`` blocks are the ones below the next.
    while keep < len(blocks) and bisect_left(nodes, blocks[keep] * per_block) \
            < WINDOW_MIN_NODES:
        keep += 1
    if len(blocks) < max(WINDOW_MIN_BLOCKS, 2 * keep):
        return None
    return frozenset(n for b in blocks[:keep] for n in range(b * per_block, (b + 1) * per_block))


def block_translate(group: Sequence[int], topology: TopologyLike) -> tuple[int, ...]:
    """``group`` moved down by whole repeating blocks of the network as far as it goes
    (every device index minus the same multiple of :func:`block_shift`), or ``group``
    itself where no such move is known to keep its costs.

    Moving every device by ``k * block_shift`` maps the network onto itself (both
    symmetry traits of :mod:`simwall.net.generators.base`: identical blocks,
    ``block_nodes``, and a translation, ``shift_period``), edge onto edge of the same
    capacity and latency, as long as the group stays in full blocks (a partial last
    block has smaller uplinks). Routes of the moved group are then the images of the
    group's, used alike in the same order, so every cost of it (phases, their latencies,
    drain times) is the same double."""
    return block_translate_all((tuple(group),), topology)[0]


def block_translate_all(groups: Sequence[Sequence[int]], topology: TopologyLike
                        ) -> tuple[tuple[int, ...], ...]:
    """``groups`` all moved down by the same whole number of :func:`block_shift` as far
    as they go (:func:`block_translate` of them together), or as they are: groups run
    at once are costed alike, bit for bit, when all are moved alike."""
    shift = block_shift(topology)
    gs = tuple(tuple(g) for g in groups)
    if not shift or not any(gs):
        return gs
    low = min(min(g) for g in gs if g)
    high = max(max(g) for g in gs if g)
    k = low // shift[0]
    if k == 0 or high >= shift[1]:
        return gs
    d = k * shift[0]
    return tuple(tuple(x - d for x in g) for g in gs)


def block_shift(topology: TopologyLike) -> tuple[int, int] | None:
    """``(devices per block shift, devices in full blocks)``: the smallest move of every
    device index by whole blocks (``block_nodes``) that is also a whole number of
    translation periods (``Topology.shift_invariant``), and the devices below the first
    partial block; None where the topology declares no such symmetry (faults, mixed
    device kinds, no blocks, no period). Memoised per topology."""
    return memo_on(topology, "block_shift", None, lambda: _block_shift(topology))


def _block_shift(topology: TopologyLike) -> tuple[int, int] | None:
    block_fn = getattr(topology, "block_nodes", None)
    invariant = getattr(topology, "shift_invariant", None)
    cluster = getattr(topology, "cluster", None)
    if block_fn is None or invariant is None or cluster is None or cluster.mixed \
            or cluster.faults.links:
        return None
    per_block = block_fn()
    if not per_block:
        return None
    per_node = topology.devices_per_node
    full = topology.nodes_count // per_block * per_block * per_node
    step = per_block * per_node
    shift = step
    while shift < full and not invariant(shift):
        shift += step
    if shift >= full:
        return None
    return (shift, full)
