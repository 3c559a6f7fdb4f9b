"""Compute seconds of one micro-batch: a layer, the embedding and the LM head (pure).

The op lists come from :mod:`simwall.model.ops`, their times from the roofline of
:mod:`simwall.model.optime`.
"""

from __future__ import annotations

from ..config import DeviceSpec, ModelSpec, TrainingSpec
from ..memo import memoized
from ..model import ops as workload
from ..model import optime
from ..plan import Plan

__all__ = ["layer_compute_s", "moe_layer_compute_s", "op_times"]

#: The parts :func:`op_times` costs: (key, op list of the model, pass).
_PARTS = (
    ("layer_fwd", workload.layer_ops, "fwd"),
    ("layer_bwd", workload.layer_ops, "bwd"),
    ("layer_rec", workload.layer_ops, "recompute"),
    ("emb_fwd", workload.embedding_ops, "fwd"),
    ("emb_bwd", workload.embedding_ops, "bwd"),
    ("head_fwd", workload.head_ops, "fwd"),
    ("head_bwd", workload.head_ops, "bwd"),
)


def op_times(model: ModelSpec, training: TrainingSpec, plan: Plan, device: DeviceSpec
             ) -> dict[str, float]:
    """:func:`_op_times` of ``plan``'s layer shape (:func:`simwall.model.ops.layer_plan`):
    plans that differ only in pp, dp, ZeRO, schedule and the like share one entry, and
    trainings that differ only in the global batch too (taken at the layer shape's one
    micro-batch, :func:`simwall.model.ops.per_micro_batch`)."""
    return _op_times(model, *workload.layer_key(training, plan), device)


@memoized(maxsize=4096)
def _op_times(model: ModelSpec, training: TrainingSpec, plan: Plan, device: DeviceSpec
              ) -> dict[str, float]:
    """Per micro-batch compute seconds of one layer and of the embedding/head parts:
    keys ``layer_fwd``, ``layer_bwd``, ``layer_rec`` (recompute), ``emb_fwd``,
    ``emb_bwd``, ``head_fwd``, ``head_bwd``; and the weight-gradient GEMMs within the
    backward parts (the W pass of a split backward, :func:`simwall.model.ops.wgrad_ops`):
    ``layer_wgrad``, ``head_wgrad`` (the embedding has none). A mixture-of-experts model
    also gets an MoE layer's own ``moe_layer_fwd``, ``moe_layer_bwd``, ``moe_layer_rec``
    and ``moe_layer_wgrad`` (its MLP is the experts: :mod:`simwall.model.moe`); and the
    linear layers' GEMMs alone, ``layer_fwd_gemm`` and ``layer_bwd_gemm`` (with recompute),
    what TP communication overlap can hide under."""
    times = {key: optime.ops_time_s(ops_of(model, training, plan, pass_), device,
                                    training.precision)
             for key, ops_of, pass_ in _PARTS}
    for key, ops_of in (("layer_wgrad", workload.layer_ops), ("head_wgrad", workload.head_ops)):
        times[key] = optime.ops_time_s(workload.wgrad_ops(ops_of(model, training, plan, "bwd")),
                                       device, training.precision)
    # The linear layers' GEMMs alone (forward; backward with its recompute): what TP
    # communication overlap can hide the collectives under (costing.tp.overlapped_s).
    for key, passes in (("layer_fwd_gemm", ("fwd",)), ("layer_bwd_gemm", ("bwd", "recompute"))):
        times[key] = sum(optime.ops_time_s(
            [op for op in workload.layer_ops(model, training, plan, pass_)
             if op.name.split(".")[0] in workload.FP8_GEMMS], device, training.precision)
            for pass_ in passes)
    if model.moe:
        for key, pass_ in (("moe_layer_fwd", "fwd"), ("moe_layer_bwd", "bwd"),
                           ("moe_layer_rec", "recompute")):
            times[key] = optime.ops_time_s(workload.layer_ops(model, training, plan, pass_,
                                                              moe=True),
                                           device, training.precision)
        times["moe_layer_wgrad"] = optime.ops_time_s(
            workload.wgrad_ops(workload.layer_ops(model, training, plan, "bwd", moe=True)),
            device, training.precision)
    return times


def layer_compute_s(times: dict[str, float], speed: float) -> tuple[float, float]:
    """``(forward, backward)`` seconds of one layer per micro-batch from :func:`op_times`
    on a device running at ``speed`` (< 1: a straggler); backward includes recompute."""
    return (times["layer_fwd"]) / speed, (times["layer_bwd"] + times["layer_rec"]) / speed


def moe_layer_compute_s(times: dict[str, float], speed: float) -> tuple[float, float]:
    """:func:`layer_compute_s` of an MoE layer (``times`` of a mixture-of-experts model)."""
    return (times["moe_layer_fwd"] / speed,
            (times["moe_layer_bwd"] + times["moe_layer_rec"]) / speed)
