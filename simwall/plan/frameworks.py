"""Which training frameworks run a plan: one rule per framework, each with its source.

A rule is a predicate over a resolved :class:`~simwall.plan.layout.Plan`; it judges the
parallelism combination only (TP, CP, PP and its schedule, DP with ZeRO stage, offload), not
recompute or the collective algorithm, which every framework here offers in some form.
The rules describe the frameworks' documented, released features; a plan no rule accepts
is "none known": simwall can model it, but no framework listed runs it as such.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ..config import FRAMEWORK_PRESETS
from .layout import Plan

__all__ = [
    "FRAMEWORKS",
    "NONE_KNOWN",
    "SEMANTIC_KEYS",
    "Framework",
    "dp_bucket_bytes_for",
    "framed",
    "framework_label",
    "framework_names",
    "frameworks_for",
    "plan_record",
    "preset_for",
    "runs_plan",
    "with_framework",
]

#: What :func:`framework_label` says when no framework runs a plan.
NONE_KNOWN = "none known"


@dataclass(frozen=True)
class Framework:
    """A framework's name, the predicate saying whether it runs a plan, and its source."""

    name: str
    runs: Callable[[Plan], bool]
    source: str


def _megatron(p: Plan) -> bool:
    # Megatron-LM: TP + PP (1F1B, interleaved 1F1B) + DP (Narayanan et al. 2021, SC21,
    # Sec. 2); ZeRO-1 is its distributed optimizer (--use-distributed-optimizer shards the
    # optimizer state over DP ranks; docs/source/distrib_optimizer.md); no ZeRO-2/3 in
    # the classic TP/PP/DP path. Its pipeline schedules are
    # forward_backward_pipelining_without_interleaving (1F1B) and ..._with_interleaving
    # (megatron/core/pipeline_parallel/schedules.py): no GPipe (all-forward-all-backward
    # only without PP), and no zero-bubble schedule (ZB-H1 runs in Sea AI Lab's fork,
    # sail-sg/zero-bubble-pipeline-parallelism, megatron/core/pipeline_parallel/
    # zb_schedules.py, not in NVIDIA/Megatron-LM's). Offload of model states is not part
    # of that path.
    # Context parallelism: --context-parallel-size with --cp-comm-type p2p | all_gather
    # (megatron/training/arguments.py; megatron/core/transformer/transformer_config.py
    # cp_comm_type), composed with TP, PP and the distributed optimizer.
    # plan.ep_overlap is its --overlap-moe-expert-parallel-comm (combined 1F1B,
    # megatron/core/pipeline_parallel/combined_1f1b.py), the one framework here that has it;
    # megatron/core/transformer/transformer_config.py asserts it runs with a virtual
    # pipeline (interleaved) when pp > 1 and without full recompute ("disable full
    # recomputation when enabling overlap_moe_expert_parallel_comm").
    # Hybrid sharding: --num-distributed-optimizer-instances splits the DP x CP domain
    # into instances, each sharding the optimizer, its gradients reduce-scattered inside
    # the instance and all-reduced across instances (megatron/core/distributed/
    # param_and_grad_buffer.py, "With multiple DistOpt instances, we need to all-reduce
    # across instances"): plan.dp_shard with ZeRO-1.
    if p.ep_overlap and ((p.pp > 1 and p.schedule != "interleaved")
                         or p.recompute == "full"):
        return False
    return (p.zero <= 1 and p.offload == "none"
            and (p.pp == 1 or p.schedule in ("1f1b", "interleaved")))


