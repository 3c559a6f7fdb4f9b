"""Closed-form per-device memory: model states, activations, buffers, by pipeline stage.

Pure functions (no simpy): plan search and the engine share them. Every count is in
bytes unless its name says otherwise; parameter counts are element counts. Each formula
cites its source next to it; docs/memory-model.md explains every term.

Notation (Korthikanti et al. 2022, Sec. 4): s sequence length, b micro-batch size,
h hidden size, a attention heads, t tensor-parallel degree, p pipeline stages,
v virtual stages (interleaving), m micro-batches per DP replica, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from operator import le

from ..config import PRECISION_BYTES, ClusterSpec, ModelSpec, TrainingSpec
from ..memo import memoized, table
from ..plan import Plan, stage_classes
from ..plan.schedules import interleaved, tasks_for
from . import moe as moe_layers
from .ops import (
    FP32_BYTES,
    MASK_BYTES,
    activation_bytes_per_layer,
    activation_element_bytes,
    head_wgrad_activation_bytes,
    kv_heads_per_device,
    layer_key,
    layer_wgrad_activation_bytes,
    uses_flash,
)

__all__ = [
    "FRAGMENTATION",
    "GRAD_BUCKETS_IN_FLIGHT",
    "RESERVED_BYTES",
    "ZERO3_MAX_LIVE_PARAMS",
    "ZERO3_PREFETCH_LAYERS",
    "MemoryModel",
    "StageMemory",
    "cp_kv_buffer_bytes",
    "device_memory",
    "embedding_activation_bytes",
    "embedding_params",
    "fits",
    "fp8_gemm_params",
    "gathered_buffer_bytes",
    "head_params",
    "in_flight_micro_batches",
    "korthikanti_activation_bytes",
    "layer_params",
    "local_tokens",
    "logits_buffer_bytes",
    "memory_reserve",
    "model_state_bytes",
    "optimizer_shard_params",
    "output_activation_bytes",
    "stage_activation_bytes",
    "stage_layer_kinds",
    "stage_matrix_shapes",
    "stage_optimizer_shard_params",
    "stage_params",
    "total_params",
    "zero3_gathered_params",
    "zero_bubble_held",
]

# ---------------------------------------------------------------------------------------
# Constants (each with its source)

# FP32_BYTES (an fp32 element) and MASK_BYTES (a dropout-mask element) come from .ops.
#: Bytes per element of the token-id input of the embedding (int64, as in Megatron-LM's
#: ``theoretical_memory_usage.py``: "8 * seq_length * micro_batch_size").
TOKEN_ID_BYTES = 8
#: Reserved device memory the process cannot use for tensors (``cluster.memory_reserved``
#: changes it): CUDA context and loaded kernels, library workspaces, NCCL buffers.
#: An ESTIMATE from cited parts, not a measurement of ours: a bare PyTorch process shows
#: ~0.8 GB used after CUDA initialisation (pytorch/pytorch issue #34323, 781 MB in
#: nvidia-smi), rounded up to 1 GiB with the cuBLAS workspace; NCCL keeps per channel and
#: peer a buffer of NCCL_BUFFSIZE (default 4 MiB, NCCL User Guide, "Environment
#: Variables") per protocol, send and receive, for each communicator (TP, PP, DP): about
#: 0.5 GiB for a few communicators of up to 32 channels. Total 1.5 GiB.
RESERVED_BYTES = 1.5 * 2**30
#: Allocator fragmentation, as a fraction of the transient bytes at the peak, the
#: activations and buffers allocated and freed every step (``cluster.
#: memory_fragmentation`` changes it): PyTorch's caching allocator cannot reuse split free
#: blocks for larger requests (PyTorch docs, "CUDA memory management"; pytorch/pytorch PR
#: 44742 shows 13 GB of split free blocks on a 32 GB card in an adverse case) and
#: recomputation / pipeline schedules with irregular tensor lifetimes waste up to 43 % in
#: the worst case measured (arXiv 2507.16274, abstract). 5 % is our ESTIMATE for a steady
#: training loop whose tensor sizes repeat every step, not a fitted value. The model
#: states are not in the base: they are allocated once and never freed, so no free block
#: is split under them (the allocator rounds a large request up to a 2 MiB multiple and
#: gives it a segment of that size, c10/cuda/CUDACachingAllocator.cpp, kRoundLarge;
#: Megatron-Core holds weights and gradients in one contiguous buffer per dtype,
#: megatron/core/distributed/param_and_grad_buffer.py). Fragmentation is what churn
#: leaves: blocks freed and split again by the next step's tensors.
FRAGMENTATION = 0.05
#: Gradient buckets live at once in DP: one being reduced while the next fills (double
#: buffering). PyTorch DDP overlaps bucket all-reduce with backward (Li et al., VLDB 2020,
#: Sec. 3.2: gradient bucketing, overlap); two buckets of ``plan.dp_bucket_bytes`` is our
#: estimate of the steady state.
GRAD_BUCKETS_IN_FLIGHT = 2
#: ZeRO-3 keeps the current layer's gathered parameters and prefetches the next one
#: (Rajbhandari et al. 2020, Sec. 7.2.2: each partition's parameters are gathered just
#: before use and discarded after). Two layers' worth (current + prefetched) is an estimate.
ZERO3_PREFETCH_LAYERS = 2
#: DeepSpeed caps the gathered (live) parameters of ZeRO-3 per device: stage3_max_live_
#: parameters, default 1e9 parameters (DeepSpeed configuration JSON docs, "ZeRO
#: optimizations"; its prefetch, stage3_prefetch_bucket_size, defaults to 5e8 and falls
#: within it). PyTorch FSDP keeps one or two FSDP units gathered (limit_all_gathers), which
#: the two-layer count stands for.
ZERO3_MAX_LIVE_PARAMS = 1.0e9

# Optimizer states per parameter (bytes), not counting the fp32 master copy.
# Adam: momentum + variance, fp32 (Rajbhandari et al. 2020, Sec. 3.1: K = 12 = master 4
# + momentum 4 + variance 4 with mixed precision).
_ADAM_MOMENTS_BYTES = 2 * FP32_BYTES
# SGD with momentum: one fp32 momentum buffer (Sutskever et al. 2013, Sec. 2; ZeRO Sec. 3.1
# names momentum as SGD's optimizer state).
_SGD_MOMENTS_BYTES = FP32_BYTES
# Shampoo without matrix shapes: for an n x n matrix the statistics L, R (n x n each) and
# their inverse 4th roots (Gupta et al. 2018, Algorithm 1) hold 4 n^2 fp32 values, i.e.
# 4 values per parameter. A documented square-matrix approximation.
_SHAMPOO_SQUARE_VALUES_PER_PARAM = 4


# ---------------------------------------------------------------------------------------
# Parameter counts


def _has_biases(model: ModelSpec) -> bool:
    """GPT-2/3 and BERT (LayerNorm) use biases in every linear layer; Llama-style
    (RMSNorm) models drop them (Touvron et al. 2023, Llama, Sec. 2.2). simwall ties the two:
    ``norm: rmsnorm`` means no biases and rotary (not learned) positions."""
    return model.norm == "layernorm"


def _norm_params(model: ModelSpec) -> int:
    """One normalisation layer: LayerNorm has gain + bias (Ba et al. 2016, Sec. 3), RMSNorm
    gain only (Zhang & Sennrich 2019, Sec. 3)."""
    return (2 if model.norm == "layernorm" else 1) * model.hidden


def layer_params(model: ModelSpec, tp: int = 1, moe: bool = False, ep: int = 1) -> int:
    """Parameters of one transformer layer held by one TP rank (``tp=1``: the whole layer).

    QKV: h x (h + 2 kv d) (GQA, Ainslie et al. 2023); output projection h x h; MLP up (+ gate
    when ``gated_mlp``, Shazeer 2020) h x f and down f x h; two norms. Column-parallel
    weights and biases (QKV, up, gate) and row-parallel weights (projection, down) are split
    by ``tp``; row-parallel biases and norms are replicated (Shoeybi et al. 2019, Sec. 3).
    GPT-3 (MHA, f = 4h, biases): 12 h^2 + 13 h (Narayanan et al. 2021, Sec. 5.1).
    ``moe``: an MoE layer, whose MLP is the router, the shared experts and the device's
    ``experts / ep`` routed experts (:mod:`simwall.model.moe`).
    """
    h, d = model.hidden, model.head_dim
    kv_dev = kv_heads_per_device(model, tp)
    q_out = h // tp
    kv_out = 2 * kv_dev * d
    if model.mla is not None:
        attention = sum(r * c for r, c in _mla_shapes(model, tp)) + _mla_norm_params(model)
    else:
        attention = h * (q_out + kv_out) + q_out * h
    if _has_biases(model):
        attention += (q_out + kv_out) + h
    if moe:
        mlp = moe_layers.shared_mlp_params(model, tp) + moe_layers.expert_params(model, tp, ep)
    else:
        mlp = moe_layers.mlp_params(model, model.ffn, tp)
    return attention + mlp + 2 * _norm_params(model)


def _mla_shapes(model: ModelSpec, tp: int) -> list[tuple[int, int]]:
    """(rows, cols) of latent attention's weights on one TP rank (ops._mla_projections):
    the down-projections whole (replicated over TP), the up- and output projections split
    by heads."""
    m, h = model.mla, model.hidden
    heads = model.heads // tp
    out = [(m.kv_lora_rank + m.qk_rope_head_dim, h),
           (heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank),
           (h, heads * m.v_head_dim)]
    if m.q_lora_rank is None:
        return [(heads * m.qk_head_dim, h)] + out
    return [(m.q_lora_rank, h), (heads * m.qk_head_dim, m.q_lora_rank)] + out


def _mla_norm_params(model: ModelSpec) -> int:
    """The latent norms' gains (RMSNorm on the query and key-value latents)."""
    return (model.mla.q_lora_rank or 0) + model.mla.kv_lora_rank


