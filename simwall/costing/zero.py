"""ZeRO-3: each layer's parameters gathered and its gradients reduce-scattered (pure).

ZeRO 3 all-gathers each layer's parameters before its forward and its backward
(prefetched one layer ahead, under the previous layer's compute) and reduce-scatters its
gradients in the backward (Rajbhandari et al. 2020, "ZeRO", Sec. 5). Only what the
layer's compute and TP collectives do not hide is exposed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import PRECISION_BYTES, ModelSpec, TrainingSpec
from ..model import memory
from ..plan import Plan
from . import offload
from .groups import axis_groups
from .traffic import Traffic, run_collective

__all__ = ["Zero3Cost", "exposed_s", "zero3_cost"]


@dataclass(frozen=True)
class Zero3Cost:
    """Seconds per layer and micro-batch: fetching the layer's parameters (``gather_s``:
    ZeRO-3's all-gather, plus the host fetch of ZeRO-Infinity) and reduce-scattering its
    gradients; with the step's traffic."""

    gather_s: float = 0.0
    reduce_scatter_s: float = 0.0
    traffic: tuple[Traffic, ...] = ()


def zero3_cost(model: ModelSpec, training: TrainingSpec, plan: Plan, topology, stage: int,
               symmetric: bool) -> Zero3Cost:
    """Per-layer parameter fetch and gradient reduce-scatter of ``stage``."""
    layer_params = memory.layer_params(model, plan.tp)
    gather_s = scatter_s = 0.0
    traffic: tuple[Traffic, ...] = ()
    if plan.zero == 3 and plan.dp_cp > 1:
        groups = axis_groups(plan, 0 if symmetric else stage, "dp", topology, symmetric)
        m, n_here = plan.micro_batches, plan.layers_on_stage(stage)
        gather = run_collective(topology, "all_gather", groups,
                                layer_params * training.weight_bytes, 2 * m * n_here,
                                plan.collective, symmetric)
        scatter = run_collective(topology, "reduce_scatter", groups,
                                 layer_params * PRECISION_BYTES[training.grad_reduce_precision_],
                                 m * n_here, plan.collective, symmetric)
        gather_s, scatter_s = gather.s, scatter.s
        traffic = gather.traffic + scatter.traffic
    # --- offload (issue 6, simwall.costing.offload): ZeRO-Infinity keeps the 16-bit
    # weights in host memory and fetches each layer over PCIe before its forward and its
    # backward, prefetched one layer ahead like ZeRO-3's gather (so only the excess is
    # exposed).
    if plan.offload == "optimizer+params":
        gather_s += offload.layer_fetch_s(topology, training, plan, stage, layer_params)
    # --- end offload
    return Zero3Cost(gather_s, scatter_s, traffic)


def exposed_s(z3: Zero3Cost, layer_fwd_s: float, layer_bwd_s: float, tp_fwd_s: float,
              tp_bwd_s: float) -> tuple[float, float]:
    """``(forward, backward)`` seconds per layer and micro-batch that the parameter fetch
    (and, backward, the reduce-scatter) adds beyond the layer's compute and TP time."""
    fwd = max(0.0, z3.gather_s - layer_fwd_s - tp_fwd_s)
    bwd = max(0.0, z3.gather_s + z3.reduce_scatter_s - layer_bwd_s - tp_bwd_s)
    return fwd, bwd