def _deepspeed(p: Plan) -> bool:
    # DeepSpeed: ZeRO stages 0-3 with DP (Rajbhandari et al. 2020). Its PipelineEngine
    # runs ZeRO-1 at most: deepspeed/runtime/pipe/engine.py asserts
    # "zero_optimization_stage() < ZeroStageEnum.gradients" with the message "ZeRO-2 and
    # ZeRO-3 are incompatible with pipeline parallelism" (DeepSpeed docs, "Pipeline
    # Parallelism": "pipeline parallelism ... is compatible with ZeRO stage 1"). Its
    # pipeline schedule is TrainSchedule, 1F1B-style (deepspeed/runtime/pipe/schedule.py),
    # not interleaved. TP comes from Megatron-DeepSpeed (an mpu handed to the engine;
    # "3D parallelism" = TP + PP + ZeRO-1). Offload: offload_optimizer needs ZeRO >= 1,
    # offload_param ZeRO-3 only (DeepSpeed config docs, "ZeRO optimizations for FP16
    # training": offload_param "available only with ZeRO stage 3").
    if p.pp > 1 and (p.zero > 1 or p.schedule != "1f1b"):
        return False
    # ZeRO++'s hierarchical partitioning (hpZ) keeps a secondary copy of the parameters
    # inside a node for the gathers but shards the optimizer over every rank: not
    # simwall's plan.dp_shard, which shards all the states inside the group.
    if p.dp_shard or p.ep_overlap:
        return False
    # DeepSpeed's sequence parallelism is Ulysses (all-to-all of attention heads,
    # deepspeed/sequence/layer.py DistributedAttention), not a ring / all-gather of K/V
    # chunks: no plan with simwall's cp.
    if p.cp > 1:
        return False
    if p.offload == "optimizer" and p.zero < 1:
        return False
    return not (p.offload == "optimizer+params" and p.zero != 3)


def _fsdp(p: Plan) -> bool:
    # PyTorch FSDP (FullyShardedDataParallel, Zhao et al., VLDB 2023): ShardingStrategy
    # FULL_SHARD = ZeRO-3, SHARD_GRAD_OP = ZeRO-2, NO_SHARD = DDP (ZeRO-0); no ZeRO-1.
    # Plain FSDP is data parallelism only (no TP, no PP). CPUOffload(offload_params=True)
    # moves parameters and gradients to the host and steps the optimizer there
    # (torch.distributed.fsdp.CPUOffload): our optimizer+params, with sharded params.
    # No context parallelism: FSDP1 shards parameters only.
    # ShardingStrategy HYBRID_SHARD / _HYBRID_SHARD_ZERO2 shard inside a process group
    # (a node by default) and replicate across (torch.distributed.fsdp.ShardingStrategy):
    # plan.dp_shard with ZeRO-3 / ZeRO-2.
    if p.tp > 1 or p.pp > 1 or p.zero == 1 or p.cp > 1:
        return False
    if p.ep > 1:
        # FSDP has no expert-parallel mode: an MoE layer's experts are sharded like any
        # parameter, every rank computes with every expert (torch.distributed.fsdp API).
        return False
    return p.offload == "none" or (p.offload == "optimizer+params" and p.zero == 3)