def stage_layer_kinds(model: ModelSpec, plan: Plan, stage: int) -> tuple[int, int]:
    """``(dense, moe)`` layer counts of pipeline ``stage``."""
    if not model.moe:
        return plan.layers_on_stage(stage), 0
    n_moe = sum(moe_layers.chunk_moe_layers(model, plan, c)
                for c in range(stage, plan.chunks, plan.pp))
    return plan.layers_on_stage(stage) - n_moe, n_moe


def embedding_params(model: ModelSpec, tp: int = 1) -> int:
    """Input embedding held by one TP rank: V x h split over the vocabulary (Shoeybi et al.
    2019, Sec. 3), plus learned positions s x h (replicated) for LayerNorm-style (GPT-2/3,
    BERT; Radford et al. 2019) models. Vocabulary padding (Megatron pads V to a multiple of
    128 t) is not modelled."""
    out = model.vocab * model.hidden // tp
    if _has_biases(model):
        out += model.seq_len * model.hidden
    return out


def head_params(model: ModelSpec, tp: int = 1, pp: int = 1) -> int:
    """Final norm + LM head on the last stage, per TP rank. A tied head shares the
    embedding matrix when both sit on one device (``pp == 1``); with ``pp > 1`` the last
    stage keeps its own copy, kept equal by an all-reduce of its gradient with stage 0
    (Shoeybi et al. 2019 / Megatron-LM ``share_embeddings_and_output_weights``)."""
    out = _norm_params(model)
    if not model.tied_embeddings or pp > 1:
        out += model.vocab * model.hidden // tp
    return out


def total_params(model: ModelSpec) -> int:
    """Distinct parameters of the whole model (a tied head counted once; every expert)."""
    n_moe = moe_layers.moe_layer_count(model, 0, model.layers)
    return ((model.layers - n_moe) * layer_params(model) + n_moe * layer_params(model, moe=True)
            + embedding_params(model) + head_params(model))


def stage_params(model: ModelSpec, plan: Plan, stage: int) -> int:
    """Parameters per DEVICE on pipeline ``stage`` (each TP rank of the stage alike),
    its share of the routed experts included (:func:`stage_expert_params`)."""
    _check_stage(plan, stage)
    dense, n_moe = stage_layer_kinds(model, plan, stage)
    out = dense * layer_params(model, plan.tp)
    if n_moe:
        out += n_moe * layer_params(model, plan.tp, moe=True, ep=plan.ep)
    if stage == 0:
        out += embedding_params(model, plan.tp)
    if stage == plan.pp - 1:
        out += head_params(model, plan.tp, plan.pp)
    return out


def stage_expert_params(model: ModelSpec, plan: Plan, stage: int) -> int:
    """Routed-expert parameters per device on pipeline ``stage`` (part of
    :func:`stage_params`): their gradients and optimizer state are sharded over the
    expert-data-parallel ranks (``dp / ep``), not over DP."""
    return stage_layer_kinds(model, plan, stage)[1] * moe_layers.expert_params(model, plan.tp,
                                                                          plan.ep)


def _mlp_shapes(model: ModelSpec, width: int, copies: int = 1) -> list[tuple[int, int]]:
    """(rows, cols) of ``copies`` MLPs of ``width`` (per device)."""
    one = [(width, model.hidden), (model.hidden, width)]
    if model.gated_mlp:
        one.append((width, model.hidden))
    return one * copies


