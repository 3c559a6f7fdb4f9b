"""Durations of the tasks of one training step, per pipeline stage (pure, no simpy).

The engine schedules these; the analytical fast path (plan search) sums them directly.
Everything here is for one representative rank of a stage (all ranks of a stage are
alike on a symmetric cluster) unless ``symmetric`` is off (per-device runs).

:func:`stage_cost` composes one module per concern (Narayanan et al. 2021, "Efficient
Large-Scale Language Model Training on GPU Clusters Using Megatron-LM", SC21, Sec. 2.3 and
4.1; Korthikanti et al. 2022, Sec. 4.2.2; Rajbhandari et al. 2020, "ZeRO", Sec. 5):
compute (:mod:`.compute`), tensor parallelism (:mod:`.tp`), context parallelism
(:mod:`.cp`), pipeline sends (:mod:`.pp`),
ZeRO-3 (:mod:`.zero`), DP gradient buckets and the tied embedding (:mod:`.dp`), the
optimizer (:mod:`.optimizer`) and offload (:mod:`.offload`). Each returns the traffic it
costed (:class:`~.traffic.Traffic`); ``StageCost.traffic`` is their concatenation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import PRECISION_BYTES, DeviceSpec, ModelSpec, TrainingSpec
from ..memo import memoized
from ..model import memory
from ..model.moe import chunk_moe_layers
from ..model.ops import (
    activation_bytes_per_layer,
    head_wgrad_activation_bytes,
    layer_key,
    layer_wgrad_activation_bytes,
)
from ..plan import Plan, stage_classes
from .compute import layer_compute_s, moe_layer_compute_s, op_times
from .contention import overlap_loss
from .cp import cp_cost
from .dp import bucket_cost, micro_batch_exposed_s, tied_embedding_cost
from .ep import EPCost, ep_cost, ep_exposed_s
from .optimizer import gather_exposed_s, optimizer_s, parameter_gather_cost
from .pp import pp_cost
from .tp import TPCost, tp_cost, with_overlap
from .traffic import Traffic
from .zero import exposed_s, zero3_cost

__all__ = ["ChunkCost", "StageCost", "StageTransfers", "stage_cost"]


@dataclass(frozen=True)
class ChunkCost:
    """One model chunk on one stage, per micro-batch. Times in seconds."""

    chunk: int                 # global chunk index (0 .. pp * v - 1)
    layers: int
    fwd_compute_s: float
    fwd_tp_s: float
    bwd_compute_s: float       # includes recompute
    bwd_tp_s: float
    zero3_fwd_exposed_s: float  # ZeRO communication exposed in the pipeline: ZeRO-3 gathers
    zero3_bwd_exposed_s: float  # and reduce-scatters; ZeRO-2's per-micro-batch reductions
    grad_bytes: float          # bytes the DP reduction moves for this chunk's gradients (reduction dtype)
    activation_bytes: float    # activation bytes kept per micro-batch until its backward
    # The weight-gradient GEMMs within bwd_compute_s (the W pass of a split backward, Qi
    # et al. 2024; only plan.schedule zero_bubble runs it apart), and the bytes a
    # deferred W keeps per micro-batch from its B to its W (model.ops.wgrad_activation_bytes).
    bwd_weight_s: float = 0.0
    wgrad_activation_bytes: float = 0.0

    @property
    def fwd_s(self) -> float:
        return self.fwd_compute_s + self.fwd_tp_s + self.zero3_fwd_exposed_s

    @property
    def bwd_s(self) -> float:
        return self.bwd_compute_s + self.bwd_tp_s + self.zero3_bwd_exposed_s


@dataclass(frozen=True)
class StageTransfers:
    """The transfers of a stage that per-device runs put on the engine's shared network
    as flows, each as the collectives it is made of (:class:`~.traffic.Traffic`, run one
    after another, each by all its groups at once): the very records the durations of
    :class:`StageCost` were costed from, so the engine and the costing share one source.
    Sends name every DP replica's pairs; the engine keeps those of the sending replica."""

    pp_fwd: tuple[Traffic, ...] = ()                # one micro-batch's activation send
    pp_bwd: tuple[Traffic, ...] = ()                # its gradient send
    buckets: tuple[tuple[Traffic, ...], ...] = ()   # one per DP bucket, in ready order