def _fsdp2(p: Plan) -> bool:
    # PyTorch FSDP2 (torch.distributed.fsdp.fully_shard, per-parameter DTensor sharding):
    # reshard_after_forward=True is ZeRO-3, False ZeRO-2. It composes with tensor
    # parallelism through DTensor (torch.distributed.tensor.parallel; PyTorch tutorial
    # "Large Scale Transformer model training with Tensor Parallel (TP)": 2-D FSDP + TP)
    # and with torch.distributed.pipelining (ScheduleGPipe, Schedule1F1B,
    # ScheduleInterleaved1F1B, and ScheduleInterleavedZeroBubble, whose docstring says it
    # implements the ZB1P = ZB-H1 schedule of Qi et al. 2024 with backward_input /
    # backward_weight actions; torch/distributed/pipelining/schedules.py; TorchTitan's
    # pipeline_parallel_schedule "InterleavedZeroBubble"), as TorchTitan's 3-D/4-D
    # parallelism does (Liang et al.
    # 2024, "TorchTitan", Sec. 3). Pure DP without sharding is DDP, not FSDP2. With PP,
    # TorchTitan's default reshard_after_forward policy keeps parameters gathered
    # (ZeRO-2; torchtitan/models/llama3/infra/parallelize.py, "default" policy: no
    # resharding when PP is on, which would otherwise all-gather per micro-batch); its
    # "always" override is not counted as a supported combination here.
    if (p.pp > 1 and p.zero != 2) or p.ep_overlap:
        return False
    # Context parallelism: torch.distributed.tensor.experimental.context_parallel, ring
    # attention over K/V shards with load-balanced causal sharding (PyTorch tutorial
    # "Introduction to Context Parallel": set_rotate_method "allgather" | "alltoall"),
    # which TorchTitan composes with FSDP2, TP and PP ("4D parallelism", Liang et al.
    # 2024, "TorchTitan"; FSDP shards over the DP x CP mesh, dp_shard_cp). HSDP:
    # fully_shard on a 2-D (replicate, shard) mesh (TorchTitan's
    # data_parallel_replicate_degree x data_parallel_shard_degree): plan.dp_shard.
    return p.zero in (2, 3) and p.offload in ("none", "optimizer+params")


#: The frameworks known, in the order they are named.
FRAMEWORKS: tuple[Framework, ...] = (
    Framework("megatron", _megatron, "Megatron-LM (NVIDIA/Megatron-LM)"),
    Framework("deepspeed", _deepspeed, "DeepSpeed (microsoft/DeepSpeed), with "
              "Megatron-DeepSpeed for TP"),
    Framework("fsdp", _fsdp, "PyTorch FSDP (FullyShardedDataParallel)"),
    Framework("fsdp2", _fsdp2, "PyTorch FSDP2 (fully_shard) with DTensor TP and "
              "torch.distributed.pipelining"),
)


def frameworks_for(plan: Plan) -> tuple[str, ...]:
    """Names of the frameworks that run ``plan``, in :data:`FRAMEWORKS` order."""
    return tuple(f.name for f in FRAMEWORKS if f.runs(plan))


def framework_label(plan: Plan) -> str:
    """``"megatron, deepspeed"``, or :data:`NONE_KNOWN` when no framework runs ``plan``."""
    return ", ".join(frameworks_for(plan)) or NONE_KNOWN


def framework_names() -> tuple[str, ...]:
    """Every framework name (the choices of ``--framework``)."""
    return tuple(f.name for f in FRAMEWORKS)


#: The semantic keys of a framework preset (config.FRAMEWORK_PRESETS), in order.
SEMANTIC_KEYS: tuple[str, ...] = ("tp_comm_overlap", "overlap_param_gather",
                                  "zero_grad_reduce", "zero3_gather_unit", "zero3_prefetch",
                                  "reshard_after_forward", "zero3_gather_impl")

#: Preset of each framework rule (FSDP2 shares FSDP's communication semantics).
_PRESET_OF = {"megatron": "megatron", "deepspeed": "deepspeed", "fsdp": "fsdp",
              "fsdp2": "fsdp"}


def preset_for(plan: Plan | None, framework: str = "auto") -> str:
    """The preset ``plan.framework: auto`` stands for: the first framework of
    :data:`FRAMEWORKS` that runs ``plan`` (megatron for TP/PP/ZeRO<=1 plans, the
    published-run default of TP/PP training; deepspeed for ZeRO-2/3 and offload, the
    system those stages come from; FSDP only where neither runs the plan); deepspeed when
    none does (ZeRO's reference implementation). A named framework gives its preset
    (``plan`` unread: None will do)."""
    if framework != "auto":
        return _PRESET_OF[framework]
    names = frameworks_for(plan)
    return _PRESET_OF[names[0]] if names else "deepspeed"


