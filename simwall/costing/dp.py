"""Gradient reductions once per step: DP buckets and the tied-embedding all-reduce (pure).

DP gradients are reduced in buckets once per step (after gradient accumulation), as the
backward of the last micro-batch produces them; ZeRO 1/2 reduce-scatter them instead
(Rajbhandari et al. 2020, "ZeRO", Sec. 5); ZeRO 3 reduce-scatters per layer
(:mod:`.zero`). A tied embedding split over the first and the last stage keeps its two
copies equal by an all-reduce of its gradient between them (Shoeybi et al. 2019 /
Megatron-LM ``share_embeddings_and_output_weights``).

Gradients travel in ``training.grad_reduce_precision_``: their own dtype by default, fp32
under the ``megatron`` and ``fsdp`` conventions (config.MIXED_PRECISION_PRESETS); the
caller sizes the buckets in that dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import PRECISION_BYTES, ModelSpec, TrainingSpec
from ..model import memory
from ..net import Topology
from ..plan import Plan
from .groups import axis_groups, boundary_pairs
from .traffic import Costed, Traffic, run_collective

__all__ = ["BucketCost", "bucket_cost", "buckets", "tied_embedding_cost"]


@dataclass(frozen=True)
class BucketCost:
    """DP buckets of a whole stage in ready order (bytes), their reduction seconds, and
    the step's traffic."""

    bucket_bytes: tuple[float, ...] = ()
    bucket_s: tuple[float, ...] = ()
    traffic: tuple[Traffic, ...] = ()


def buckets(total_bytes: float, bucket_bytes: float) -> tuple[float, ...]:
    """``total_bytes`` cut into buckets of ``bucket_bytes`` (the last one partial)."""
    if total_bytes <= 0:
        return ()
    n = math.ceil(total_bytes / bucket_bytes - 1e-9)
    full = tuple([float(bucket_bytes)] * (n - 1))
    return full + (float(total_bytes - bucket_bytes * (n - 1)),)


def bucket_cost(plan: Plan, topology: Topology, stage: int, grad_bytes: float, symmetric: bool
                ) -> BucketCost:
    """The DP reduction of ``grad_bytes`` of gradients of ``stage`` in buckets (none with
    ZeRO 3 or without DP). Each distinct bucket size is costed once."""
    if not (plan.dp_cp > 1 and plan.zero < 3):
        return BucketCost()
    kind = "all_reduce" if plan.zero == 0 else "reduce_scatter"
    sizes = buckets(grad_bytes, plan.dp_bucket_bytes)
    groups = axis_groups(plan, 0 if symmetric else stage, "dp", topology, symmetric)
    runs = {size: run_collective(topology, kind, groups, size, sizes.count(size),
                                 plan.collective, symmetric)
            for size in dict.fromkeys(sizes)}            # distinct sizes, first seen first
    return BucketCost(bucket_bytes=sizes, bucket_s=tuple(runs[x].s for x in sizes),
                      traffic=tuple(t for run in runs.values() for t in run.traffic))


def tied_embedding_cost(model: ModelSpec, training: TrainingSpec, plan: Plan, topology: Topology,
                        stage: int, symmetric: bool) -> Costed:
    """The embedding-gradient all-reduce between the first and the last stage, as seen
    from ``stage`` (nothing unless the embedding is tied across stages)."""
    if not (model.tied_embeddings and plan.pp > 1 and stage in (0, plan.pp - 1)):
        return Costed()
    emb_grads = memory.embedding_params(model, plan.tp) * PRECISION_BYTES[
        training.grad_reduce_precision_]
    pairs = boundary_pairs(plan, 0, plan.pp - 1, plan.tp, topology, symmetric)
    # The engine charges it once, on stage 0.
    return run_collective(topology, "all_reduce", pairs, emb_grads, 1 if stage == 0 else 0,
                          plan.collective, symmetric)
