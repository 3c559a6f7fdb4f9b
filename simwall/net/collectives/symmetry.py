"""The periodic symmetry window: on a network of identical blocks, translated groups load
every block alike, so only the flows leaving the first blocks need costing."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from .phases import TopologyLike, Window
from .routes import by_node, memo_on

__all__ = ["WINDOW_BLOCKS", "WINDOW_MIN_BLOCKS", "WINDOW_MIN_NODES", "symmetry_window"]

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