@dataclass(frozen=True)
class StageCost:
    """All task durations of one pipeline stage's representative rank."""

    stage: int
    chunks: tuple[ChunkCost, ...]     # local chunks in order (virtual chunk 0 .. v-1)
    pp_fwd_s: float                   # activation of one micro-batch to the next stage
    pp_bwd_s: float                   # its gradient back to the previous stage
    bucket_bytes: tuple[float, ...]   # DP buckets of the whole stage, in ready order
    bucket_s: tuple[float, ...]       # their reduction times
    tied_embedding_s: float           # embedding-gradient all-reduce first <-> last stage
    optimizer_s: float
    post_optimizer_s: float           # ZeRO 1/2 all-gather of updated parameters (exposed part)
    traffic: tuple[Traffic, ...] = ()  # the collectives above, counted per step
    transfers: StageTransfers = StageTransfers()   # sends and buckets as collectives
    param_gather_hidden_s: float = 0.0  # its part hidden under the next forward
    # Share of the compute rate a collective running beside it takes (.contention): the
    # engine slows the backward by it while DP buckets overlap it.
    overlap_loss: float = 0.0


@dataclass(frozen=True)
class _LayerCost:
    """One layer of a stage per micro-batch: the parts every chunk multiplies."""

    fwd_compute_s: float
    bwd_compute_s: float
    zero3_fwd_exposed_s: float
    zero3_bwd_exposed_s: float
    params: int
    activation_bytes: float
    bwd_weight_s: float = 0.0
    wgrad_activation_bytes: float = 0.0


@dataclass(frozen=True)
class _MoEDelta:
    """What an MoE layer adds to (or takes from) a dense layer of the same model, per
    micro-batch: compute, and the token exchange (:mod:`.ep`) in place of the dense MLP's
    TP all-gather / reduce-scatter pair (the MoE layer's router takes the SP shard)."""

    fwd_compute_s: float = 0.0
    bwd_compute_s: float = 0.0
    fwd_comm_s: float = 0.0
    bwd_comm_s: float = 0.0
    params: int = 0
    activation_bytes: float = 0.0
    bwd_weight_s: float = 0.0       # its W pass (zero_bubble), within bwd_compute_s


def _chunk_cost(model: ModelSpec, training: TrainingSpec, plan: Plan, chunk: int,
                n_layers: int, layer: _LayerCost, tp: TPCost, times: dict[str, float],
                speed: float, moe: _MoEDelta = _MoEDelta()) -> ChunkCost:
    """Chunk ``chunk`` of ``n_layers`` layers, with the embedding on chunk 0 and the LM
    head on the last chunk."""
    # DP reduces the gradients in the reduction dtype (config.MIXED_PRECISION_PRESETS).
    grad_b = PRECISION_BYTES[training.grad_reduce_precision_]
    fwd_c = n_layers * layer.fwd_compute_s
    bwd_c = n_layers * layer.bwd_compute_s
    fwd_tp = n_layers * tp.layer_fwd_s
    bwd_tp = n_layers * tp.layer_bwd_s
    grads = n_layers * layer.params * grad_b
    act = n_layers * layer.activation_bytes
    wgt = n_layers * layer.bwd_weight_s
    wgt_act = n_layers * layer.wgrad_activation_bytes
    n_moe = chunk_moe_layers(model, plan, chunk) if model.moe else 0   # dense: none
    if n_moe:
        # Expert-parallel all-to-alls count as model-parallel communication (tp_comm).
        fwd_c += n_moe * moe.fwd_compute_s
        bwd_c += n_moe * moe.bwd_compute_s
        fwd_tp += n_moe * moe.fwd_comm_s
        bwd_tp += n_moe * moe.bwd_comm_s
        grads += n_moe * moe.params * grad_b
        act += n_moe * moe.activation_bytes
        wgt += n_moe * moe.bwd_weight_s
    if chunk == 0:
        fwd_c += times["emb_fwd"] / speed
        bwd_c += times["emb_bwd"] / speed
        fwd_tp += tp.embedding_s
        grads += memory.embedding_params(model, plan.tp) * grad_b
        act += memory.embedding_activation_bytes(model, plan)
    if chunk == plan.chunks - 1:
        fwd_c += times["head_fwd"] / speed
        bwd_c += times["head_bwd"] / speed
        fwd_tp += tp.head_fwd_s
        bwd_tp += tp.head_bwd_s
        grads += memory.head_params(model, plan.tp, plan.pp) * grad_b
        act += memory.output_activation_bytes(model, training, plan)
        wgt += times["head_wgrad"] / speed
        wgt_act += head_wgrad_activation_bytes(model, *layer_key(training, plan))
    return ChunkCost(
        chunk=chunk, layers=n_layers, fwd_compute_s=fwd_c, fwd_tp_s=fwd_tp,
        bwd_compute_s=bwd_c, bwd_tp_s=bwd_tp,
        zero3_fwd_exposed_s=n_layers * layer.zero3_fwd_exposed_s,
        zero3_bwd_exposed_s=n_layers * layer.zero3_bwd_exposed_s,
        grad_bytes=grads, activation_bytes=act, bwd_weight_s=wgt,
        wgrad_activation_bytes=wgt_act)


