"""Gradient reductions once per step: DP buckets and the tied-embedding all-reduce (pure).

DP gradients are reduced in buckets once per step (after gradient accumulation), as the
backward of the last micro-batch produces them; ZeRO 1/2 reduce-scatter them instead
(Rajbhandari et al. 2020, "ZeRO", Sec. 5); ZeRO 3 reduce-scatters per layer
(:mod:`.zero`). A tied embedding split over the first and the last stage keeps its two
copies equal by an all-reduce of its gradient between them (Shoeybi et al. 2019 /
Megatron-LM ``share_embeddings_and_output_weights``).

ZeRO-2 under ``plan.zero_grad_reduce: micro_batch`` (DeepSpeed, FSDP SHARD_GRAD_OP;
config.FRAMEWORK_PRESETS) reduce-scatters after every micro-batch's backward: the step
runs the buckets ``m`` times, and each of the ``m - 1`` earlier reductions is exposed as
far as it outlasts the backward it overlaps (:func:`micro_batch_exposed_s`); the last
one is the step's DP tail as before.

Gradients travel in ``training.grad_reduce_precision_``: their own dtype by default, fp32
under the ``megatron`` and ``fsdp`` conventions (config.MIXED_PRECISION_PRESETS); the
caller sizes the buckets in that dtype.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from ..config import PRECISION_BYTES, ModelSpec, TrainingSpec
from ..model import memory
from ..net import Topology
from ..plan import Plan
from .contention import beside_s
from .groups import axis_groups, boundary_pairs
from .traffic import Costed, Traffic, run_collective

__all__ = ["BucketCost", "bucket_cost", "buckets", "micro_batch_exposed_s",
           "reductions_per_step", "tied_embedding_cost"]


@dataclass(frozen=True)
class BucketCost:
    """DP buckets of a whole stage in ready order (bytes), their reduction seconds, and
    the step's traffic."""

    bucket_bytes: tuple[float, ...] = ()
    bucket_s: tuple[float, ...] = ()
    traffic: tuple[Traffic, ...] = ()
    # Each bucket's collectives in the order they run (per-device runs put them on the
    # network as flows): its reduction, then, with hybrid sharding, the all-reduce across
    # replicas; an MoE expert bucket's over expert DP.
    bucket_parts: tuple[tuple[Traffic, ...], ...] = ()


def buckets(total_bytes: float, bucket_bytes: float) -> tuple[float, ...]:
    """``total_bytes`` cut into buckets of ``bucket_bytes`` (the last one partial)."""
    if total_bytes <= 0:
        return ()
    n = math.ceil(total_bytes / bucket_bytes - 1e-9)
    full = tuple([float(bucket_bytes)] * (n - 1))
    return full + (float(total_bytes - bucket_bytes * (n - 1)),)


def bucket_cost(plan: Plan, topology: Topology, stage: int, grad_bytes: float, symmetric: bool,
                expert_grad_bytes: float = 0.0) -> BucketCost:
    """The DP reduction of ``grad_bytes`` of gradients of ``stage`` in buckets (none with
    ZeRO 3 or without DP). Each distinct bucket size is costed once.

    ``expert_grad_bytes`` of them (MoE: the routed experts' gradients) are bucketed apart
    and reduced over the expert-DP groups (``dp x cp / ep`` ranks,
    :func:`~.groups.expert_dp_groups`), the rest over the DP x CP groups, as
    Megatron-Core keeps expert and dense parameters in separate buffers, each reduced over
    its own group (megatron/core/distributed/distributed_data_parallel.py); with ``ep =
    dp x cp`` the expert buckets need no reduction (a group of one). The two kinds'
    buckets run in the order they fill: both kinds' gradients come out as the backward
    goes, so a bucket is ready when its share of its kind is (:func:`_interleaved`)."""
    if not (plan.dp_cp > 1 and plan.zero < 3):
        return BucketCost()
    expert = expert_grad_bytes if plan.ep > 1 else 0.0
    kind = "all_reduce" if plan.zero == 0 else "reduce_scatter"
    per_step = reductions_per_step(plan)
    dense = buckets(grad_bytes - expert, plan.dp_bucket_bytes)
    experts = buckets(expert, plan.dp_bucket_bytes)
    at = 0 if symmetric else stage
    groups = {"dp": axis_groups(plan, at, "dps", topology, symmetric)}
    if not experts:
        # Dense buckets alone run in their own order (:func:`_interleaved`); each size is
        # costed once, in the order first seen.
        runs = {size: run_collective(topology, kind, groups["dp"], size, per_step * n,
                                     plan.collective, symmetric)
                for size, n in Counter(dense).items()}
        if plan.dp_shard:
            runs = _with_replicas(plan, topology, at, symmetric, runs, Counter(dense))
        seconds = {size: run.s for size, run in runs.items()}
        return BucketCost(bucket_bytes=dense, bucket_s=tuple(map(seconds.__getitem__, dense)),
                          traffic=tuple(t for run in runs.values() for t in run.traffic),
                          bucket_parts=tuple(runs[size].traffic for size in dense))
    order = _interleaved(dense, experts)
    sizes = tuple([size for _, size in order])
    if plan.dp_cp // plan.ep > 1 and expert > 0:
        groups["edp"] = axis_groups(plan, at, "edp", topology, symmetric)
    counts = Counter(order)                 # first seen first, as dict.fromkeys
    runs = {(axis, size): run_collective(topology, kind, groups[axis], size,
                                         per_step * n, plan.collective, symmetric)
            for (axis, size), n in counts.items() if axis in groups}
    nothing = Costed()                      # expert buckets of an expert-DP group of one
    return BucketCost(bucket_bytes=sizes,
                      bucket_s=tuple([runs.get(x, nothing).s for x in order]),
                      traffic=tuple(t for run in runs.values() for t in run.traffic),
                      bucket_parts=tuple(runs.get(x, nothing).traffic for x in order))