def _layer_matrix_shapes(model: ModelSpec, tp: int, moe: bool = False,
                         ep: int = 1) -> list[tuple[int, int]]:
    """(rows, cols) of the 2-D weights of one layer on one TP rank."""
    h, d = model.hidden, model.head_dim
    kv_out = 2 * kv_heads_per_device(model, tp) * d
    per_layer = (_mla_shapes(model, tp) if model.mla is not None
                 else [(h // tp + kv_out, h), (h, h // tp)])
    if not moe:
        return per_layer + _mlp_shapes(model, model.ffn // tp)
    per_layer.append((model.experts, h))                       # router
    per_layer += _mlp_shapes(model, model.moe_ffn // tp, model.experts // ep)
    if model.shared_experts:
        per_layer += _mlp_shapes(model, model.shared_experts * model.moe_ffn // tp)
    return per_layer


def _stage_layer_shapes(model: ModelSpec, plan: Plan, stage: int) -> list[tuple[int, int]]:
    """(rows, cols) of the 2-D weights of the layers of ``stage`` on one device."""
    dense, n_moe = stage_layer_kinds(model, plan, stage)
    shapes = _layer_matrix_shapes(model, plan.tp) * dense
    if n_moe:
        shapes += _layer_matrix_shapes(model, plan.tp, True, plan.ep) * n_moe
    return shapes


def stage_matrix_shapes(model: ModelSpec, plan: Plan,
                        stage: int) -> tuple[tuple[int, int], ...]:
    """(rows, cols) of every 2-D weight a device of ``stage`` holds (TP-sharded), sorted.

    Factored / second-order optimizers (Adafactor, Shampoo) size their state from these.
    Biases and norms (1-D) are not listed; their count is ``stage_params`` minus the sum.
    """
    _check_stage(plan, stage)
    h, tp = model.hidden, plan.tp
    shapes = _stage_layer_shapes(model, plan, stage)
    if stage == 0:
        shapes.append((model.vocab // tp, h))
        if _has_biases(model):
            shapes.append((model.seq_len, h))
    if stage == plan.pp - 1 and (not model.tied_embeddings or plan.pp > 1):
        shapes.append((model.vocab // tp, h))
    return tuple(sorted(shapes))


# ---------------------------------------------------------------------------------------
# Model states


def _optimizer_bytes(params: float, training: TrainingSpec,
                     shapes: tuple[tuple[int, int], ...] | None) -> float:
    """Optimizer state of ``params`` parameters (unsharded), bytes."""
    # Mixed precision keeps an fp32 master copy of the weights in the optimizer
    # (Micikevicius et al. 2018, Sec. 3.1; ZeRO Sec. 3.1 counts it in K), except where the
    # stored weights are fp32 themselves (FSDP; config.MIXED_PRECISION_PRESETS).
    master = float(training.master_bytes) * params
    opt = training.optimizer
    if opt in ("adam", "adamw"):
        return master + _ADAM_MOMENTS_BYTES * params
    if opt == "sgd":
        return master + _SGD_MOMENTS_BYTES * params
    if opt == "adafactor":
        # Shazeer & Stern 2018, Sec. 3 / Alg. 4: an n x m matrix keeps row and column sums of
        # the squared gradient (n + m fp32 values); 1-D parameters keep the full second
        # moment; no first moment (beta1 = 0, Sec. 4 and 7). Without shapes the factored
        # state is negligible next to the parameters and is taken as zero.
        if shapes is None:
            return master
        in_matrices = sum(r * c for r, c in shapes)
        factored = sum(r + c for r, c in shapes)
        vectors = max(0.0, params - in_matrices)
        return master + FP32_BYTES * (factored + vectors)
    if opt == "shampoo":
        # Gupta et al. 2018, Alg. 1 (matrix case): statistics L (m x m), R (n x n) and their
        # inverse 4th roots, fp32, per m x n weight; 1-D parameters fall back to a diagonal
        # (AdaGrad-like) accumulator. No blocking: the memory-wall concern of Gholami et al.
        # 2024 (second-order optimizers' state grows quadratically in the layer width).
        if shapes is None:
            return master + FP32_BYTES * _SHAMPOO_SQUARE_VALUES_PER_PARAM * params
        in_matrices = sum(r * c for r, c in shapes)
        precond = sum(2 * (r * r + c * c) for r, c in shapes)
        vectors = max(0.0, params - in_matrices)
        return master + FP32_BYTES * (precond + vectors)
    raise ValueError(f"unknown optimizer {opt!r}")  # unreachable: config validates it


def model_state_bytes(params: float, training: TrainingSpec, zero: int, dp: int,
                      shapes: tuple[tuple[int, int], ...] | None = None,
                      fp8_params: float = 0.0) -> tuple[float, float, float]:
    """(params_bytes, grads_bytes, optimizer_bytes) per device for ``params`` parameters.

    ``params`` is what one device holds before ZeRO (after TP/PP splitting). Bytes per
    parameter follow ``training.mixed_precision`` (config.MIXED_PRECISION_PRESETS, each
    cited there): weights ``training.stored_weight_bytes`` (2 B, or 4 B under ``fsdp``),
    gradients ``training.grad_precision_`` (2 B, the ZeRO paper's convention, or 4 B,
    Megatron-LM's fp32 main gradients and FSDP's), optimizer state with the fp32 master
    copy where there is one. With Adam: deepspeed 2 + 2 + 12 = 16, megatron 2 + 4 + 12 =
    18 (6 + 12/dp with ZeRO-1, Megatron's distributed optimizer), fsdp 4 + 4 + 8 = 16.
    ZeRO (Rajbhandari et al. 2020, Sec. 5.1-5.3) shards over ``dp`` ranks: stage 1 the
    optimizer state (P_os), stage 2 also gradients (P_os+g), stage 3 also parameters
    (P_os+g+p). ``fp8_params``: the linear-layer weights among ``params`` whose FP8 weight
    cache (``training.fp8_cache_bytes`` each, Transformer Engine) is counted with the
    weights; with ``training.fp8_params`` that cache is all they store. ``shapes``: the
    2-D weights (``stage_matrix_shapes``) for Adafactor / Shampoo.
    """
    if not 0 <= zero <= 3:
        raise ValueError(f"zero stage must be 0..3, got {zero}")
    if dp < 1:
        raise ValueError(f"dp must be >= 1, got {dp}")
    params_b = training.stored_weight_bytes * params + training.fp8_cache_bytes * fp8_params
    if training.fp8_params:
        # FP8 weights (Transformer Engine fp8_model_init): the FP8 GEMMs' weights live in
        # their FP8 cache only, without the 16-bit copy.
        params_b -= training.stored_weight_bytes * fp8_params
    grads_b = PRECISION_BYTES[training.grad_precision_] * params
    opt_b = _optimizer_bytes(params, training, shapes)
    if zero >= 1:
        opt_b /= dp
    if zero >= 2:
        grads_b /= dp
    if zero >= 3:
        params_b /= dp
    return float(params_b), float(grads_b), float(opt_b)


def fp8_gemm_params(model: ModelSpec, plan: Plan, stage: int) -> float:
    """Weights of the FP8 GEMMs (QKV, projection, MLP) one device of ``stage`` holds:
    the stage's layers without their biases and norms (embedding and LM head stay 16-bit
    in Transformer Engine runs: Megatron-Core builds the output layer outside TE)."""
    return float(sum(r * c for r, c in _stage_layer_shapes(model, plan, stage)))


def optimizer_shard_params(params: float, plan: Plan) -> float:
    """Parameters whose optimizer state one device holds and updates, of the ``params``
    it holds before ZeRO: a 1/dp share from ZeRO-1 on (P_os, Rajbhandari et al. 2020,
    Sec. 5.1), as :func:`model_state_bytes` divides the optimizer bytes."""
    return params / plan.shard if plan.zero >= 1 else params


def stage_optimizer_shard_params(model: ModelSpec, plan: Plan, stage: int) -> float:
    """:func:`optimizer_shard_params` of one device of ``stage``, its routed experts
    sharded over the expert-data-parallel ranks (``dp x cp / ep``) as their optimizer
    state is (:func:`_stage_states`; Megatron-Core's distributed optimizer shards the
    expert buffers over the expert-DP group, distributed_data_parallel.py)."""
    params = stage_params(model, plan, stage)
    experts = stage_expert_params(model, plan, stage)
    if not experts or plan.zero < 1:
        return optimizer_shard_params(params, plan)
    return (params - experts) / plan.shard + experts / (plan.dp_cp // plan.ep)


# ---------------------------------------------------------------------------------------
# Activations


def _layer_terms(model: ModelSpec, training: TrainingSpec, tp: int) -> tuple[float, ...]:
    """Bytes per token of one layer, one micro-batch: (kept whole on every TP rank
    without SP, split over TP, K and V per TP rank, attention core split over TP)."""
    h, f, d, a = model.hidden, model.ffn, model.head_dim, model.heads
    e = activation_element_bytes(training)
    mask = MASK_BYTES if model.dropout else 0
    # Korthikanti et al. 2022, Sec. 4.1 (their counts with e = 2, dropout on):
    # outside the TP region: LN1 input, QKV input, LN2 input, MLP input (4 x 2h) and the
    # two dropout masks (2 x h) -> 10h per token.
    replicated = 4 * e * h + 2 * mask * h
    # inside the TP region: Q (2h), attention-over-V output = projection input (2h),
    # MLP: activation input and output (2 x 2f; 8h + 8h for f = 4h); a gated MLP also
    # keeps the gate branch (2f). K and V are counted separately (GQA replication).
    mlp = (3 if model.gated_mlp else 2) * e * f
    sharded = 2 * e * h + mlp
    kv_dev = 2 * e * kv_heads_per_device(model, tp) * d
    if uses_flash(model, training):
        # A fused kernel keeps no s x s tensor, only its output (counted above as the
        # projection input) and the fp32 logsumexp per query row and head (FlashAttention,
        # Dao et al. 2022, Sec. 3.1 / Algorithm 2; Dao 2023): 4a bytes per token.
        return float(replicated), float(sharded), float(kv_dev), float(FP32_BYTES * a)
    # attention core per token: softmax output (2as), its dropout mask (as) and dropout
    # output (2as) -> 5as per token (Sec. 4.1). Without dropout only the softmax output.
    core = (e + (mask + e if model.dropout else 0)) * a * model.seq_len
    return float(replicated), float(sharded), float(kv_dev), float(core)


def korthikanti_activation_bytes(model: ModelSpec, training: TrainingSpec,
                                 plan: Plan) -> float:
    """Saved activations of one transformer layer, one micro-batch, one device, bytes.

    Korthikanti et al. 2022, Sec. 4 / Table 2, generalised term by term to GQA, gated MLPs,
    ``ffn_hidden != 4h``, no dropout and fp32 (reduces exactly to Table 2 for GPT-3-style
    models in 16-bit):
      no TP:                 sbh (34 + 5as/h)
      TP t:                  sbh (10 + 24/t + 5as/(ht))
      TP t + SP:             sbh/t (34 + 5as/h)
      selective recompute:   the 5as/h term dropped (attention core recomputed)
      full recompute:        2sbh (the layer input only); 2sbh/t with SP, where the layer
                             input lives in the sequence-parallel region.
    With ``model.attention: flash`` the 5as/h term becomes the kernel's fp32 logsumexp,
    4a/h (sbh 4a/(ht) with TP; Dao et al. 2022, Sec. 3.1), and selective recompute drops
    that: Megatron-LM checkpoints the fused core attention as it did the eager one, keeping
    only its inputs (simwall.model.ops.SELECTIVE_RECOMPUTE cites the source).
    """
    t = plan.tp
    sb = local_tokens(model, plan)
    sp_div = t if plan.sequence_parallel else 1
    if plan.recompute == "full":
        return sb * activation_element_bytes(training) * model.hidden / sp_div
    replicated, sharded, kv_dev, core = _layer_terms(model, training, t)
    per_token = replicated / sp_div + sharded / t + kv_dev
    if plan.recompute == "none":
        per_token += core / t
    return float(sb * per_token)


def local_tokens(model: ModelSpec, plan: Plan) -> int:
    """Tokens of one micro-batch on one device: ``b s``, or ``b s / cp`` with context
    parallelism (each CP rank holds two mirrored chunks of ``s / 2cp`` tokens of every
    sequence; Megatron-Core, megatron/core/models/common/embeddings/rope_utils.py)."""
    return (model.seq_len // plan.cp) * plan.micro_batch


def cp_kv_buffer_bytes(model: ModelSpec, training: TrainingSpec, plan: Plan) -> float:
    """Receive buffers of the context-parallel K/V exchange on one device, bytes: the
    ring (``cp_comm: p2p``) keeps the K/V chunk it computes on and the one arriving, two
    chunks of ``b s/cp`` tokens x K and V (Transformer Engine's AttnFuncWithCPAndKVP2P
    double-buffers them); ``all_gather`` holds K and V of the whole sequence, ``cp``
    chunks, its own included (AttnFuncWithCPAndKVAllGather gathers into a new tensor, one
    layer at a time). K/V heads per TP rank (GQA). Nothing without CP."""
    if plan.cp <= 1:
        return 0.0
    kv_token = 2 * kv_heads_per_device(model, plan.tp) * model.head_dim * \
        activation_element_bytes(training)
    chunks = 2 if plan.cp_comm == "p2p" else plan.cp
    return float(chunks * local_tokens(model, plan) * kv_token)


def in_flight_micro_batches(plan: Plan, stage: int) -> float:
    """Micro-batches whose activations ``stage`` holds at its peak, in units of a whole
    stage's layers (fractional for the interleaved schedule).

    GPipe: all ``m`` (Huang et al. 2019, Sec. 2.3). 1F1B: ``p - stage`` (Narayanan et al.
    2021, Sec. 2.2.1; Korthikanti et al. 2022, Sec. 4.2.3: the first stage holds p); one
    more with ``plan.ep_overlap`` (:attr:`~simwall.plan.layout.Plan.extra_warmup`), in
    either schedule.
    Interleaved with v chunks: Megatron-LM's warm-up of ``2 (p - stage - 1) + (v - 1) p``
    chunk micro-batches plus the one in flight, each 1/v of the stage; for stage 0 this is
    p (1 + (p - 1)/(p v)) (Korthikanti et al. 2022, Sec. 4.2.3). Never more than m (m v
    chunk micro-batches).
    """
    _check_stage(plan, stage)
    p, v, m = plan.pp, plan.virtual_stages, plan.micro_batches
    if plan.schedule == "gpipe":
        return float(m)
    extra = plan.extra_warmup   # Megatron-Core's combined 1F1B warms up one more
    if plan.schedule == "interleaved" and v > 1:
        chunks_in_flight = 2 * (p - stage - 1) + (v - 1) * p + 1 + extra
        return min(chunks_in_flight, m * v) / v
    return float(min(p - stage + extra, m))


def embedding_activation_bytes(model: ModelSpec, plan: Plan) -> float:
    """Stage 0, per micro-batch: token ids (8 B each, Megatron-LM's estimator) and the
    embedding dropout mask sbh (Korthikanti et al. 2022, Sec. 4.3: sbhp/t over p micro-
    batches with SP)."""
    sb = local_tokens(model, plan)
    sp_div = plan.tp if plan.sequence_parallel else 1
    mask = MASK_BYTES * sb * model.hidden / sp_div if model.dropout else 0.0
    return TOKEN_ID_BYTES * sb + mask


def output_activation_bytes(model: ModelSpec, training: TrainingSpec, plan: Plan) -> float:
    """Last stage, per micro-batch: final-norm input and LM-head input (2sbh each, /t with
    SP) and fp32 logits for the cross-entropy (4sbV/t): 4sbh/t (1 + V/h) with SP
    (Korthikanti et al. 2022, Sec. 4.3). A fused cross-entropy (``model.cross_entropy:
    fused``) keeps the e-byte logits and an fp32 log-sum-exp per token instead
    (simwall.model.ops: the kernel's ``save_for_backward``)."""
    sb = local_tokens(model, plan)
    e = activation_element_bytes(training)
    sp_div = plan.tp if plan.sequence_parallel else 1
    if model.cross_entropy == "fused":
        kept = e * sb * model.vocab / plan.tp + FP32_BYTES * sb
    else:
        kept = FP32_BYTES * sb * model.vocab / plan.tp
    return 2 * e * sb * model.hidden / sp_div + kept


@memoized(maxsize=4096)
def _held_at_forwards(schedule: str, pp: int, stage: int, m: int, v: int, extra: int = 0
                      ) -> tuple[tuple[int, ...], ...]:
    """Micro-batches each local chunk of ``stage`` holds activations for as each of its
    forward tasks starts (where the held amount can peak), walking the schedule's own task
    order (:func:`simwall.plan.schedules.tasks_for`). Only the vectors no other one covers
    in every chunk (with sizes >= 0 the peak is at one of them), first seen first."""
    if schedule == "interleaved":    # the same walk, from counts shared by the stages
        return _held_front(pp, m, v, interleaved.warmup(pp, stage, m, v, extra))
    held = [0] * v
    seen: dict[tuple[int, ...], None] = {}
    for pass_, _, chunk in tasks_for(schedule, pp, stage, m, v, extra):
        if pass_ == "F":
            held[chunk] += 1
            seen[tuple(held)] = None
        else:
            held[chunk] -= 1
    return _uncovered(list(seen))


@memoized(maxsize=4096)
def _held_front(pp: int, m: int, v: int, warm: int) -> tuple[tuple[int, ...], ...]:
    """:func:`_held_at_forwards` of an interleaved stage with ``warm`` warm-up forwards
    (stages with the same warm-up share it). From the last warm-up forward on, each
    forward follows one backward, so every vector holds ``warm + 1`` micro-batches in
    all: none covers another unless equal. Each earlier one is the forward counts of a
    shorter prefix, covered by that forward's. So the uncovered vectors are the distinct
    ones from forward ``warm`` on (the last forward's when every forward is a warm-up
    one), first seen first. Every ``pp * v`` forwards (and backwards) each chunk runs
    ``pp`` of them, so from forward ``warm`` on the vectors repeat with that period: the
    first period holds them all."""
    first = min(warm, m * v - 1)
    last = min(m * v, first + pp * v)
    return tuple(dict.fromkeys(interleaved.held_at_forwards(pp, m, v, warm, first, last)))


def _uncovered(vectors: list[tuple[int, ...]]) -> tuple[tuple[int, ...], ...]:
    """The ``vectors`` no other one covers in every element, in their order."""
    # A vector covered by another is covered by one that nothing covers, whose sum is
    # larger (integer vectors): visiting by decreasing sum, each is checked against the
    # uncovered ones found so far only.
    front: list[tuple[int, ...]] = []
    keep = set()
    for i in sorted(range(len(vectors)), key=lambda i: -sum(vectors[i])):
        a = vectors[i]
        if not any(all(map(le, a, b)) for b in front):
            front.append(a)
            keep.add(i)
    return tuple(vectors[i] for i in sorted(keep))


def zero_bubble_held(pp: int, stage: int, m: int) -> tuple[tuple[int, int], ...]:
    """Under ZB-H1 (:mod:`simwall.plan.schedules.zero_bubble`), the micro-batches
    ``stage`` holds at the moments its held activations can peak: ``(b, w)`` pairs, ``b``
    micro-batches forwarded but not yet through B (each holding what B needs, M_B) and
    ``w`` through B but not yet through W (each holding W's operands, M_W). The peak is
    the largest ``b M_B + w M_W`` over these pairs.

    With ``u = min(pp - stage - 1, m)`` warm-up forwards and W delayed by
    ``d = pp - 1 - u`` micro-batches (``d = stage`` when ``m >= pp - stage - 1``): as the
    forward of step ``j`` starts, ``(u + 1, min(j, d))`` (the largest at the last forward,
    ``j = m - u - 1``; ``(m, 0)`` when every forward is a warm-up one); as the B of step
    ``j`` ends, ``(min(m - j - 1, u), min(j, d) + 1)``, piecewise linear in ``j`` with
    kinks at ``j = d`` and ``j = m - 1 - u``, so its largest value is at one of those or
    at ``j = 0`` or ``m - 1``. With ``m >= pp`` and ``M_W <= M_B`` this is
    ``(pp - stage) M_B + stage M_W``, largest on the first stage: ``pp M_B``, 1F1B's
    peak, as Qi et al. 2024 ("Zero Bubble Pipeline Parallelism", ICLR, Sec. 2.1) design
    ZB-H1 to keep; when W needs more than B (full recompute keeps little for B) the
    later stages can hold more than the first."""
    u = min(pp - stage - 1, m)
    d = pp - 1 - u
    out = [(u + 1, min(m - u - 1, d)) if m > u else (m, 0)]
    for j in sorted({0, d, m - 1 - u, m - 1}):
        if 0 <= j < m:
            out.append((min(m - j - 1, u), min(j, d) + 1))
    return tuple(out)


def stage_activation_bytes(model: ModelSpec, training: TrainingSpec, plan: Plan,
                           stage: int) -> float:
    """Saved activations a device of ``stage`` holds at its peak, bytes.

    Each micro-batch in flight holds its chunk's layers (plus the embedding's on the
    first chunk, the LM head's on the last); how many are in flight per chunk comes from
    the schedule's task order, so chunks of unequal size (an interleaved split whose
    layers do not divide evenly) count as they are; with equal chunks the layers' part
    is :func:`in_flight_micro_batches` x the stage's layers. The last stage's logits
    live only while their micro-batch is in flight: one at a time under 1F1B (its
    backward follows its forward; Korthikanti et al. 2022, Sec. 4.3), all m under GPipe.
    """
    wgrad = (_wgrad_terms(model, training, plan) if plan.schedule == "zero_bubble"
             else None)
    return _held_activation_bytes(plan, stage, plan.chunk_layers(stage),
                                  _chunk_moe_layers(model, plan, stage),
                                  _activation_terms(model, training, plan), wgrad)


@dataclass(frozen=True)
class _ActivationTerms:
    """What one micro-batch leaves saved on one device, bytes: a dense layer, an MoE layer
    (0 for a dense model), the embedding (first stage) and the LM head (last stage).
    Each depends on the plan's tp, cp, sequence parallelism, micro-batch, recompute and
    ep only (:mod:`.ops`: ``_dims`` and the recompute mode), not on pp, dp, ZeRO or the
    schedule."""

    layer: float
    moe_layer: float
    embedding: float
    head: float


def _activation_key(plan: Plan) -> tuple:
    """The plan fields :class:`_ActivationTerms` (and :func:`_wgrad_terms`) depend on."""
    return (plan.tp, plan.cp, plan.sequence_parallel, plan.micro_batch, plan.recompute,
            plan.ep)


def _activation_terms(model: ModelSpec, training: TrainingSpec,
                      plan: Plan) -> _ActivationTerms:
    by_layer = layer_key(training, plan)        # what the per-layer figures read
    return _ActivationTerms(
        layer=activation_bytes_per_layer(model, *by_layer),
        moe_layer=(activation_bytes_per_layer(model, *by_layer, moe=True) if model.moe
                   else 0.0),
        embedding=embedding_activation_bytes(model, plan),
        head=output_activation_bytes(model, training, plan))


def _wgrad_terms(model: ModelSpec, training: TrainingSpec,
                 plan: Plan) -> tuple[float, float]:
    """(one layer's, the LM head's) bytes a deferred W pass keeps per micro-batch (ZB-H1)."""
    by_layer = layer_key(training, plan)
    return (layer_wgrad_activation_bytes(model, *by_layer),
            head_wgrad_activation_bytes(model, *by_layer))


def _chunk_moe_layers(model: ModelSpec, plan: Plan, stage: int) -> tuple[int, ...] | None:
    """MoE layers of each chunk of ``stage`` (None for a dense model)."""
    if not model.moe:
        return None
    return tuple(moe_layers.chunk_moe_layers(model, plan, c)
                 for c in range(stage, plan.chunks, plan.pp))


def _held_activation_bytes(plan: Plan, stage: int, layers: tuple[int, ...],
                           chunk_moe: tuple[int, ...] | None, terms: _ActivationTerms,
                           wgrad: tuple[float, float] | None,
                           held: tuple[tuple[float, ...], ...] | None = None) -> float:
    """:func:`stage_activation_bytes` from the stage's chunk sizes (``layers``), their
    MoE layers (``chunk_moe``, None: dense) and the per-micro-batch ``terms`` (``wgrad``:
    :func:`_wgrad_terms`, needed under ``zero_bubble`` only; ``held``: the stage's
    :func:`_held_profile`, found here when None)."""
    act = terms.layer
    if chunk_moe is None:
        body = [n * act for n in layers]
    else:
        body = [(n - n_moe) * act + n_moe * terms.moe_layer
                for n, n_moe in zip(layers, chunk_moe)]
    if stage == 0:
        body[0] += terms.embedding
    head = terms.head if stage == plan.pp - 1 else 0.0
    if held is None:
        held = _held_profile(plan, stage, len(layers))
    if plan.schedule == "zero_bubble":
        w_bytes = layers[0] * wgrad[0]
        if stage == plan.pp - 1:
            w_bytes += wgrad[1]
        return float(max(b * (body[0] + head) + w * w_bytes for b, w in held))
    if len(held) == 1 and len(body) == 1:    # one chunk, one moment (GPipe, 1F1B)
        (count,) = held                     # the sum below of one term, 0 + x = x
        return float(count[0] * body[0] + count[-1] * head)
    return float(max(sum(n * b for n, b in zip(count, body)) + count[-1] * head
                     for count in held))


def _held_profile(plan: Plan, stage: int, chunks: int) -> tuple[tuple[float, ...], ...]:
    """What ``stage`` holds at the moments its saved activations can peak, one vector per
    moment, the peak being the largest of a non-negative weighted sum of each vector:
    ZB-H1's ``(b, w)`` pairs (:func:`zero_bubble_held`), the micro-batches in flight per
    chunk of the interleaved schedule (:func:`_held_at_forwards`; ``chunks`` per stage),
    or GPipe's and 1F1B's one count (:func:`in_flight_micro_batches`)."""
    if plan.schedule == "zero_bubble":
        return zero_bubble_held(plan.pp, stage, plan.micro_batches)
    if plan.schedule != "interleaved":    # GPipe, 1F1B (one chunk): known in closed form
        return ((in_flight_micro_batches(plan, stage),),)
    return _held_at_forwards(plan.schedule, plan.pp, stage, plan.micro_batches, chunks,
                             plan.extra_warmup)


def _covers(big: tuple[tuple[float, ...], ...], small: tuple[tuple[float, ...], ...]) -> bool:
    """Whether every vector of ``small`` is at most, element by element, one of ``big``:
    then any non-negative weighted sum peaks no higher on ``small``."""
    return all(any(all(map(le, a, b)) for b in big) for a in small)


# ---------------------------------------------------------------------------------------
# Buffers, totals


@dataclass(frozen=True)
class StageMemory:
    """Peak memory of one device of a pipeline stage, bytes. ``host_bytes``: offloaded
    state kept in host memory for that device. ``reserved_bytes``: what the process holds
    besides its tensors (CUDA context, NCCL, fragmentation: :func:`memory_reserve`);
    ``peak_bytes`` includes it. ``fragmentation``: the fraction of the transient bytes
    lost to fragmentation (part of ``reserved_bytes``). ``recycled_bytes``: the part of
    ``other_bytes`` requested at the same sizes every step (ZeRO-3's gathered layers,
    :func:`gathered_buffer_bytes`), which fragments nothing."""

    stage: int
    params_bytes: float
    grads_bytes: float
    optimizer_bytes: float
    activations_bytes: float
    other_bytes: float
    peak_bytes: float
    host_bytes: float = 0.0
    reserved_bytes: float = 0.0
    fixed_reserved_bytes: float = 0.0
    fragmentation: float = 0.0
    recycled_bytes: float = 0.0

    def with_activations(self, activations_bytes: float) -> StageMemory:
        """This stage with ``activations_bytes`` of activations (the engine's timeline
        peak), the fragmentation share and the peak recomputed."""
        allocated = (self.params_bytes + self.grads_bytes + self.optimizer_bytes
                     + self.other_bytes + activations_bytes)
        reserved = _reserved(self.other_bytes - self.recycled_bytes + activations_bytes,
                             self.fixed_reserved_bytes, self.fragmentation)
        return replace(self, activations_bytes=activations_bytes, reserved_bytes=reserved,
                       peak_bytes=allocated + reserved)

    def as_dict(self) -> dict:
        return {
            "stage": self.stage, "params_bytes": self.params_bytes,
            "grads_bytes": self.grads_bytes, "optimizer_bytes": self.optimizer_bytes,
            "activations_bytes": self.activations_bytes, "other_bytes": self.other_bytes,
            "recycled_bytes": self.recycled_bytes, "reserved_bytes": self.reserved_bytes,
            "peak_bytes": self.peak_bytes, "host_bytes": self.host_bytes,
        }


def _reserved(transient_bytes: float, fixed_bytes: float, fragmentation: float) -> float:
    """Reserved bytes beside the allocated ones: the fixed reserve plus the fragmentation
    share of ``transient_bytes``, the tensors allocated and freed every step at varying
    sizes (activations and buffers: ``other_bytes`` less ``recycled_bytes``), not of the
    model states (:data:`FRAGMENTATION` says why; :meth:`StageMemory.with_activations`,
    :meth:`MemoryModel.peak`)."""
    return fixed_bytes + fragmentation * transient_bytes


def memory_reserve(cluster: ClusterSpec | None) -> tuple[float, float]:
    """(reserved bytes, fragmentation fraction) per device of ``cluster``: its
    ``memory_reserved`` / ``memory_fragmentation`` keys, else :data:`RESERVED_BYTES` and
    :data:`FRAGMENTATION` (also for ``cluster=None``)."""
    fixed = RESERVED_BYTES
    frag = FRAGMENTATION
    if cluster is not None:
        if cluster.memory_reserved_bytes is not None:
            fixed = cluster.memory_reserved_bytes
        if cluster.memory_fragmentation is not None:
            frag = cluster.memory_fragmentation
    return float(fixed), float(frag)


@memoized(maxsize=8192)
def _recompute_buffer_bytes(model: ModelSpec, training: TrainingSpec, plan: Plan) -> float:
    """Recomputation rematerialises one layer at a time in the backward pass: that layer's
    no-recompute activations are live, less what the layer already keeps (its input under
    full recompute, everything but the attention core under selective), on top of the
    stored ones (our estimate, following the recompute scheme of Korthikanti et al. 2022,
    Sec. 5), bytes. With flash attention the layer's activations hold no s^2 term: selective
    recompute rematerialises the fused kernel's logsumexp (the recomputed output, a copy
    of the output projection's saved input, is not counted, as with the eager core)."""
    whole = korthikanti_activation_bytes(model, training, replace(plan, recompute="none"))
    return whole - korthikanti_activation_bytes(model, training, plan)


def zero3_gathered_params(model: ModelSpec, plan: Plan, stage: int) -> float:
    """Parameters ZeRO-3 (or ZeRO-Infinity) keeps gathered at once on a device of
    ``stage``: the current and the prefetched layer (:data:`ZERO3_PREFETCH_LAYERS`), never
    more layers than the stage holds, capped at DeepSpeed's live-parameter limit
    (:data:`ZERO3_MAX_LIVE_PARAMS`), and at least the stage's largest weight matrix (a
    parameter is gathered whole), element counts after TP. Without
    ``plan.reshard_after_forward`` (issue 15) every layer of the stage stays gathered
    from its forward to its backward (FSDP2 ``reshard_after_forward=False``: ZeRO-2's
    parameter memory), uncapped."""
    # Parameters of one dense and one MoE layer, with how many of each the stage holds.
    kinds = [(n, layer_params(model, plan.tp, moe=moe, ep=plan.ep))
             for n, moe in zip(stage_layer_kinds(model, plan, stage), (False, True)) if n]
    if not plan.reshard_after_forward:
        return float(sum(n * params for n, params in kinds))
    layers = min(ZERO3_PREFETCH_LAYERS, plan.layers_on_stage(stage))
    largest_layer = max((params for _, params in kinds), default=0)
    live = min(float(layers * largest_layer), ZERO3_MAX_LIVE_PARAMS)
    largest = max((r * c for r, c in stage_matrix_shapes(model, plan, stage)), default=0)
    return max(live, float(largest))


def gathered_buffer_bytes(model: ModelSpec, training: TrainingSpec, plan: Plan, stage: int,
                          gathered_params: float | None = None) -> float:
    """Bytes of gathered weights one device of ``stage`` holds under ZeRO-3 or parameter
    offload (part of :func:`_other_bytes`); ``gathered_params``: the stage's
    :func:`zero3_gathered_params` where the caller has it (None: found here).

    The same layers are gathered at the same sizes every step, so the caching allocator
    hands the freed blocks back whole (PyTorch FSDP frees and re-allocates each unsharded
    flat parameter's storage at its full size, torch/distributed/utils.py
    ``_free_storage`` / ``_alloc_storage`` from ``flat_param.py``); no fragmentation is
    charged on them (:data:`FRAGMENTATION`, ``StageMemory.recycled_bytes``). That keeps
    ZeRO-3 at or below ZeRO-2 in peak as well as in allocated bytes."""
    if plan.offload == "optimizer+params":
        # Gathered full (TP-sharded) weights of the current and the prefetched layer,
        # fetched from the host (ZeRO-Infinity, Rajbhandari et al. 2021).
        if gathered_params is None:
            gathered_params = zero3_gathered_params(model, plan, stage)
        return gathered_params * training.weight_bytes
    if plan.zero >= 3 and plan.shard > 1:
        # Gathered full (TP-sharded) weights of the current and the prefetched layer
        # (Rajbhandari et al. 2020, Sec. 7.2.2), counted as the bytes received from the
        # other dp - 1 ranks: the rank's own shard is one slice of the all-gather's output
        # (an in-place all-gather, NCCL User Guide, "In-place operations"). A framework that
        # keeps its shard apart holds 1/dp of the gathered layers more, which this leaves
        # out so that ZeRO-3 never allocates more than ZeRO-2 (it holds 1 - 1/dp of the
        # stage's weights less, and the gathered part never exceeds the stage's weights).
        if gathered_params is None:
            gathered_params = zero3_gathered_params(model, plan, stage)
        return gathered_params * training.weight_bytes * (1 - 1 / plan.shard)
    return 0.0


def _other_bytes(model: ModelSpec, training: TrainingSpec, plan: Plan, stage: int,
                 gathered_bytes: float, recompute_bytes: float | None = None) -> float:
    """Transient and fixed buffers of one device of ``stage``, bytes, its gathered weights
    (:func:`gathered_buffer_bytes`) ``gathered_bytes`` among them. ``recompute_bytes``
    (:func:`_recompute_buffer_bytes`): the stage's value where the caller has it (None:
    found here)."""
    e = activation_element_bytes(training)
    sb = local_tokens(model, plan)
    out = 0.0
    if plan.dp_cp > 1 and plan.framework != "megatron":
        # DP gradient buckets (PyTorch DDP, Li et al. VLDB 2020, Sec. 3.2), double buffered.
        # Megatron-Core has none: each bucket's grad_data is a view into the contiguous
        # gradient buffer that param.main_grad already points into, reduced in place
        # (megatron/core/distributed/param_and_grad_buffer.py, _ParamAndGradBucket
        # "grad_data: View in _ParamAndGradBuffer.grad_data"; counted in grads_bytes).
        out += GRAD_BUCKETS_IN_FLIGHT * plan.dp_bucket_bytes
    out += gathered_bytes
    if plan.sequence_parallel:
        # SP all-gathers the sequence-sharded LN output before the column-parallel GEMMs:
        # one full sbh buffer (Korthikanti et al. 2022, Sec. 4.2.2; Megatron-LM keeps it in
        # a global buffer reused by every layer).
        out += e * sb * model.hidden
    if plan.recompute != "none" and plan.layers_on_stage(stage) > 0:
        if recompute_bytes is None:
            recompute_bytes = _recompute_buffer_bytes(model, training, plan)
        out += recompute_bytes
    if plan.cp > 1 and plan.layers_on_stage(stage) > 0:
        out += cp_kv_buffer_bytes(model, training, plan)
    if stage == plan.pp - 1:
        out += logits_buffer_bytes(model, training, plan)
    return float(out)


def logits_buffer_bytes(model: ModelSpec, training: TrainingSpec, plan: Plan) -> float:
    """Logits-sized buffer the last stage holds next to the stored fp32 logits
    (:func:`output_activation_bytes`) while its cross-entropy runs, bytes.

    Megatron-Core (``plan.framework: megatron``): its vocab-parallel cross-entropy casts
    the LM head's 16-bit logits to fp32, takes exp and the softmax in place in that copy,
    saves it, and in the backward writes the gradient into that same saved tensor
    (megatron/core/tensor_parallel/cross_entropy.py: ``calculate_logits_max``
    ``.float()``, ``torch.exp(..., out=exp_logits)``, ``exp_logits.div_``;
    ``prepare_gradient_calculation_operands``: "grad_input = softmax", updated with
    ``-=`` and ``mul_``). What lives beside it is the 16-bit logits: the output layer's
    result, held by the caller in the forward (language_module.py,
    ``compute_language_model_loss(labels, logits)``), and the gradient cast back to 16
    bits in the backward: ``e sbV/t``, none in fp32 training (``.float()`` of an fp32
    tensor is the tensor itself). Megatron-LM's own estimator counts the head as
    ``4sbh (1 + V/h)`` only (megatron/training/theoretical_memory_usage.py).
    Other frameworks (PyTorch ``cross_entropy`` on upcast logits): the backward's
    gradient is a new fp32 tensor, one more ``4 sbV/t`` (an estimate; Korthikanti et al.
    2022, Sec. 4.3 count only the stored logits). A fused cross-entropy
    (``model.cross_entropy: fused``) writes its gradient in the logits' dtype, ``e sbV/t``
    beside the kept logits (flash-attn's ``dlogits = torch.empty_like(logits)``)."""
    e = activation_element_bytes(training)
    if model.cross_entropy == "fused":
        per_logit = e
    elif plan.framework == "megatron":
        per_logit = e if e < FP32_BYTES else 0
    else:
        per_logit = FP32_BYTES
    return float(per_logit * local_tokens(model, plan) * model.vocab / plan.tp)


def _stage_states(model: ModelSpec, training: TrainingSpec, plan: Plan,
                  stage: int) -> tuple[float, float, float, float]:
    """(params, grads, optimizer, host) bytes of one device of ``stage``
    (:func:`device_memory`)."""
    params = stage_params(model, plan, stage)
    shapes = (stage_matrix_shapes(model, plan, stage)
              if training.optimizer in ("adafactor", "shampoo") else None)
    fp8 = fp8_gemm_params(model, plan, stage) if training.fp8_cache_bytes else 0.0
    experts = stage_expert_params(model, plan, stage)
    p_b, g_b, o_b = model_state_bytes(params - experts, training, plan.zero, plan.shard,
                                      shapes, fp8)
    if experts:
        # Routed experts: their states shard over the expert-data-parallel ranks
        # (Megatron-Core's expert DP group, dp x cp / ep ranks).
        e_p, e_g, e_o = model_state_bytes(experts, training, plan.zero,
                                          plan.dp_cp // plan.ep)
        p_b, g_b, o_b = p_b + e_p, g_b + e_g, o_b + e_o
    host = 0.0
    if plan.offload in ("optimizer", "optimizer+params"):
        host += o_b
        o_b = 0.0
    if plan.offload == "optimizer+params":
        host += p_b
        p_b = 0.0
    return p_b, g_b, o_b, host


@memoized(maxsize=4096)
def device_memory(model: ModelSpec, training: TrainingSpec, plan: Plan,
                  reserved_bytes: float = RESERVED_BYTES,
                  fragmentation: float = FRAGMENTATION) -> tuple[StageMemory, ...]:
    """Per-device peak memory, one :class:`StageMemory` per pipeline stage.

    Peak = allocated + reserved, allocated = params + grads + optimizer + activations +
    other: a conservative sum (all terms taken as live at once); reserved =
    ``reserved_bytes`` + ``fragmentation`` x the transient bytes, activations + other less
    the recycled gathered layers (:func:`_reserved`; :func:`memory_reserve` gives both
    for a cluster). ``plan.offload``: ``optimizer`` moves the optimizer state
    (fp32 master included) to host memory (ZeRO-Offload, Ren et al. 2021, Sec. 4.1);
    ``optimizer+params`` also the 16-bit weights (ZeRO-Infinity, Rajbhandari et al. 2021),
    leaving a two-layer working buffer in ``other_bytes``.
    """
    out = []
    # A dense model's states and buffers depend on a stage's class only (first, last,
    # layers per chunk: plan.stage_classes), as MemoryModel keys them by role: each class
    # is computed once. The activations are the stage's own.
    first = (stage_classes(plan.stage_layers, plan.pp, plan.virtual_stages)
             if not model.moe else range(plan.pp))
    terms = _activation_terms(model, training, plan)
    wgrad = (_wgrad_terms(model, training, plan) if plan.schedule == "zero_bubble"
             else None)
    fixed: dict[int, tuple] = {}
    for stage in range(plan.pp):
        if first[stage] == stage:
            recycled = gathered_buffer_bytes(model, training, plan, stage)
            fixed[stage] = (*_stage_states(model, training, plan, stage),
                            _other_bytes(model, training, plan, stage, recycled), recycled)
        p_b, g_b, o_b, host, other, recycled = fixed[first[stage]]
        # stage_activation_bytes, its terms found once
        act = _held_activation_bytes(plan, stage, plan.chunk_layers(stage),
                                     _chunk_moe_layers(model, plan, stage), terms, wgrad)
        sm = StageMemory(stage=stage, params_bytes=p_b, grads_bytes=g_b,
                         optimizer_bytes=o_b, activations_bytes=act, other_bytes=other,
                         peak_bytes=0.0, host_bytes=host, fixed_reserved_bytes=reserved_bytes,
                         fragmentation=fragmentation, recycled_bytes=recycled)
        out.append(sm.with_activations(act))
    return tuple(out)


@dataclass(frozen=True)
class _StageLayout:
    """Where one pipeline stage sits in a layer split: its chunks' layers and MoE layers
    (None: dense model), first / last, and ``role``: what its states and buffers depend
    on besides the plan's degrees (first, last, (dense, MoE) layer counts)."""

    stage: int
    layers: tuple[int, ...]
    chunk_moe: tuple[int, ...] | None
    first: bool
    last: bool
    role: tuple

    @property
    def class_key(self) -> tuple:
        """Equal on stages with the same role and chunks: the same states, buffers and
        activations per micro-batch."""
        return (self.role, self.layers, self.chunk_moe)


class MemoryModel:
    """:func:`device_memory` for many plans of one model and training setup (plan search,
    plan checks), with the same numbers bit for bit. Each per-stage term is memoised on
    the plan fields it depends on, so that plans differing elsewhere share it: a stage's
    model states on its role (first / last, dense and MoE layers), tp, ep, ZeRO, DP x CP,
    offload and pp > 1 (:meth:`_states_key`); its buffers on those and cp, SP,
    micro-batch, recompute, DP buckets and framework (:meth:`_other_key`); the saved
    activations per micro-batch on tp, cp, SP, micro-batch, recompute and ep
    (:func:`_activation_key`); the stages that can hold the peak on the layer split,
    schedule and micro-batch count (:meth:`contenders`)."""

    def __init__(self, model: ModelSpec, training: TrainingSpec,
                 reserved_bytes: float = RESERVED_BYTES,
                 fragmentation: float = FRAGMENTATION) -> None:
        self.model = model
        self.training = training
        self.reserved_bytes = reserved_bytes
        self.fragmentation = fragmentation
        self._layouts = table(self, "memory.layouts")
        self._states = table(self, "memory.states")
        self._others = table(self, "memory.others")
        self._activations = table(self, "memory.activations")
        self._wgrads = table(self, "memory.wgrads")
        self._contenders = table(self, "memory.contenders")
        self._class_acts = table(self, "memory.class_activations")
        self._gathered = table(self, "memory.zero3_gathered")
        self._recompute = table(self, "memory.recompute_buffers")

    def layout(self, plan: Plan) -> tuple[_StageLayout, ...]:
        """One :class:`_StageLayout` per stage of ``plan``'s layer split."""
        key = (plan.stage_layers, plan.pp)
        found = self._layouts.get(key)
        if found is None:
            found = self._layouts[key] = tuple(
                _StageLayout(stage, plan.chunk_layers(stage),
                             _chunk_moe_layers(self.model, plan, stage),
                             stage == 0, stage == plan.pp - 1,
                             (stage == 0, stage == plan.pp - 1,
                              stage_layer_kinds(self.model, plan, stage)))
                for stage in range(plan.pp))
        return found

    @staticmethod
    def _states_key(plan: Plan) -> tuple:
        """The plan fields :func:`_stage_states` depends on besides the stage's role."""
        return (plan.tp, plan.ep, plan.zero, plan.dp_cp, plan.shard, plan.offload,
                plan.pp > 1)

    @staticmethod
    def _other_key(plan: Plan) -> tuple:
        """The plan fields :func:`_other_bytes` depends on besides the stage's role."""
        return (plan.tp, plan.ep, plan.zero, plan.dp_cp, plan.shard, plan.offload,
                plan.pp > 1, plan.cp, plan.cp_comm, plan.sequence_parallel, plan.micro_batch,
                plan.recompute, plan.dp_bucket_bytes, plan.reshard_after_forward,
                plan.framework)

    def _by_role(self, memo: dict, key: tuple) -> dict:
        found = memo.get(key)
        if found is None:
            found = memo[key] = {}
        return found

    def _stage_fixed(self, plan: Plan, states: dict, others: dict,
                     st: _StageLayout) -> tuple:
        """(params, grads, optimizer, host, other, recycled) bytes of stage ``st``: the
        memoised :func:`_stage_states`, :func:`_other_bytes` and
        :func:`gathered_buffer_bytes`."""
        state = states.get(st.role)
        if state is None:
            state = states[st.role] = _stage_states(self.model, self.training, plan,
                                                    st.stage)
        other = others.get(st.role)
        if other is None:
            gathered = None
            if plan.offload == "optimizer+params" or (plan.zero >= 3 and plan.shard > 1):
                key = (plan.tp, plan.ep, plan.reshard_after_forward, plan.pp > 1, st.role)
                gathered = self._gathered.get(key)
                if gathered is None:
                    gathered = self._gathered[key] = zero3_gathered_params(
                        self.model, plan, st.stage)
            recompute = None
            if plan.recompute != "none":
                key = _activation_key(plan)
                recompute = self._recompute.get(key)
                if recompute is None:
                    recompute = self._recompute[key] = _recompute_buffer_bytes(
                        self.model, self.training, plan)
            recycled = gathered_buffer_bytes(self.model, self.training, plan, st.stage,
                                             gathered)
            other = others[st.role] = (
                _other_bytes(self.model, self.training, plan, st.stage, recycled, recompute),
                recycled)
        return (*state, *other)

    def _terms(self, plan: Plan) -> tuple[_ActivationTerms, tuple[float, float] | None]:
        key = _activation_key(plan)
        terms = self._activations.get(key)
        if terms is None:
            terms = self._activations[key] = _activation_terms(self.model, self.training,
                                                               plan)
        wgrad = None
        if plan.schedule == "zero_bubble":
            wgrad = self._wgrads.get(key)
            if wgrad is None:
                wgrad = self._wgrads[key] = _wgrad_terms(self.model, self.training, plan)
        return terms, wgrad

    def contenders(self, plan: Plan) -> tuple[tuple[_StageLayout, tuple], ...]:
        """The stages of ``plan`` that can hold its peak, each with its
        :func:`_held_profile`: all but those with an earlier stage of their class (same
        role and chunks: the same states, buffers and activations per micro-batch, all
        non-negative) that holds at least as much of every chunk at its every peaking
        moment (:func:`_covers`); such a stage peaks no higher and loses ties to the
        earlier one. Under 1F1B and GPipe that leaves the first stage of each class
        (``min(p - stage, m)`` micro-batches, or ``m``: never more than the stage
        before). Memoised on the layer split, schedule and micro-batch count."""
        key = (plan.stage_layers, plan.pp, plan.extra_warmup, plan.schedule,
               plan.micro_batches)
        found = self._contenders.get(key)
        if found is None:
            out: list[tuple[_StageLayout, tuple]] = []
            by_class: dict[tuple, list[tuple]] = {}
            for st in self.layout(plan):
                held = _held_profile(plan, st.stage, len(st.layers))
                most = tuple(map(max, zip(*held)))   # covering needs at least these
                earlier = by_class.setdefault(st.class_key, [])
                if not any(all(map(le, most, other_most))
                           and _covers(other_held, held)
                           for other_held, other_most in earlier):
                    out.append((st, held))
                    earlier.append((held, most))
            found = self._contenders[key] = tuple(out)
        return found

    def stages(self, plan: Plan) -> tuple[StageMemory, ...]:
        """:func:`device_memory` of ``plan``."""
        states = self._by_role(self._states, self._states_key(plan))
        others = self._by_role(self._others, self._other_key(plan))
        terms, wgrad = self._terms(plan)
        out = []
        for st in self.layout(plan):
            p_b, g_b, o_b, host, other, recycled = self._stage_fixed(plan, states, others,
                                                                      st)
            act = _held_activation_bytes(plan, st.stage, st.layers, st.chunk_moe, terms,
                                         wgrad)
            sm = StageMemory(stage=st.stage, params_bytes=p_b, grads_bytes=g_b,
                             optimizer_bytes=o_b, activations_bytes=act, other_bytes=other,
                             peak_bytes=0.0, host_bytes=host,
                             fixed_reserved_bytes=self.reserved_bytes,
                             fragmentation=self.fragmentation, recycled_bytes=recycled)
            out.append(sm.with_activations(act))
        return tuple(out)

    def class_activations(self, plan: Plan) -> tuple[tuple[_StageLayout, tuple], ...]:
        """Per class of stages (:meth:`contenders`, grouped: one stage of the class and
        its contenders' ``(activation bytes, stage)``, largest first, then by stage).
        Memoised on the activation terms' plan fields (:func:`_activation_key`), the
        layer split, schedule and micro-batch count: plans that differ in ZeRO, DP
        buckets or offload share it."""
        key = (_activation_key(plan), plan.stage_layers, plan.pp, plan.extra_warmup,
               plan.schedule, plan.micro_batches)
        found = self._class_acts.get(key)
        if found is None:
            terms, wgrad = self._terms(plan)
            by_class: dict[tuple, tuple[_StageLayout, list]] = {}
            for st, held in self.contenders(plan):
                act = _held_activation_bytes(plan, st.stage, st.layers, st.chunk_moe,
                                             terms, wgrad, held)
                by_class.setdefault(st.class_key, (st, []))[1].append((act, st.stage))
            found = self._class_acts[key] = tuple(
                (st, tuple(acts) if len(acts) == 1 else
                 tuple(sorted(acts, key=lambda a: (-a[0], a[1]))))
                for st, acts in by_class.values())
        return found

    def peak(self, plan: Plan) -> tuple[float, int]:
        """(peak bytes, stage at the peak) over the stages of ``plan``: the largest
        ``peak_bytes`` of :meth:`stages`, the lowest stage among equal peaks (the same
        sums in the same order as :meth:`StageMemory.with_activations`). Within a class
        the states and buffers are the same and the peak never falls as the activations
        grow, so each class is read from its largest activations down, only while the
        peak stays the class's largest (:meth:`class_activations`)."""
        states = self._by_role(self._states, self._states_key(plan))
        others = self._by_role(self._others, self._other_key(plan))
        fixed_bytes, fragmentation = self.reserved_bytes, self.fragmentation
        best_peak, best_stage = 0.0, -1
        for st, acts in self.class_activations(plan):
            p_b, g_b, o_b, _, other, recycled = self._stage_fixed(plan, states, others, st)
            base = p_b + g_b + o_b + other
            churn = other - recycled
            top = -1.0
            for act, stage in acts:
                allocated = base + act
                peak = allocated + _reserved(churn + act, fixed_bytes, fragmentation)
                if peak < top:
                    break
                if peak > best_peak or best_stage < 0 or (peak == best_peak
                                                          and stage < best_stage):
                    best_peak, best_stage = peak, stage
                top = peak
        return best_peak, best_stage


def fits(stages: tuple[StageMemory, ...], capacity_bytes: float) -> bool:
    """True when every stage's peak fits in ``capacity_bytes`` of device memory."""
    return all(s.peak_bytes <= capacity_bytes for s in stages)


def _check_stage(plan: Plan, stage: int) -> None:
    if not 0 <= stage < plan.pp:
        raise ValueError(f"stage must be in 0..{plan.pp - 1}, got {stage}")
