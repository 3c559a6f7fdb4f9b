"""Plan resolution: a validated workload on a cluster -> a :class:`~simwall.plan.Plan`.

``resolve`` turns a validated :class:`~simwall.config.Workload` and
:class:`~simwall.config.ClusterSpec` into a :class:`Plan` (``dp: auto`` and ``nodes:
auto`` filled in) and checks everything that needs both, raising a located
:class:`~simwall.errors.ConfigError` naming the key at fault. Checks that need the
model's parameter counts sit above the plan layer (:mod:`simwall.model.limits`).
"""

from __future__ import annotations

import math

from ..config import PRECISION_BYTES, ClusterSpec, Workload
from ..errors import ConfigError
from . import limits
from .frameworks import framed, frameworks_for, runs_plan
from .layout import Plan, balanced_split

__all__ = ["cluster_devices", "resolve"]


def cluster_devices(cluster: ClusterSpec, workload: Workload) -> int:
    """Devices in ``cluster``; ``nodes: auto`` sizes it for the workload.

    With ``nodes: auto`` the cluster gets ``defaults.devices`` devices when the workload
    names a count (the size of the published run it reproduces), else just enough for
    one replica of the plan (``tp x cp x pp x dp``, ``dp: auto`` counting as 1); either way
    rounded up to whole nodes (:func:`resolve` may leave the devices beyond the count idle).
    A count given by ``--set defaults.devices`` on a cluster whose node count is fixed,
    which would not honour it, is refused rather than silently replaced.
    """
    per_node, asked = cluster.devices_per_node, workload.defaults.devices
    if (asked is not None and workload.origin("defaults.devices") == "--set"
            and cluster.nodes != "auto" and asked != cluster.nodes * per_node):
        raise ConfigError(workload.file, "defaults.devices", f"{asked} (from --set) is not "
                          f"used: cluster {cluster.name} has a fixed "
                          f"{cluster.nodes * per_node} devices ({cluster.nodes} node"
                          f"{'s' if cluster.nodes != 1 else ''}); set cluster.nodes instead")
    if cluster.nodes != "auto":
        return cluster.nodes * per_node
    plan = workload.plan
    want = asked or plan.tp * plan.cp * plan.pp * (1 if plan.dp == "auto" else plan.dp)
    return math.ceil(want / per_node) * per_node


def _check_experts(model, spec, dp: int, fail) -> None:
    """Expert parallelism fits the model and the DP ranks it is carved from."""
    if not model.moe:
        raise fail("plan.ep", f"needs a mixture-of-experts model (model.experts), got "
                   f"ep {spec.ep} for a dense model")
    if model.experts % spec.ep:
        raise fail("plan.ep", f"must divide model.experts ({model.experts}), got {spec.ep}")
    if dp % spec.ep:
        raise fail("plan.ep", f"must divide the data-parallel x context-parallel degree "
                   f"({dp}): expert parallelism is carved out of those ranks, got {spec.ep}")
    if model.moe_ffn % spec.tp:
        raise fail("plan.tp", f"must divide model.moe_ffn_hidden ({model.moe_ffn}), got "
                   f"{spec.tp}")
    if spec.tp > 1 and not spec.sequence_parallel:
        # Megatron-Core requires SP with TP for MoE layers (megatron/training/arguments.py:
        # "When using MoE and tensor parallelism, sequence parallelism must be used").
        raise fail("plan.sequence_parallel", "must be true for a mixture-of-experts model "
                   f"with plan.tp > 1 (tp {spec.tp}), as Megatron-Core requires")


def _dp_shard(spec, dp_cp: int, fail) -> int:
    """``plan.dp_shard`` checked against the DP x CP ranks it splits: 0 (every rank, also
    when it names all of them, so both spellings are one plan) or the shard group size."""
    shard = spec.dp_shard
    if shard is None or shard == dp_cp:
        return 0
    if shard == 1:
        raise fail("plan.dp_shard", "1 shards nothing: every rank holds the whole model "
                   "states, which is plain data parallelism (plan.zero 0)")
    if dp_cp % shard:
        raise fail("plan.dp_shard", f"must divide plan.dp x plan.cp ({dp_cp}), got {shard}")
    if spec.zero < 1:
        raise fail("plan.dp_shard", f"shards ZeRO's states: needs plan.zero >= 1, got zero "
                   f"{spec.zero} (with {shard} of {dp_cp} ranks)")
    if spec.ep > 1:
        raise fail("plan.dp_shard", "hybrid sharding with expert parallelism (plan.ep > 1) "
                   "is not modelled")
    if spec.offload != "none":
        raise fail("plan.dp_shard", f"hybrid sharding with offload is not modelled, got "
                   f"plan.offload {spec.offload}")
    return shard


