"""The default strategy for ``plan.collective: auto``: per group, the candidate algorithm
with the least modelled time."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .cost import named_time_parts
from .phases import TopologyLike, Window, check_call
from .routes import by_node, memo_on

__all__ = ["candidates", "choose_algorithm"]


def candidates(kind: str, group: Sequence[int], topology: TopologyLike) -> list[str]:
    """The algorithms :func:`choose_algorithm` compares for ``group``, ring first.
    Memoised per topology."""
    if kind == "send_recv":
        return ["direct"]
    return memo_on(topology, "candidates", (kind, tuple(group)),
                   lambda: _candidates_of(kind, group, topology))


def _candidates_of(kind: str, group: Sequence[int], topology: TopologyLike) -> list[str]:
    per_node = by_node(group, topology)
    out = ["ring"]
    multi_node = len(per_node) > 1
    uniform = len({len(n) for n in per_node}) == 1
    if multi_node and uniform and len(per_node[0]) > 1 and kind != "broadcast":
        out.append("hierarchical")
    if multi_node and kind == "all_reduce":
        out.append("tree")          # NCCL uses trees for all-reduce only (tuning.cc)
    return out


def choose_algorithm(kind: str, group: Sequence[int], bytes_: float, topology: TopologyLike,
                     window: Window = None) -> str:
    """The algorithm with the least modelled time for this group alone, like NCCL, which
    predicts ``latency + bytes / bandwidth`` per algorithm and takes the minimum (NCCL
    src/graph/tuning.cc, ncclTopoGetAlgoTime).

    Candidates: ``send_recv`` -> direct. Otherwise ring; hierarchical when the group spans
    several nodes with the same number (> 1) of devices on each (not for broadcast); tree
    for all-reduce across several nodes. The crossover sizes follow from the topology:
    tree wins for small messages because its latency grows with log2(nodes) rather than
    with the ring's 2(p - 1) steps. Ties go to the earlier candidate (ring first).
    """
    check_call(kind, group, bytes_)
    cands = candidates(kind, group, topology)
    if len(cands) == 1 or len(group) < 2 or bytes_ == 0.0:
        return cands[0]
    groups = (tuple(group),)
    best, best_s = cands[0], math.inf
    for name in cands:
        latency_s, bandwidth_s = named_time_parts(topology, kind, groups, bytes_, (name,),
                                                  None, window)
        t = latency_s + bandwidth_s
        if t < best_s:
            best, best_s = name, t
    return best
