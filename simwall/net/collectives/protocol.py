"""NCCL's protocol and latency model (pure): time = latency(algorithm, protocol, ranks,
nodes) + bytes / bandwidth(protocol), and the fastest protocol per message size.

After NCCL's own tuning model, NVIDIA/nccl ``src/graph/tuning.cc`` (``ncclTopoTuneModel``
and ``ncclTopoGetAlgoTime``; the constants below are read from the 2.2x/2.3x sources,
``ncclTunerConstantsDefaults``); simwall's code is its own. Three protocols:

- ``LL`` (low latency): 8-byte stores of 4 data bytes + 4 flag bytes, so half the
  bandwidth; the least per-hop latency.
- ``LL128``: 128-byte lines carrying 120 data bytes (120/128 of the bandwidth); enabled by
  NCCL only where the intra-node path is NVLink.
- ``Simple``: full bandwidth, the largest per-hop latency (flush and fences).

The bandwidth of an algorithm is simwall's own (max-min drain time of its flows on the
topology, :mod:`.cost`); a protocol divides it by :func:`bandwidth_fraction`. The latency
is NCCL's formula over its per-algorithm base latency and per-hop hardware latencies
(:func:`latency_s`). Not modelled: NCCL's per-channel bandwidth caps (``llMaxBws``,
``perChMax*Bws``), its tree correction factors by size and its thread/channel counts.
"""

from __future__ import annotations

import math

__all__ = ["HW_CLASSES", "PROTOCOLS", "REFERENCE_HOP_S", "bandwidth_fraction",
           "base_latency_s", "hierarchical_latency_s", "hop_latency_s", "latency_s",
           "protocols_for"]

#: NCCL's protocols, cheapest latency first (tuning.cc NCCL_PROTO_LL, LL128, SIMPLE).
PROTOCOLS = ("LL", "LL128", "Simple")

#: NCCL's hardware classes of a hop (tuning.cc NCCL_HW_NVLINK, NCCL_HW_PCI, NCCL_HW_NET);
#: a catalog link names its class in ``nccl_class``.
HW_CLASSES = ("nvlink", "pci", "net")

# Base latency per algorithm and protocol (LL, LL128, Simple), microseconds: NCCL
# tuning.cc ncclTunerConstantsDefaults.baseLatencies (Tree, Ring, NVLS rows).
_BASE_US = {
    "tree": (6.8, 14.0, 8.4),
    "ring": (6.6, 14.0, 8.4),
    "nvls": (0.0, 0.0, 0.0),
}

# Per-hop hardware latency per class, algorithm and protocol (LL, LL128, Simple),
# microseconds: NCCL tuning.cc ncclTunerConstantsDefaults.hwLatencies (NVLINK, PCI, NET
# blocks; Tree, Ring, NVLS rows).
_HW_US = {
    "nvlink": {"tree": (0.6, 1.25, 4.0), "ring": (0.6, 1.9, 3.4), "nvls": (0.0, 0.0, 25.0)},
    "pci": {"tree": (1.0, 1.9, 4.0), "ring": (1.0, 2.5, 5.7), "nvls": (0.0, 0.0, 0.0)},
    "net": {"tree": (5.0, 8.5, 14.0), "ring": (2.7, 4.0, 14.0), "nvls": (0.0, 0.0, 18.0)},
}

#: The hop latency, seconds, every catalog link of a class states (simwall/catalog/
#: links.yaml: NCCL's LL ring hop of its class), which NCCL's constants above already
#: price. A link whose ``latency`` differs (a what-if, ``--scale latency``, or a user's
#: link) adds the difference to each hop of its class (:func:`latency_s` ``extra_s``):
#: the wire and switch part changes, NCCL's protocol overheads stay.
REFERENCE_HOP_S = {"nvlink": 0.47e-6, "pci": 1.0e-6, "net": 2.7e-6}

#: Network post overhead per inter-node step, microseconds; Simple pays it three times
#: (tuning.cc getNetOverhead: 1 us on x86 Intel and other CPUs, 2 us on AMD; we take the
#: default 1 us).
NET_OVERHEAD_US = 1.0

#: Multi-node ring Simple all-reduce latency multiplier on compute capability >= 8.0
#: ("plateau effect of ring", tuning.cc ncclTopoGetAlgoTime; 1.9 before Ampere).
RING_SIMPLE_PLATEAU = 1.4

#: LL sends 4 data bytes per 8-byte store (tuning.cc: ring LL busBw * 0.5).
LL_FRACTION = 0.5
#: LL128 lines carry 120 of 128 bytes (tuning.cc: ring LL128 busBw * 0.92 "120.0/128.0",
#: tree LL128 * 120/128 across nodes, 7/9 on one node).
LL128_FRACTION = 0.92
#: Tree all-reduce reaches 0.92 of its bus bandwidth, and tree LL 1/3.8 of that
#: (tuning.cc: "busBw * .92", "busBw * 1.0 / 3.8").
TREE_FRACTION = 0.92
TREE_LL_FRACTION = 1.0 / 3.8

_P = {p: i for i, p in enumerate(PROTOCOLS)}


def protocols_for(algorithm: str, intra_class: str | None) -> tuple[str, ...]:
    """Protocols NCCL considers for ``algorithm``: NVLS runs Simple only; LL128 needs an
    NVLink intra-node path (tuning.cc: LL128 enabled only up to PATH_NVB); other
    algorithms (``direct``) are costed as Simple."""
    if algorithm in ("ring", "tree", "hierarchical"):
        return PROTOCOLS if intra_class == "nvlink" else ("LL", "Simple")
    return ("Simple",)