def resolve(workload: Workload, cluster: ClusterSpec) -> tuple[Plan, ClusterSpec]:
    """The resolved plan and the cluster with ``nodes`` fixed; ConfigError if invalid.

    Checks, each naming the key at fault: TP divides the heads, the KV heads (or is a
    multiple of them) and the FFN width; a TP group larger than a node spans whole nodes;
    ``virtual_stages > 1`` only with the interleaved schedule; at least one layer per
    model chunk; ``stage_layers`` has one entry per chunk and sums to ``model.layers``;
    ``2 x cp`` divides the sequence; ``tp x cp x pp x dp`` equals the cluster's device
    count; the global batch splits into whole micro-batches per replica (a multiple of ``pp`` for the interleaved schedule).
    """
    limits.check_workload(workload)  # sizes far beyond any real run: refuse fast
    limits.check_cluster(cluster)
    src = workload.file
    model, train, spec = workload.model, workload.training, workload.plan
    world = cluster_devices(cluster, workload)
    auto_nodes = cluster.nodes == "auto"
    if auto_nodes:
        cluster = cluster.model_copy(update={"nodes": world // cluster.devices_per_node})

    def fail(key: str, msg: str) -> ConfigError:
        return ConfigError(src, key, msg, line=workload.line(key))

    if model.heads % spec.tp:
        raise fail("plan.tp", f"must divide model.heads ({model.heads}), got {spec.tp}")
    kv = model.kv_heads_
    if kv % spec.tp and spec.tp % kv:
        raise fail("plan.tp", f"must divide model.kv_heads ({kv}) or be a multiple of it, "
                   f"got {spec.tp}")
    if model.ffn % spec.tp:
        raise fail("plan.tp", f"must divide model.ffn_hidden ({model.ffn}), got {spec.tp}")
    if spec.tp > cluster.devices_per_node and spec.tp % cluster.devices_per_node:
        raise fail("plan.tp", f"a TP group larger than a node must span whole nodes "
                   f"(multiples of {cluster.devices_per_node} devices), got {spec.tp}")
    if spec.virtual_stages > 1 and spec.schedule != "interleaved":
        raise fail("plan.virtual_stages", f"must be 1 unless plan.schedule is interleaved, "
                   f"got {spec.virtual_stages} with schedule {spec.schedule}")
    if spec.schedule == "interleaved" and spec.pp == 1:
        raise fail("plan.schedule", "interleaved needs plan.pp > 1, got pp 1")
    chunks = spec.pp * spec.virtual_stages
    if model.layers < chunks:
        raise fail("plan.pp", f"model.layers ({model.layers}) must be at least plan.pp x "
                   f"plan.virtual_stages ({spec.pp} x {spec.virtual_stages} = {chunks})")
    if spec.stage_layers is not None:
        if len(spec.stage_layers) != chunks:
            raise fail("plan.stage_layers", f"must list {chunks} entries (plan.pp x "
                       f"plan.virtual_stages), got {len(spec.stage_layers)}")
        if min(spec.stage_layers) < 1:
            raise fail("plan.stage_layers", f"every chunk needs at least 1 layer, got "
                       f"{list(spec.stage_layers)}")
        if sum(spec.stage_layers) != model.layers:
            raise fail("plan.stage_layers", f"must sum to model.layers ({model.layers}), "
                       f"got {sum(spec.stage_layers)}")
        stage_layers = tuple(spec.stage_layers)
    else:
        stage_layers = balanced_split(model.layers, chunks)

    if spec.cp > 1 and model.seq_len % (2 * spec.cp):
        # Causal load balancing cuts each sequence into 2 x cp chunks, rank r holding
        # chunks r and 2cp - 1 - r (Megatron-Core, megatron/core/models/common/embeddings/
        # rope_utils.py; Transformer Engine's context-parallel attention).
        raise fail("plan.cp", f"2 x plan.cp must divide model.seq_len ({model.seq_len}), "
                   f"got cp {spec.cp}")
    mp = spec.tp * spec.cp * spec.pp
    # Without context parallelism the messages read as they always did.
    mp_keys = "plan.tp x plan.cp x plan.pp" if spec.cp > 1 else "plan.tp x plan.pp"
    mp_vals = f"{spec.tp} x {spec.cp} x {spec.pp}" if spec.cp > 1 else f"{spec.tp} x {spec.pp}"
    sized_by = (f"nodes: auto, sized by defaults.devices = {workload.defaults.devices}"
                if auto_nodes and workload.defaults.devices else
                f"{cluster.nodes} nodes x {cluster.devices_per_node}")
    if spec.dp == "auto":
        if (world % mp and auto_nodes and workload.defaults.devices
                and workload.defaults.devices % mp == 0):
            # Whole nodes hold more devices than the published run used (8,192 GPUs on
            # NVL72 racks: 114 racks of 72 = 8,208): the run's devices are the first
            # defaults.devices, the rest of the last nodes stay idle (spares).
            world = workload.defaults.devices
        if world % mp:
            if auto_nodes and workload.defaults.devices:
                raise fail("defaults.devices", f"must be a multiple of {mp_keys} = "
                           f"{mp} (after rounding up to whole nodes: {world}), got "
                           f"{workload.defaults.devices}")
            raise ConfigError(cluster.file, "nodes", f"the cluster's {world} devices "
                              f"({sized_by}) are not divisible by {mp_keys} = {mp}",
                              line=cluster.line("nodes"))
        dp = world // mp
    else:
        dp = spec.dp
        if mp * dp != world:
            raise fail("plan.dp", f"{mp_keys} x plan.dp = {mp_vals} x "
                       f"{dp} = {mp * dp} must equal the cluster's {world} devices "
                       f"({cluster.name}: {sized_by})")
    if spec.ep > 1 or model.moe:
        _check_experts(model, spec, dp * spec.cp, fail)
    if train.global_batch % (dp * train.micro_batch):
        raise fail("training.global_batch", f"must be divisible by plan.dp x "
                   f"training.micro_batch = {dp} x {train.micro_batch}, got {train.global_batch}")
    dp_shard = _dp_shard(spec, dp * spec.cp, fail)
    if spec.ep_overlap and spec.ep < 2:
        raise fail("plan.ep_overlap", f"overlaps the expert-parallel all-to-alls: needs "
                   f"plan.ep > 1, got ep {spec.ep}")
    if spec.ep_overlap and spec.schedule not in ("1f1b", "interleaved"):
        raise fail("plan.ep_overlap", f"is modelled with the 1f1b and interleaved schedules "
                   f"(Megatron-Core's combined 1F1B), got schedule {spec.schedule}")
    m = train.global_batch // (dp * train.micro_batch)
    if spec.schedule == "interleaved" and m % spec.pp:
        raise fail("training.global_batch", f"interleaved schedule needs micro-batches per "
                   f"replica ({m}) to be a multiple of plan.pp ({spec.pp})")

    plan = Plan(
        tp=spec.tp, pp=spec.pp, dp=dp, virtual_stages=spec.virtual_stages,
        sequence_parallel=spec.sequence_parallel and spec.tp > 1, zero=spec.zero,
        recompute=spec.recompute, schedule=spec.schedule, micro_batch=train.micro_batch,
        global_batch=train.global_batch, stage_layers=stage_layers,
        collective=spec.collective,
        dp_overlap=spec.dp_overlap, pp_scatter_gather=spec.pp_scatter_gather,
        offload=spec.offload, cp=spec.cp, cp_comm=spec.cp_comm, ep=spec.ep,
        dp_shard=dp_shard, ep_overlap=spec.ep_overlap,
    )
    if spec.framework != "auto" and not runs_plan(spec.framework, plan):
        raise fail("plan.framework", f"{spec.framework} does not run this plan (tp {plan.tp}, "
                   f"pp {plan.pp}, zero {plan.zero}, schedule {plan.schedule}, offload "
                   f"{plan.offload}; see simwall/plan/frameworks.py); runs on: "
                   f"{', '.join(frameworks_for(plan)) or 'none known'}")
    plan = framed(plan, spec, PRECISION_BYTES[train.grad_reduce_precision_])
    limits.check_resolved(workload, cluster, plan)
    return plan, cluster