@memoized(maxsize=4096)
def stage_cost(model: ModelSpec, training: TrainingSpec, plan: Plan, device: DeviceSpec,
               topology, stage: int, speed: float = 1.0, symmetric: bool = False
               ) -> StageCost:
    """Durations for ``stage``; ``speed`` < 1 slows its compute (a straggler).

    ``symmetric``: the cluster is fault-free and its stages are translations of each
    other, so stage 0's groups (and the 0 -> 1 pipeline boundary) stand for every
    stage's; see :func:`simwall.costing.groups.placement`. Memoised: plans and sweeps that
    share shapes reuse it (the topology is keyed by identity; it is immutable once built).

    On a symmetric run of a dense model without offload, a stage reads nothing of its
    index beyond its class (:func:`simwall.plan.stage_classes`: first, last, the layers
    of its chunks): its groups are stage 0's, its roles and layer counts the class's. So the
    first stage of its class is costed and the others take its costs with their own
    stage and chunk indices (tests/test_stage_classes.py compares every stage with its
    own costing).
    """
    if symmetric and not model.moe and plan.offload == "none":
        first = stage_classes(plan.stage_layers, plan.pp, plan.virtual_stages)[stage]
        if first != stage:
            return _relabelled(_stage_cost(model, training, plan, device, topology, first,
                                           speed, symmetric), plan, stage)
    return _stage_cost(model, training, plan, device, topology, stage, speed, symmetric)


def _relabelled(sc: StageCost, plan: Plan, stage: int) -> StageCost:
    """``sc`` (a stage of the same class) as stage ``stage``: its own stage and global
    chunk indices, every duration, byte count and record the same."""
    return replace(sc, stage=stage, chunks=tuple(
        replace(c, chunk=local * plan.pp + stage) for local, c in enumerate(sc.chunks)))


