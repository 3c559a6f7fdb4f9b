"""Achievable fraction of a device's peaks: the efficiency model of one device (pure).

A kernel reaches only part of the tensor-core peak and of the memory bandwidth:

- GEMMs (``matmul`` and the batched GEMMs of ``attention``) reach
  ``gemm_max x F / (F + gemm_half_flop) x tile_eff x wave_eff`` of the tensor-core peak,
  with ``F`` the FLOP of the (batched) GEMM. The saturating factor stands for the fixed
  prologue/epilogue of a kernel; tile and wave quantisation follow NVIDIA's "Matrix
  Multiplication Background User's Guide" (DU-09799-001, 2023, Sec. 3.1 and 3.2): the
  output is cut into ``gemm_tile x gemm_tile`` tiles, partial tiles compute padding, and the
  tiles run in waves of ``sm_count`` (one tile per SM at a time), the last wave partly idle.
- Streaming (elementwise, reduction, optimizer) kernels reach ``memory_bw`` of the peak
  bandwidth.

Efficiency parameters come from the device's catalog ``efficiency`` block; any field the
catalog leaves out falls back to the per-kind defaults in :data:`FALLBACK` (cited below).
:mod:`simwall.model.optime` turns these into the time of an op.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import DeviceSpec, EfficiencySpec, Workload
from ..errors import ConfigError, SimwallError

__all__ = [
    "FALLBACK",
    "DeviceRoofs",
    "check_precision",
    "device_roofs",
    "efficiency_of",
    "gemm_efficiency",
    "gemm_efficiency_with",
    "has_units",
]

# ---------------------------------------------------------------------------------------
# Fallback efficiency per device kind (used field by field where the catalog has none).
#
# GPU (values for the A100 SXM4, the reference device of the calibration data):
# - gemm_max 0.80: large cuBLAS/CUTLASS fp16 GEMMs on A100 reach about 240-250 of 312
#   TFLOP/s (NVIDIA GTC 2020 talk S21745 "Developing CUDA kernels to push Tensor Cores to the
#   absolute limit on NVIDIA A100", as quoted in github.com/NVIDIA/cutlass/issues/105;
#   "about 80 % of the theoretical value" with cuBLAS/CUTLASS, github.com/NVIDIA/DCGM/issues/40).
# - gemm_half_flop 0: small GEMMs lose only through tile and wave quantisation, which the
#   NVIDIA guide names as the main small-GEMM effect (Sec. 3). The Megatron Table 1 fit
#   (docs/validation.md) does not support a non-zero value: it would help only at >= 1e10
#   FLOP per GEMM (~40 us of fixed cost per kernel), which no GEMM library shows.
# The A100 catalog entries override gemm_max and memory_bw with values FITTED on Megatron
# Table 1 rows 1, 4, 7, 10 (simwall/catalog/devices.yaml, docs/validation.md); the values
# here stay the cited isolated-kernel figures for devices without a fitted block.
# - memory_bw 0.88: a read kernel on A100-SXM4-80GB sustains 1.80 of 2.04 TB/s, 88 % (also
#   reported by Nsight Compute); NVIDIA forum thread "Trouble to Reach Peak Bandwidth of
#   A100" (forums.developer.nvidia.com/t/339083), which cites ~90 % as the best seen.
# - launch_s 3e-6: raw cuLaunchKernel costs ~3.0 us (github.com/meta-pytorch/tritonbench
#   pull 1017, table "per-kernel overhead breakdown").
# - sm_count: no fallback (0). Each GPU entry of the catalog states its own SM count
#   (catalog loading refuses a GPU without one): wave quantisation with the A100's 108 SMs
#   on an H100 (132) or B200 (148) would be silently wrong.
# - gemm_tile 128: 128x128 is the typical cuBLAS tile on A100 (Matrix Multiplication
#   Background User's Guide, Sec. 2.3 and its wave-quantisation example in Sec. 3.2).
# TPU: no published per-kernel efficiency was found; the GPU values without tile/wave
#   quantisation (MXU tiling differs) stand in until the catalog gives a TPU block.
# CPU (Xeon-class): memory_bw 0.80 and gemm_max 0.75 are assumptions: AVX-512 code runs
#   below the nominal clock (Intel Xeon Scalable Specification Update, doc. 336065, AVX-512
#   frequency tables; discussed in community.intel.com "Calculate the Max Flops on
#   Skylake"), and STREAM-type kernels do not reach DRAM peak. Replace with measurements.
# flash_attention (fraction of the tensor-core peak a fused attention kernel reaches,
# forward + backward, FLOP counted as FlashAttention counts them: 4 s^2 d per head forward,
# halved when causal, backward 2.5x forward):
# - GPU 0.60: FlashAttention-2 (Dao 2023, "FlashAttention-2: Faster Attention with Better
#   Parallelism and Work Partitioning", abstract and Sec. 4.1) reaches 50-73 % of the A100
#   peak (forward + backward up to ~230 TFLOP/s of 312, head dim 128); FlashAttention-3
#   (Shah et al. 2024, abstract) reaches up to 740 TFLOP/s (75 %) forward on H100 in FP16,
#   its backward less. 0.60 is the middle of that range for long causal sequences, an
#   isolated-kernel figure NOT fitted on any run; a device's catalog block may override it.
# - TPU 0.60: no published fused-attention figure; the GPU value stands in.
# - CPU 0 (unset): the fused kernel runs at the GEMM efficiency ``gemm_max``.
# overlap_slowdown (compute time lost to a collective running beside it, as a fraction of
# the compute's own time; simwall.costing.contention):
# - GPU 0.189: Lee et al. 2025, "Characterizing Compute-Communication Overlap in
#   GPU-Accelerated Distributed Deep Learning: Performance and Power Implications" (arXiv
#   2507.03114), abstract: overlapping computation with communication slows the
#   computation by 18.9 % on average (40.0 % at most) against the same computation alone,
#   over GPT and Llama training layers on 4 x A100, 4 x H100, MI250 and MI210. The
#   mechanism: NCCL runs each collective as a kernel of one thread block per channel, which
#   holds SMs and memory bandwidth the GEMMs would use (one H100 all-gather with 24 blocks
#   of 132 SMs: NVIDIA developer forum thread 337991, "Compute-Communication Overlap
#   Causes Severe GEMM Performance Degradation because of Tail Effect"). A measured
#   average, NOT fitted on any simwall case; a device's catalog block may override it.
# - TPU: no published figure; the GPU value stands in.
# - CPU 0: no collective kernels on the compute units are modelled.
FALLBACK: dict[str, EfficiencySpec] = {
    "gpu": EfficiencySpec(gemm_max=0.80, gemm_half_flop=0.0, memory_bw=0.88, launch_s=3e-6,
                          sm_count=0, gemm_tile=128, flash_attention=0.60,
                          overlap_slowdown=0.189),
    "tpu": EfficiencySpec(gemm_max=0.80, gemm_half_flop=0.0, memory_bw=0.88, launch_s=3e-6,
                          flash_attention=0.60, overlap_slowdown=0.189),
    "cpu": EfficiencySpec(gemm_max=0.75, gemm_half_flop=0.0, memory_bw=0.80, launch_s=0.0,
                          flash_attention=0.0),
}


@dataclass(frozen=True)
class DeviceRoofs:
    """The numbers an op's time needs on one device in one precision: tensor-core peak
    and vector (fp32) peak in FLOP/s, memory bandwidth in bytes/s, and the efficiency."""

    peak_flop_per_s: float
    vector_flop_per_s: float
    bandwidth_bytes_per_s: float
    eff: EfficiencySpec


def efficiency_of(device: DeviceSpec) -> EfficiencySpec:
    """The device's efficiency: catalog fields where given, :data:`FALLBACK` elsewhere."""
    base = FALLBACK[device.kind]
    if "efficiency" not in device.model_fields_set:
        return base
    given = device.efficiency
    update = {f: getattr(given, f) for f in given.model_fields_set}
    return base.model_copy(update=update) if update else base


