"""Time of one op on one device: a roofline with achievable-efficiency factors (pure).

    time = max(flop / (peak x eff), bytes / (bandwidth x memory_bw)) + launch_s

(Williams, Waterman & Patterson 2009, "Roofline: an insightful visual performance model",
CACM 52(4), for the two roofs.) ``eff`` is the fraction of peak a kernel reaches:

- GEMMs (``matmul`` and the batched GEMMs of ``attention``) reach
  ``gemm_max x F / (F + gemm_half_flop) x tile_eff x wave_eff`` of the tensor-core peak,
  with ``F`` the FLOP of the (batched) GEMM. The saturating factor stands for the fixed
  prologue/epilogue of a kernel; tile and wave quantisation follow NVIDIA's "Matrix
  Multiplication Background User's Guide" (DU-09799-001, 2023, Sec. 3.1 and 3.2): the
  output is cut into ``gemm_tile x gemm_tile`` tiles, partial tiles compute padding, and the
  tiles run in waves of ``sm_count`` (one tile per SM at a time), the last wave partly idle.
- Elementwise and reduction ops run on the vector units (fp32 peak) and are memory bound in
  practice; they reach ``memory_bw`` of the peak bandwidth like streaming kernels.

Efficiency parameters come from the device's catalog ``efficiency`` block; any field the
catalog leaves out falls back to the per-kind defaults in :data:`FALLBACK` (cited below).
No simpy here: plan search and the engine share these functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import PRECISION_BYTES, DeviceSpec, EfficiencySpec, TrainingSpec
from ..errors import SimwallError
from .ops import Op

__all__ = [
    "FALLBACK",
    "bound",
    "efficiency_of",
    "gemm_efficiency",
    "op_time_s",
    "ops_time_s",
    "optimizer_step_bytes",
    "optimizer_step_time_s",
    "ridge_point",
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
# - sm_count 108: NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020), "108 SMs".
# - gemm_tile 128: 128x128 is the typical cuBLAS tile on A100 (Matrix Multiplication
#   Background User's Guide, Sec. 2.3 and its wave-quantisation example in Sec. 3.2).
# TPU: no published per-kernel efficiency was found; the GPU values without tile/wave
#   quantisation (MXU tiling differs) stand in until the catalog gives a TPU block.
# CPU (Xeon-class): memory_bw 0.80 and gemm_max 0.75 are assumptions: AVX-512 code runs
#   below the nominal clock (Intel Xeon Scalable Specification Update, doc. 336065, AVX-512
#   frequency tables; discussed in community.intel.com "Calculate the Max Flops on
#   Skylake"), and STREAM-type kernels do not reach DRAM peak. Replace with measurements.
FALLBACK: dict[str, EfficiencySpec] = {
    "gpu": EfficiencySpec(gemm_max=0.80, gemm_half_flop=0.0, memory_bw=0.88, launch_s=3e-6,
                          sm_count=108, gemm_tile=128),
    "tpu": EfficiencySpec(gemm_max=0.80, gemm_half_flop=0.0, memory_bw=0.88, launch_s=3e-6),
    "cpu": EfficiencySpec(gemm_max=0.75, gemm_half_flop=0.0, memory_bw=0.80, launch_s=0.0),
}

_GEMM_KINDS = ("matmul", "attention")


@dataclass(frozen=True)
class _Params:
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


def _params(device: DeviceSpec, precision: str) -> _Params:
    return _Params(device.peak(precision), device.peak("fp32"),
                   device.memory_bandwidth_bytes_per_s, efficiency_of(device))


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


def _gemm_eff(m: int, n: int, k: int, count: int, eff: EfficiencySpec) -> float:
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
    return _gemm_eff(m, n, k, count, efficiency_of(device))


def _times(op: Op, p: _Params) -> tuple[float, float]:
    """(compute seconds, memory seconds) of ``op``."""
    if op.kind in _GEMM_KINDS and op.gemm is not None:
        e = _gemm_eff(*op.gemm, op.count, p.eff)
        compute = op.flop / (p.peak_flop_per_s * e) if op.flop > 0 else 0.0
    else:
        compute = op.flop / p.vector_flop_per_s
    memory = op.bytes_ / (p.bandwidth_bytes_per_s * p.eff.memory_bw)
    return compute, memory


def op_time_s(op: Op, device: DeviceSpec, precision: str) -> float:
    """Seconds ``op`` takes on ``device`` in ``precision`` (one kernel launch)."""
    p = _params(device, precision)
    compute, memory = _times(op, p)
    return max(compute, memory) + p.eff.launch_s


def ops_time_s(ops, device: DeviceSpec, precision: str) -> float:
    """Seconds of ``ops`` run one after another on ``device``."""
    p = _params(device, precision)
    total = 0.0
    for op in ops:
        compute, memory = _times(op, p)
        total += max(compute, memory) + p.eff.launch_s
    return total


def bound(op: Op, device: DeviceSpec, precision: str) -> str:
    """``'compute'`` when ``op``'s intensity is at or above its ridge point (peak x its
    efficiency over bandwidth x memory_bw), else ``'memory'``."""
    compute, memory = _times(op, _params(device, precision))
    return "compute" if compute >= memory and compute > 0 else "memory"


def ridge_point(device: DeviceSpec, precision: str) -> float:
    """FLOP per byte where large GEMMs turn compute bound:
    ``peak x gemm_max / (bandwidth x memory_bw)``."""
    p = _params(device, precision)
    return (p.peak_flop_per_s * p.eff.gemm_max) / (p.bandwidth_bytes_per_s * p.eff.memory_bw)


# ---------------------------------------------------------------------------------------
# Optimizer step

# Per-parameter state the update reads and writes, in 4-byte fp32 words besides the master
# weight: Adam/AdamW keep momentum and variance (Kingma & Ba 2015, Algorithm 1; 12 bytes of
# optimizer state with the master copy, Rajbhandari et al. 2020 "ZeRO", Sec. 3.1); SGD with
# momentum one buffer; Adafactor factored second moments (Shazeer & Stern 2018, Sec. 3),
# negligible per parameter. Shampoo is counted like Adam: its preconditioner matmuls are
# not memory-bound and are left out (a lower bound).
_STATE_WORDS = {"adam": 2, "adamw": 2, "sgd": 1, "adafactor": 0, "shampoo": 2}


def optimizer_step_bytes(params: float, optimizer: str, training: TrainingSpec | None = None
                         ) -> float:
    """Bytes one optimizer step moves for ``params`` parameters (memory bound).

    Mixed precision with master weights (the default): read fp32 master weight, optimizer
    state and the gradient; write master weight and state back and the 16-bit working copy.
    Without master weights the working weights are updated in place. ``training=None``
    means bf16 with 16-bit gradients and master weights (the ZeRO paper's setup).
    """
    if optimizer not in _STATE_WORDS:
        raise SimwallError(f"cost: unknown optimizer {optimizer!r} "
                           f"(expected one of {', '.join(_STATE_WORDS)})")
    precision = training.precision if training else "bf16"
    grad = PRECISION_BYTES[training.grad_precision_ if training else "bf16"]
    master = training.master_weights if training else True
    state = 4 * _STATE_WORDS[optimizer]
    weight = PRECISION_BYTES[precision]
    if master and precision != "fp32":
        per_param = (4 + state + grad) + (4 + state + weight)
    else:
        per_param = (weight + state + grad) + (weight + state)
    return float(params) * per_param


def optimizer_step_time_s(params: float, optimizer: str, device: DeviceSpec,
                          training: TrainingSpec | None = None) -> float:
    """Seconds of one optimizer step over ``params`` parameters on ``device``: one fused
    streaming kernel (Megatron-LM / Apex multi-tensor apply) at ``memory_bw`` of peak."""
    eff = efficiency_of(device)
    bytes_ = optimizer_step_bytes(params, optimizer, training)
    if bytes_ <= 0:
        return 0.0
    return bytes_ / (device.memory_bandwidth_bytes_per_s * eff.memory_bw) + eff.launch_s