@memoized(maxsize=4096)
def _stage_cost(model: ModelSpec, training: TrainingSpec, plan: Plan, device: DeviceSpec,
                topology, stage: int, speed: float, symmetric: bool) -> StageCost:
    """:func:`stage_cost` of ``stage`` costed on its own."""
    times = op_times(model, training, plan, device)
    # The per-layer figures read the layer shape only (model.ops.layer_key): keyed on it,
    # plans that differ in pp, dp, ZeRO or schedule share their memo entries.
    by_layer = layer_key(training, plan)
    layer_fwd_s, layer_bwd_s = layer_compute_s(times, speed)
    tp_alone = tp_cost(model, training, plan, topology, stage, symmetric)
    tp = with_overlap(tp_alone, plan, times["layer_fwd_gemm"] / speed,
                      times["layer_bwd_gemm"] / speed)
    cp = cp_cost(model, training, plan, device, topology, stage, symmetric, speed)
    if plan.cp > 1:  # the exposed K/V exchange rides with the layer's TP time (.cp)
        tp = replace(tp, layer_fwd_s=tp.layer_fwd_s + cp.layer_fwd_s,
                     layer_bwd_s=tp.layer_bwd_s + cp.layer_bwd_s,
                     traffic=tp.traffic + cp.traffic)
    z3 = zero3_cost(model, training, plan, topology, stage, symmetric)
    loss = overlap_loss(device)
    z3_fwd, z3_bwd = exposed_s(z3, plan.layers_on_stage(stage), layer_fwd_s, layer_bwd_s,
                               tp.layer_fwd_s, tp.layer_bwd_s, loss)
    layer = _LayerCost(fwd_compute_s=layer_fwd_s, bwd_compute_s=layer_bwd_s,
                       zero3_fwd_exposed_s=z3_fwd, zero3_bwd_exposed_s=z3_bwd,
                       params=memory.layer_params(model, plan.tp),
                       activation_bytes=activation_bytes_per_layer(model, *by_layer),
                       bwd_weight_s=times["layer_wgrad"] / speed,
                       wgrad_activation_bytes=layer_wgrad_activation_bytes(model, *by_layer))
    ep = ep_cost(model, training, plan, topology, stage, symmetric)
    moe = _moe_delta(model, training, plan, ep, times, speed, layer,
                     tp_alone, loss) if model.moe else _MoEDelta()
    chunks = tuple(_chunk_cost(model, training, plan, local * plan.pp + stage, n_layers,
                               layer, tp, times, speed, moe)
                   for local, n_layers in enumerate(plan.chunk_layers(stage)))
    pp = pp_cost(model, training, plan, topology, stage, symmetric)
    # The routed experts' gradients are reduced over expert DP, the rest over DP x CP.
    expert_grads = (memory.stage_expert_params(model, plan, stage)
                    * PRECISION_BYTES[training.grad_reduce_precision_] if model.moe else 0.0)
    grads = bucket_cost(plan, topology, stage, sum(c.grad_bytes for c in chunks), symmetric,
                        expert_grads)
    # ZeRO-2 reducing every micro-batch: the earlier reductions' excess, per micro-batch
    # and chunk, joins the backward (costing.dp.micro_batch_exposed_s).
    per_mb = micro_batch_exposed_s(plan, sum(grads.bucket_s), sum(c.bwd_s for c in chunks),
                                   loss)
    if per_mb > 0:
        share = per_mb / (plan.micro_batches * len(chunks))
        chunks = tuple(replace(c, zero3_bwd_exposed_s=c.zero3_bwd_exposed_s + share)
                       for c in chunks)
    tied = tied_embedding_cost(model, training, plan, topology, stage, symmetric)
    opt = optimizer_s(model, training, plan, device, topology, stage, speed,
                      backward_s=sum(c.bwd_compute_s for c in chunks))
    post = parameter_gather_cost(model, training, plan, topology, stage, symmetric)
    transfers = StageTransfers(pp_fwd=pp.fwd_parts, pp_bwd=pp.bwd_parts,
                               buckets=grads.bucket_parts)
    post_s = gather_exposed_s(plan, post.s, plan.layers_on_stage(stage),
                              sum(c.fwd_s for c in chunks), loss)
    return StageCost(stage=stage, chunks=chunks, pp_fwd_s=pp.fwd_s, pp_bwd_s=pp.bwd_s,
                     bucket_bytes=grads.bucket_bytes, bucket_s=grads.bucket_s,
                     tied_embedding_s=tied.s, optimizer_s=opt, post_optimizer_s=post_s,
                     traffic=(tp.traffic + z3.traffic + pp.traffic + grads.traffic
                              + tied.traffic + post.traffic + ep.traffic),
                     transfers=transfers, param_gather_hidden_s=post.s - post_s,
                     overlap_loss=loss)


def _moe_delta(model: ModelSpec, training: TrainingSpec, plan: Plan, ep: EPCost,
               times: dict[str, float], speed: float, layer: _LayerCost,
               tp: TPCost, loss: float = 0.0) -> _MoEDelta:
    """An MoE layer against a dense one (see :class:`_MoEDelta`); ``ep``: the stage's
    token exchange; ``loss``: the compute a collective beside it takes
    (:func:`.contention.overlap_loss`)."""
    fwd_s, bwd_s = moe_layer_compute_s(times, speed)
    # The dense MLP's TP pair is half of a dense layer's TP collectives in each pass (the
    # attention's pair is the other half; ``tp`` is tp_cost before any overlap or CP), its
    # recompute repeat included. The dispatcher's collectives are exposed, unless
    # plan.ep_overlap runs each pass's all-to-alls beside the other micro-batch's opposite
    # pass (ep_exposed_s).
    ep_fwd, ep_bwd = ep_exposed_s(plan, ep, fwd_s, bwd_s, loss)
    return _MoEDelta(
        fwd_compute_s=fwd_s - layer.fwd_compute_s, bwd_compute_s=bwd_s - layer.bwd_compute_s,
        fwd_comm_s=ep_fwd - tp.layer_fwd_s / 2,
        bwd_comm_s=ep_bwd - tp.layer_bwd_s / 2,
        bwd_weight_s=(times["moe_layer_wgrad"] - times["layer_wgrad"]) / speed,
        params=memory.layer_params(model, plan.tp, moe=True, ep=plan.ep) - layer.params,
        activation_bytes=(activation_bytes_per_layer(model, *layer_key(training, plan),
                                                     moe=True)
                          - layer.activation_bytes))