def device_roofs(device: DeviceSpec, precision: str) -> DeviceRoofs:
    """:class:`DeviceRoofs` of ``device`` computing in ``precision``. FP8 GEMMs reach
    ``gemm_max_fp8`` of the FP8 peak where the catalog gives one (isolated FP8 GEMMs reach
    a smaller fraction of their peak than BF16 ones on Hopper: MAMF table, see
    catalog/devices.yaml)."""
    eff = efficiency_of(device)
    if precision == "fp8" and eff.gemm_max_fp8 > 0:
        eff = eff.model_copy(update={"gemm_max": eff.gemm_max_fp8})
    return DeviceRoofs(device.peak(precision), device.peak("fp32"),
                       device.memory_bandwidth_bytes_per_s, eff)


def has_units(device: DeviceSpec, precision: str) -> bool:
    """True when ``device`` has tensor units for ``precision``: the catalog lists a peak
    for it (FP8 needs its own entry: A100 has no FP8 tensor cores, NVIDIA A100 whitepaper;
    fp16 / bf16 and tf32 / fp32 may stand in for each other as :meth:`DeviceSpec.peak`)."""
    if precision == "fp8":
        return "fp8" in device.peak_flop_per_s
    return True


def check_precision(workload: Workload, device: DeviceSpec) -> None:
    """Refuse a workload whose ``training.precision`` ``device`` has no units for (FP8 on
    an A100 would silently run at the BF16 rate): a :class:`ConfigError` located at the
    workload's ``training.precision``."""
    precision = workload.training.precision
    if not has_units(device, precision):
        have = ", ".join(sorted(device.peak_flop_per_s))
        raise ConfigError(workload.file, "training.precision",
                          f"{device.name} has no {precision} units (its catalog peaks: "
                          f"{have}); use bf16 or a device with {precision} tensor cores",
                          workload.line("training.precision"))


