"""The ``nvls`` algorithm: NVLink SHARP all-reduce inside one NVSwitch node (H100 and
later), the switch doing the reduction (NCCL ``NCCL_ALGO=NVLS``).

Each rank pushes its whole buffer into the switch once (multimem reduce) and pulls the
reduced buffer once (multimem broadcast), so every device's NVLink carries ``bytes_`` up
and ``bytes_`` down: half of a ring all-reduce's 2(p-1)/p each way. Modelled as one flow of
``bytes_`` per rank to the next rank of the node (through the switch, which loads the
sender's up-link and the receiver's down-link with ``bytes_`` each). The achievable fraction
of that (switch reduction throughput, protocol) is the intra link's ``nvls_efficiency``
(:func:`simwall.net.collectives.protocol.bandwidth_fraction`), fitted on published
nccl-tests figures (simwall/catalog/links.yaml).
"""

from __future__ import annotations

from collections.abc import Sequence

from .phases import Flow, Phase, TopologyLike, Window
from .ring import ring_phases
from .routes import by_node, kept, latency_s, nvls_applies

__all__ = ["nvls_phases"]


def nvls_phases(kind: str, group: Sequence[int], bytes_: float, topology: TopologyLike,
                window: Window = None, latency: bool = True) -> tuple[Phase, ...]:
    """NVLS all-reduce of ``group`` (all on one NVSwitch node whose link has an
    ``nvls_efficiency``); other kinds and groups fall back to the ring (NCCL uses NVLS
    for reduce-scatter and all-gather too, but its published busbw for them is the ring's:
    nccl-tests issue #212)."""
    if kind != "all_reduce" or not nvls_applies(group, topology):
        return ring_phases(kind, group, bytes_, topology, window, latency)
    devs = by_node(group, topology)[0]
    p = len(devs)
    flows: list[Flow] = [(devs[i], devs[(i + 1) % p], float(bytes_))
                         for i in range(p) if kept(topology, devs[i], window)]
    hop_s = latency_s(topology, devs[0], devs[1]) if latency else 0.0
    return (Phase(tuple(flows), 2, 2 * hop_s),)
