"""The default strategy for ``plan.collective: auto``: per group, the candidate algorithm
(and NCCL protocol) with the least modelled time."""

from __future__ import annotations

from collections.abc import Sequence

from . import protocol as proto
from .cost import named_time_parts
from .phases import TopologyLike, Window, check_call
from .routes import by_node, hop_extra_s, link_classes, memo_on, nvls_applies
from .symmetry import block_translate

__all__ = ["Choice", "candidates", "choose", "choose_algorithm", "model_algorithm",
           "protocol_options"]

#: ``(algorithm, protocol, latency_s, bandwidth_s)`` of one way to run a collective.
Choice = tuple[str, str, float, float]


def candidates(kind: str, group: Sequence[int], topology: TopologyLike) -> list[str]:
    """The algorithms :func:`choose_algorithm` compares for ``group``, ring first.
    Memoised per topology."""
    if kind in ("send_recv", "all_to_all"):
        return ["direct"]
    return memo_on(topology, "candidates", (kind, tuple(group)),
                   lambda: _candidates_of(kind, group, topology))


def _candidates_of(kind: str, group: Sequence[int], topology: TopologyLike) -> list[str]:
    per_node = by_node(group, topology)
    out = ["ring"]
    multi_node = len(per_node) > 1
    uniform = len({len(n) for n in per_node}) == 1
    # simwall's hierarchical algorithm is not NCCL's: where NCCL's model prices the
    # group (its links have an NCCL class), auto offers NCCL's menu only (tuning.cc:
    # all-gather, reduce-scatter and broadcast run as rings, all-reduce as ring or tree,
    # or NVLS inside a node); hierarchical stays a choice of plan.collective.
    nccl = model_algorithm(kind, "ring", group, topology) is not None
    if (not nccl and multi_node and uniform and len(per_node[0]) > 1
            and kind != "broadcast"):
        out.append("hierarchical")
    if multi_node and kind == "all_reduce":
        out.append("tree")          # NCCL uses trees for all-reduce only (tuning.cc)
    if kind == "all_reduce" and nvls_applies(group, topology):
        out.append("nvls")          # NVLink SHARP inside one NVSwitch node (tuning.cc)
    return out


def model_algorithm(kind: str, algorithm: str, group: Sequence[int],
                    topology: TopologyLike) -> str | None:
    """The algorithm whose NCCL latency model (:mod:`.protocol`) prices ``algorithm`` on
    ``group``: itself, ``ring`` where the algorithm falls back to rings (tree and nvls
    outside their kinds, hierarchical on uneven nodes), or None where the plain per-hop
    model stays: NCCL's constants do not apply to the links (no ``nccl_class``: TPU ICI,
    Infinity Fabric), or the call is point to point (direct, send_recv, all_to_all) or a
    tree broadcast."""
    intra, inter, _ = link_classes(topology)
    per_node = by_node(group, topology)
    if intra is None or (len(per_node) > 1 and inter != "net"):
        return None
    if kind in ("send_recv", "all_to_all") or algorithm == "direct":
        return None
    if algorithm == "tree":
        return "tree" if kind == "all_reduce" else None if kind == "broadcast" else "ring"
    if algorithm == "nvls":
        return "nvls" if kind == "all_reduce" and nvls_applies(group, topology) else "ring"
    if algorithm == "hierarchical":
        uniform = len({len(n) for n in per_node}) == 1
        return "hierarchical" if uniform and kind != "broadcast" else "ring"
    return "ring"


def protocol_options(topology: TopologyLike, kind: str, groups: Sequence[Sequence[int]],
                     algorithm: str, latency_s: float, bandwidth_s: float) -> list[Choice]:
    """The ways to run ``groups`` by ``algorithm``, one per NCCL protocol: latency from
    NCCL's model (the largest over the groups), bandwidth time ``bandwidth_s`` (the
    algorithm's Simple-protocol drain time) over the protocol's fraction. Where the model
    does not apply (:func:`model_algorithm` is None) one option: ``Simple`` with the
    phases' own ``latency_s``."""
    models = {model_algorithm(kind, algorithm, g, topology) for g in groups}
    if len(models) != 1 or None in models:
        return [(algorithm, "Simple", latency_s, bandwidth_s)]
    model = models.pop()
    intra, _, nvls_eff = link_classes(topology)
    extra = hop_extra_s(topology)
    shapes = {(len(g), len(by_node(g, topology))) for g in groups}
    nodes_max = max(n for _, n in shapes)
    out: list[Choice] = []
    for p in proto.protocols_for(model, intra):
        if model == "hierarchical":
            lat = max(proto.hierarchical_latency_s(p, kind, r // n, n, intra, extra)
                      for r, n in shapes)
        else:
            lat = max(proto.latency_s(model, p, kind, r, n, intra, extra_s=extra)
                      for r, n in shapes)
        frac = proto.bandwidth_fraction("ring" if model == "hierarchical" else model, p,
                                        nodes_max, nvls_eff or 1.0)
        out.append((algorithm, p, lat, bandwidth_s / frac))
    return out


def choose(kind: str, group: Sequence[int], bytes_: float, topology: TopologyLike,
           window: Window = None) -> Choice:
    """The fastest ``(algorithm, protocol, latency_s, bandwidth_s)`` for ``group`` alone,
    like NCCL, which predicts ``latency + bytes / bandwidth`` per algorithm and protocol
    and takes the minimum (NCCL src/graph/tuning.cc, ncclTopoGetAlgoTime).

    Candidates: ``send_recv`` and ``all_to_all`` -> direct. Otherwise ring; tree for
    all-reduce across several nodes; nvls for all-reduce inside one NVSwitch node that
    can reduce; hierarchical (not NCCL's) only where NCCL's model does not price the
    links (no ``nccl_class``: TPU ICI, Infinity Fabric), when the group spans several
    nodes with the same number (> 1) of devices on each (not for broadcast). The
    crossover sizes follow from the model. Ties go to the earlier candidate (ring first)
    and protocol (LL, LL128, Simple).
    """
    check_call(kind, group, bytes_)
    cands = candidates(kind, group, topology)
    if len(group) < 2 or bytes_ == 0.0:
        return (cands[0], "Simple", 0.0, 0.0)
    groups = (tuple(group),)
    options: list[Choice] = []
    for name in cands:
        latency_s, bandwidth_s = named_time_parts(topology, kind, groups, bytes_, (name,),
                                                  None, window)
        options.extend(protocol_options(topology, kind, groups, name, latency_s,
                                        bandwidth_s))
    return proto.fastest(options)


def choose_algorithm(kind: str, group: Sequence[int], bytes_: float, topology: TopologyLike,
                     window: Window = None) -> str:
    """The algorithm of :func:`choose` (the fastest algorithm and protocol). Memoised per
    topology on the group's :func:`block_translate` (a group and its translation by
    whole blocks are costed alike, bit for bit): a per-device costing asks for every
    pipeline pair and DP group of the run, most of them translations of a few.
    ``send_recv`` and ``all_to_all`` have one candidate, ``direct``: no costing."""
    if kind in ("send_recv", "all_to_all"):
        check_call(kind, group, bytes_)
        return "direct"
    key = (kind, block_translate(group, topology) if window is None else tuple(group),
           float(bytes_), window)
    return memo_on(topology, "chosen", key,
                   lambda: choose(kind, key[1], bytes_, topology, window)[0])
