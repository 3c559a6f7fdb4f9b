"""Compute slowed by communication running beside it on the same device (pure).

A collective that overlaps compute is not free: NCCL runs it as a kernel with one thread
block per channel, which holds SMs and memory bandwidth while the compute kernels run
(Lee et al. 2025, arXiv 2507.03114: 18.9 % slower compute on average when overlapped;
the device's ``efficiency.overlap_slowdown``, cited in :mod:`simwall.hardware.efficiency`).

The model: while communication runs beside it, compute advances at ``1 / (1 + s)`` of its
own rate (``s``, the slowdown). Of ``comm_s`` seconds of communication under ``compute_s``
seconds of compute started together, the compute finishes at ``compute_s + loss x
comm_s`` (``loss = s / (1 + s)``, the share of the device the communication takes) unless
the communication ends later; the pair takes :func:`beside_s`. Where the overlap applies:
ZeRO-3 / FSDP prefetched gathers and their reduce-scatters (:mod:`.zero`), ZeRO-2's
reductions per micro-batch (:mod:`.dp`), the DP gradient buckets under the backward
(:mod:`simwall.engine.sync`), the ZeRO-1 parameter all-gather under the next forward
(:mod:`.optimizer`) and the context-parallel ring under attention (:mod:`.cp`). Not applied:
tensor-parallel communication overlapped with GEMMs (Transformer Engine's userbuffers,
:mod:`.tp`), whose cost the fitted H100 efficiency already carries (docs/validation.md),
and pipeline sends.
"""

from __future__ import annotations

from ..config import DeviceSpec
from ..model.optime import device_efficiency

__all__ = ["beside_s", "overlap_loss"]


def overlap_loss(device: DeviceSpec) -> float:
    """Share of the device's compute rate a collective running beside it takes:
    ``s / (1 + s)`` of the device's ``overlap_slowdown`` ``s``."""
    s = device_efficiency(device).overlap_slowdown
    return s / (1.0 + s)


def beside_s(comm_s: float, compute_s: float, loss: float) -> float:
    """Seconds ``comm_s`` of communication adds to ``compute_s`` of compute when the two
    start together: what the communication takes beyond the compute, or the compute it
    slows (``loss`` x ``comm_s``), whichever is longer; 0 without communication."""
    if comm_s <= 0.0:
        return 0.0
    return max(loss * comm_s, comm_s - compute_s)