def with_framework(plan: Plan, framework: str = "auto", **overrides) -> Plan:
    """``plan`` with the framework semantics resolved: the preset of ``framework``
    (:func:`preset_for`), then each of ``overrides`` (a :data:`SEMANTIC_KEYS` key) that
    is not None."""
    name = preset_for(plan, framework)
    values = dict(FRAMEWORK_PRESETS[name])
    if name == "fsdp" and plan.pp > 1:
        # FSDP under torch.distributed.pipelining syncs gradients on the last micro-batch's
        # backward only (torch/distributed/pipelining/stage.py, backward_maybe_with_nosync:
        # set_requires_gradient_sync(last_backward)), as TorchTitan runs FSDP2 with PP.
        values["zero_grad_reduce"] = "step"
    values.update({k: v for k, v in overrides.items() if v is not None})
    return replace(plan, framework=name, **{k: values[k] for k in SEMANTIC_KEYS})


#: PyTorch DDP's default gradient bucket, bytes (bucket_cap_mb=25; Li et al., VLDB 2020,
#: Sec. 4): the ``fsdp`` preset's (FSDP's NO_SHARD runs DDP's reducer).
DDP_BUCKET_BYTES = 25e6
#: Megatron-Core's default bucket, parameters: max(40M, 1M x the DP x CP size)
#: (megatron/core/distributed/distributed_data_parallel.py, "larger DP sizes need larger
#: buckets to ensure collectives do not become latency-bound").
MEGATRON_BUCKET_MIN_PARAMS = 40e6
MEGATRON_BUCKET_PARAMS_PER_RANK = 1e6
#: DeepSpeed's ZeRO ``reduce_bucket_size`` default, elements (deepspeed/runtime/zero/
#: config.py: 5e8).
DEEPSPEED_BUCKET_ELEMENTS = 5e8


def dp_bucket_bytes_for(framework: str, dp_cp: int, reduce_bytes: int) -> float:
    """The DP gradient bucket ``framework`` (a preset name) uses by default, bytes, for a
    DP x CP group of ``dp_cp`` ranks reducing ``reduce_bytes``-byte elements."""
    if framework == "megatron":
        return max(MEGATRON_BUCKET_MIN_PARAMS,
                   MEGATRON_BUCKET_PARAMS_PER_RANK * dp_cp) * reduce_bytes
    if framework == "deepspeed":
        return DEEPSPEED_BUCKET_ELEMENTS * reduce_bytes
    return DDP_BUCKET_BYTES


def framed(plan: Plan, spec, reduce_bytes: int) -> Plan:
    """``plan`` with the semantics a workload's plan section (``spec``, a
    :class:`~simwall.config.PlanSpec`) asks for: its framework's preset and the keys it
    sets (:func:`with_framework`), and its DP bucket or the framework's default
    (:func:`dp_bucket_bytes_for`, ``reduce_bytes`` per gradient element). Used wherever a
    plan is built or changed (resolution, plan search, ``check``'s fixes), so a changed
    plan is run the way its framework would run it."""
    plan = with_framework(plan, spec.framework,
                          **{k: getattr(spec, k) for k in SEMANTIC_KEYS})
    return replace(plan, dp_bucket_bytes=spec.dp_bucket_bytes or dp_bucket_bytes_for(
        plan.framework, plan.dp_cp, reduce_bytes))


def runs_plan(name: str, plan: Plan) -> bool:
    """Whether the framework ``name`` runs ``plan``: a rule by its own name (fsdp2), a
    preset by any rule it stands for (fsdp covers FSDP and FSDP2)."""
    names = frameworks_for(plan)
    return name in names or any(_PRESET_OF[f] == name for f in names)


def plan_record(plan: Plan) -> dict:
    """``plan.as_dict()`` with ``runs_on``: the frameworks that run it
    (:func:`framework_label`), which ``plan.framework`` (the preset its communication is
    costed with) does not say when it was chosen by ``auto``."""
    return {**plan.as_dict(), "runs_on": framework_label(plan)}
