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

__all__ = ["layer_compute_s", "op_times"]


@memoized(maxsize=4096)
def op_times(model: ModelSpec, training: TrainingSpec, plan: Plan, device: DeviceSpec
             ) -> dict[str, float]:
    """Per micro-batch compute seconds of one layer and of the embedding/head parts:
    keys ``layer_fwd``, ``layer_bwd``, ``layer_rec`` (recompute), ``emb_fwd``,
    ``emb_bwd``, ``head_fwd``, ``head_bwd``."""
    p = training.precision
    t = {
        "layer_fwd": optime.ops_time_s(workload.layer_ops(model, training, plan, "fwd"),
                                       device, p),
        "layer_bwd": optime.ops_time_s(workload.layer_ops(model, training, plan, "bwd"),
                                       device, p),
        "layer_rec": optime.ops_time_s(workload.layer_ops(model, training, plan, "recompute"),
                                       device, p),
        "emb_fwd": optime.ops_time_s(workload.embedding_ops(model, training, plan, "fwd"),
                                     device, p),
        "emb_bwd": optime.ops_time_s(workload.embedding_ops(model, training, plan, "bwd"),
                                     device, p),
        "head_fwd": optime.ops_time_s(workload.head_ops(model, training, plan, "fwd"),
                                      device, p),
        "head_bwd": optime.ops_time_s(workload.head_ops(model, training, plan, "bwd"),
                                      device, p),
    }
    return t


def layer_compute_s(times: dict[str, float], speed: float) -> tuple[float, float]:
    """``(forward, backward)`` seconds of one layer per micro-batch from :func:`op_times`
    on a device running at ``speed`` (< 1: a straggler); backward includes recompute."""
    return (times["layer_fwd"]) / speed, (times["layer_bwd"] + times["layer_rec"]) / speed