def bandwidth_fraction(algorithm: str, protocol: str, nodes: int,
                       nvls_efficiency: float = 1.0) -> float:
    """Fraction of the algorithm's Simple-protocol bandwidth that ``protocol`` reaches
    (NCCL tuning.cc ncclTopoTuneModel "model refinements"). ``nvls_efficiency``: the
    NVLink SHARP fraction of the intra link (``LinkSpec.nvls_efficiency``)."""
    if algorithm == "nvls":
        return nvls_efficiency
    if algorithm == "tree":
        if protocol == "LL":
            return TREE_FRACTION * TREE_LL_FRACTION
        if protocol == "LL128":
            return TREE_FRACTION * (7.0 / 9.0 if nodes == 1 else 120.0 / 128.0)
        return TREE_FRACTION
    if protocol == "LL":
        return LL_FRACTION
    if protocol == "LL128":
        return LL128_FRACTION
    return 1.0


def base_latency_s(algorithm: str, protocol: str) -> float:
    """NCCL's fixed latency of one collective call by ``algorithm`` and ``protocol``."""
    return _BASE_US[algorithm][_P[protocol]] * 1e-6


def hop_latency_s(hw_class: str, algorithm: str, protocol: str) -> float:
    """NCCL's per-hop latency on a ``hw_class`` hop (nvlink, pci, net)."""
    return _HW_US[hw_class][algorithm][_P[protocol]] * 1e-6


def _log2i(n: int) -> int:
    """floor(log2 n) for n >= 1 (NCCL log2i)."""
    return max(int(n).bit_length() - 1, 0)


def latency_s(algorithm: str, protocol: str, kind: str, ranks: int, nodes: int,
              intra_class: str, multi_op: bool = True,
              extra_s: tuple[float, float] = (0.0, 0.0)) -> float:
    """NCCL's latency of one ``kind`` collective by ``algorithm`` (ring, tree, nvls) and
    ``protocol`` on ``ranks`` ranks over ``nodes`` nodes, seconds (tuning.cc
    ncclTopoTuneModel; ``intra_class``: the class of the intra-node hops; ``extra_s``:
    what each intra- and inter-node hop takes beyond NCCL's constant, the links' latency
    over :data:`REFERENCE_HOP_S`).

    Ring: base + (steps - inter steps) x intra hop + inter steps x inter hop, with
    2(p-1) steps for all-reduce, p-1 for reduce-scatter/all-gather, p for a broadcast;
    across nodes an intra hop costs at least the network post overhead (x3 for Simple),
    an inter hop the NET latency (NET tree latency when one rank per node), and a Simple
    all-reduce x1.4 (the ring plateau). Tree (all-reduce): base + 2((p/n - 1) intra +
    log2(n) inter). NVLS: the NVLS hop latency, plus the NET one across nodes.
    """
    if ranks < 2:
        return 0.0
    intra = max(0.0, hop_latency_s(intra_class, algorithm, protocol) + extra_s[0])
    ppn = ranks / nodes
    inter_algo = "tree" if ppn == 1 and algorithm == "ring" else algorithm
    inter = max(0.0, hop_latency_s("net", inter_algo, protocol) + extra_s[1])
    if algorithm == "nvls":
        return intra + (inter if nodes > 1 else 0.0)
    base = base_latency_s(algorithm, protocol)
    if algorithm == "tree":
        return base + 2 * ((ranks // nodes - 1) * intra + _log2i(nodes) * inter)
    # ring
    steps = (2 * (ranks - 1) if kind == "all_reduce" else
             ranks - 1 if kind in ("reduce_scatter", "all_gather") else ranks)
    if kind == "broadcast":
        hop = (max(0.0, hop_latency_s("net", "ring", protocol) + extra_s[1]) if nodes > 1
               else intra)
        return base + steps * hop
    inter_steps = 0
    if nodes > 1:
        overhead = NET_OVERHEAD_US * 1e-6 * (3 if protocol == "Simple" else 1)
        intra = max(intra, overhead)
        inter_steps = 2 * (nodes - 1) if kind == "all_reduce" else nodes - 1
    lat = base + (steps - inter_steps) * intra + inter_steps * inter
    if multi_op and nodes > 1 and kind == "all_reduce" and protocol == "Simple":
        lat *= RING_SIMPLE_PLATEAU
    return lat


def hierarchical_latency_s(protocol: str, kind: str, per_node: int, nodes: int,
                           intra_class: str,
                           extra_s: tuple[float, float] = (0.0, 0.0)) -> float:
    """Latency of simwall's ``hierarchical`` algorithm (not NCCL's): its ring phases
    (intra-node reduce-scatter, inter-node ring on rail peers, intra-node all-gather;
    :mod:`.hierarchical`), each costed as an NCCL ring of its own size (``extra_s`` as
    in :func:`latency_s`)."""
    intra_rs = latency_s("ring", protocol, "reduce_scatter", per_node, 1, intra_class,
                         extra_s=extra_s)
    intra_ag = latency_s("ring", protocol, "all_gather", per_node, 1, intra_class,
                         extra_s=extra_s)
    inter = latency_s("ring", protocol, kind, nodes, nodes, intra_class, extra_s=extra_s)
    if kind == "all_reduce":
        return intra_rs + inter + intra_ag
    if kind == "reduce_scatter":
        return intra_rs + inter
    return inter + intra_ag


def fastest(options: list[tuple[str, str, float, float]]) -> tuple[str, str, float, float]:
    """The ``(algorithm, protocol, latency_s, bandwidth_s)`` of least total time; ties go
    to the earlier option (ring first, LL before LL128 before Simple)."""
    best = options[0]
    best_s = math.inf
    for opt in options:
        t = opt[2] + opt[3]
        if t < best_s:
            best, best_s = opt, t
    return best