def _with_replicas(plan: Plan, topology: Topology, at: int, symmetric: bool,
                   runs: dict[float, Costed], counts: Counter) -> dict[float, Costed]:
    """Hybrid sharding (``plan.dp_shard``): each bucket's reduce-scatter inside the shard
    group (``runs``) followed by the all-reduce of the rank's 1/shard of it across the
    replica group, as Megatron-Core's partial distributed optimizer runs them (megatron/
    core/distributed/param_and_grad_buffer.py: the bucket reduce-scattered over the
    intra-instance group, then its shard all-reduced over the inter-instance group) and
    FSDP's HYBRID_SHARD_ZERO2."""
    replicas = axis_groups(plan, at, "dpr", topology, symmetric)
    out = {}
    for size, run in runs.items():
        across = run_collective(topology, "all_reduce", replicas, size / plan.shard,
                                reductions_per_step(plan) * counts[size], plan.collective,
                                symmetric)
        out[size] = Costed(s=run.s + across.s, traffic=run.traffic + across.traffic)
    return out


def _interleaved(dense: tuple[float, ...], expert: tuple[float, ...]
                 ) -> tuple[tuple[str, float], ...]:
    """``("dp", size)`` and ``("edp", size)`` buckets in the order they fill: by the
    fraction of their kind's gradients produced when they are full (the gradients of both
    kinds taken as produced evenly over the backward), dense first among equals. Dense
    buckets alone keep their order: their fractions never fall (running sums of
    non-negative sizes over one total), so the stable sort leaves them as they are and
    :func:`bucket_cost` runs them without it."""
    def ends(sizes):
        total, done = sum(sizes), 0.0
        for size in sizes:
            done += size
            yield done / total
    tagged = ([(f, 0, "dp", x) for f, x in zip(ends(dense), dense)]
              + [(f, 1, "edp", x) for f, x in zip(ends(expert), expert)])
    return tuple((axis, size) for _, _, axis, size in sorted(tagged, key=lambda t: t[:2]))


def reductions_per_step(plan: Plan) -> int:
    """How often a step reduces its gradients over DP: every micro-batch for ZeRO-2 with
    ``zero_grad_reduce: micro_batch``, else once (after gradient accumulation)."""
    if plan.zero == 2 and plan.zero_grad_reduce == "micro_batch":
        return plan.micro_batches
    return 1


def micro_batch_exposed_s(plan: Plan, reduce_s: float, backward_s: float,
                          loss: float = 0.0) -> float:
    """Seconds per step that the reductions of the micro-batches before the last add to
    the pipeline: each of those ``reductions_per_step - 1`` reductions of ``reduce_s``
    seconds overlaps its micro-batch's backward (``backward_s``) when ``plan.dp_overlap``
    and adds what it takes beyond it or the compute it slows (``loss``,
    :func:`.contention.beside_s`), else is exposed whole (DeepSpeed's ``overlap_comm:
    false`` reduces inside the backward hooks on the compute stream)."""
    extra = reductions_per_step(plan) - 1
    if extra <= 0 or reduce_s <= 0:
        return 0.0
    per = beside_s(reduce_s, backward_s, loss) if plan.dp_overlap else reduce_s
    return extra * per


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