#: Smallest tile edge a GEMM library falls back to for a thin dimension: the 16-row
#: tensor-core MMA shape (m16n8k16, PTX ISA "Matrix shape" for .bf16/.f16 mma).
_MIN_TILE = 16


def _edge(dim: int, tile: int) -> int:
    """Tile edge used along ``dim``: ``tile``, or the next power of two >= ``dim`` (at least
    :data:`_MIN_TILE`) when ``dim`` is thinner; libraries pick among several tile shapes
    (Matrix Multiplication Background User's Guide, Sec. 2.3)."""
    if dim >= tile:
        return tile
    return min(tile, max(_MIN_TILE, 1 << max(0, dim - 1).bit_length()))


def gemm_efficiency_with(m: int, n: int, k: int, count: int, eff: EfficiencySpec) -> float:
    """Achievable fraction of peak for ``count`` GEMMs ``(m, k) x (k, n)`` launched
    together under the efficiency ``eff`` (0 for an empty GEMM); sizes unchecked."""
    flop = 2.0 * m * n * k * count
    if flop <= 0:
        return 0.0
    size = flop / (flop + eff.gemm_half_flop)
    quant = 1.0
    if eff.gemm_tile:
        em, en = _edge(m, eff.gemm_tile), _edge(n, eff.gemm_tile)
        tm, tn = math.ceil(m / em), math.ceil(n / en)
        quant *= (m * n) / (tm * em * tn * en)                       # tile quantisation
        if eff.sm_count:
            units = count * tm * tn
            if units < eff.sm_count:
                # Too few tiles for one wave: split K over the idle SMs (split-K), as long
                # as each slice keeps a few k-tiles (CUTLASS "split-K" GEMMs).
                units *= max(1, min(eff.sm_count // units, k // (4 * eff.gemm_tile)))
            waves = math.ceil(units / eff.sm_count)
            quant *= units / (waves * eff.sm_count)                  # wave quantisation
    return eff.gemm_max * size * quant


def gemm_efficiency(m: int, n: int, k: int, device: DeviceSpec, precision: str = "bf16",
                    count: int = 1) -> float:
    """Achievable fraction of ``device.peak(precision)`` for ``count`` GEMMs of
    ``(m, k) x (k, n)`` launched together (in (0, 1]; 0 for an empty GEMM)."""
    if min(m, n, k, count) < 0:
        raise SimwallError(f"cost: GEMM sizes must be non-negative, got {(m, n, k, count)}")
    return gemm_efficiency_with(m, n, k, count, efficiency_of(device))
