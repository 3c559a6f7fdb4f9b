"""Time of one op on one device: a roofline with achievable-efficiency factors (pure).

    time = max(flop / (peak x eff), bytes / (bandwidth x memory_bw)) + launch_s

(Williams, Waterman & Patterson 2009, "Roofline: an insightful visual performance model",
CACM 52(4), for the two roofs.) ``eff`` is the fraction of peak a kernel reaches
(:mod:`simwall.hardware.efficiency`: GEMMs on the tensor cores with tile and wave
quantisation; elementwise and reduction ops on the vector units (fp32 peak), memory bound
in practice, at ``memory_bw`` of the peak bandwidth like streaming kernels; a fused
(flash) attention kernel on the tensor cores at ``flash_attention`` of peak).
No simpy here: plan search and the engine share these functions.
"""

from __future__ import annotations

from ..config import PRECISION_BYTES, DeviceSpec, EfficiencySpec, TrainingSpec
from ..errors import SimwallError
from ..hardware.efficiency import DeviceRoofs, device_roofs, efficiency_of, gemm_efficiency_with
from ..memo import memoized
from .ops import Op

__all__ = [
    "bound",
    "device_efficiency",
    "op_time_s",
    "ops_time_s",
    "optimizer_step_bytes",
    "optimizer_step_time_s",
    "ridge_point",
]

_GEMM_KINDS = ("matmul", "attention")


def _times(op: Op, p: DeviceRoofs) -> tuple[float, float]:
    """(compute seconds, memory seconds) of ``op`` under the roofs ``p``."""
    if op.kind in _GEMM_KINDS and op.gemm is not None:
        e = gemm_efficiency_with(*op.gemm, op.count, p.eff)
        compute = op.flop / (p.peak_flop_per_s * e) if op.flop > 0 else 0.0
    elif op.kind == "fused_attention":
        # One fused (flash) attention kernel on the tensor cores at its own measured
        # fraction of peak (simwall.hardware.efficiency.FALLBACK cites it); FlashAttention-2
        # where the run forces it (Op.kernel "fa2"); unset: gemm_max.
        fa2 = p.eff.flash_attention_fa2 if op.kernel == "fa2" else 0.0
        e = fa2 or p.eff.flash_attention or p.eff.gemm_max
        compute = op.flop / (p.peak_flop_per_s * e) if op.flop > 0 else 0.0
    else:
        compute = op.flop / p.vector_flop_per_s
    memory = op.bytes_ / (p.bandwidth_bytes_per_s * p.eff.memory_bw)
    return compute, memory


def _roofs(device: DeviceSpec, precision: str) -> tuple[DeviceRoofs, DeviceRoofs]:
    """(roofs of the ops that run in the 16-bit compute dtype, roofs of FP8 GEMMs): an fp8
    run executes only its ``Op.fp8`` GEMMs at the FP8 rate, everything else in bf16
    (``TrainingSpec.compute_precision``; Transformer Engine)."""
    base = device_roofs(device, "bf16" if precision == "fp8" else precision)
    return base, (device_roofs(device, "fp8") if precision == "fp8" else base)


def op_time_s(op: Op, device: DeviceSpec, precision: str) -> float:
    """Seconds ``op`` takes on ``device`` in a run of ``precision`` (one kernel launch)."""
    base, fp8 = _roofs(device, precision)
    p = fp8 if op.fp8 else base
    compute, memory = _times(op, p)
    return max(compute, memory) + p.eff.launch_s


def ops_time_s(ops, device: DeviceSpec, precision: str) -> float:
    """Seconds of ``ops`` run one after another on ``device`` in a run of ``precision``."""
    base, fp8 = _roofs(device, precision)
    total = 0.0
    for op in ops:
        p = fp8 if op.fp8 else base
        compute, memory = _times(op, p)
        total += max(compute, memory) + p.eff.launch_s
    return total


def bound(op: Op, device: DeviceSpec, precision: str) -> str:
    """``'compute'`` when ``op``'s intensity is at or above its ridge point (peak x its
    efficiency over bandwidth x memory_bw), else ``'memory'``."""
    base, fp8 = _roofs(device, precision)
    compute, memory = _times(op, fp8 if op.fp8 else base)
    return "compute" if compute >= memory and compute > 0 else "memory"


def ridge_point(device: DeviceSpec, precision: str) -> float:
    """FLOP per byte where large GEMMs turn compute bound:
    ``peak x gemm_max / (bandwidth x memory_bw)``."""
    p = device_roofs(device, precision)
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
    grad = PRECISION_BYTES[training.grad_precision_ if training else "bf16"]
    master = training.master_bytes if training else 4
    stored = training.stored_weight_bytes if training else 2
    state = 4 * _STATE_WORDS[optimizer]
    if master:
        working = training.weight_bytes if training else 2
        per_param = (master + state + grad) + (master + state + working)
    else:
        # No separate master: the stored weights (fp32 under FSDP, or the working copy)
        # are updated in place.
        per_param = (stored + state + grad) + (stored + state)
    return float(params) * per_param


@memoized(maxsize=64)
def device_efficiency(device: DeviceSpec) -> EfficiencySpec:
    """:func:`~simwall.hardware.efficiency.efficiency_of`, memoised: every stage cost and
    optimizer step asks, and it copies the fallback model each time (the result is
    frozen)."""
    return efficiency_of(device)


def optimizer_step_time_s(params: float, optimizer: str, device: DeviceSpec,
                          training: TrainingSpec | None = None) -> float:
    """Seconds of one optimizer step over ``params`` parameters on ``device``: one fused
    streaming kernel (Megatron-LM / Apex multi-tensor apply) at ``memory_bw`` of peak."""
    eff = device_efficiency(device)
    bytes_ = optimizer_step_bytes(params, optimizer, training)
    if bytes_ <= 0:
        return 0.0
    return bytes_ / (device.memory_bandwidth_bytes_per_s * eff.memory_bw) + eff.launch_s
