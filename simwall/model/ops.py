"""Per-layer operations of a transformer: FLOP, bytes moved and activations saved.

Every function returns the ops one device runs for one micro-batch (``b`` sequences of
``s`` tokens), with tensor parallelism (TP, degree ``t``) splitting heads, FFN and vocabulary
(Shoeybi et al. 2019, "Megatron-LM", Sec. 3) and, with sequence parallelism (SP), the norm /
dropout / residual regions split along the sequence (Korthikanti et al. 2022, "Reducing
Activation Recomputation in Large Transformer Models", Sec. 4.2.2). Without SP those regions
are replicated on every TP rank. Communication is not an op here (see :mod:`simwall.costing`).

Counting conventions (docs/cost-model.md has the derivations):

- A GEMM ``(m, k) x (k, n)`` costs ``2 m n k`` FLOP (one multiply and one add per MAC).
  Summed over a layer this gives ``24 b s h^2 + 4 b s^2 h`` for a GPT layer (Narayanan et
  al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters Using
  Megatron-LM", SC21, Sec. 5.1 / Appendix); causal masking is not subtracted (same paper).
  This is the MODEL FLOP convention (:func:`model_flop_per_step`, whatever the kernel).
- ``model.attention: eager`` runs the attention core as four kernels (scores, softmax,
  dropout, context) through device memory, the s x s tensors saved. ``flash`` runs one
  fused kernel per pass (FlashAttention, Dao et al. 2022, Sec. 3.1 / Algorithm 2;
  FlashAttention-2, Dao 2023): forward ``4 b s^2 h/t`` FLOP, halved for causal models
  (``kind: gpt``; the kernel skips the masked blocks, FlashAttention-2 Sec. 3.1.1), no s x s
  traffic, and it keeps only its output and the fp32 softmax statistics (logsumexp,
  ``b a s / t`` values); its backward recomputes the scores: 5 GEMMs to the forward's 2,
  2.5x the forward FLOP (FlashAttention-2, Sec. 4.1, its FLOP count). Hardware FLOP
  (:func:`hardware_flop_per_step`) sum what the kernels execute.
- Backward of a GEMM is two GEMMs of the same size (gradient wrt input and wrt weight): 2x
  forward FLOP (Narayanan et al. 2021, Sec. 5.1). Backward of an elementwise op moves about
  the same bytes and does about the same FLOP as its forward.
- ``saved_bytes`` of a forward op is what that op keeps for the backward pass under the
  plan's recompute mode; summed over a layer it reproduces Korthikanti et al. 2022, Sec. 4,
  eq. 1-2 and Table 2 exactly for 16-bit GPT layers (see :func:`activation_bytes_per_layer`).
- ``flop`` and the byte counts of an op are totals over its ``count`` identical GEMMs;
  ``gemm`` is the shape ``(m, n, k)`` of one of them.

Modes: ``train`` (forward, backward, recompute), ``prefill`` (forward on ``s`` tokens, no
dropout, K/V written to the cache) and ``decode`` (one new token per sequence against a KV
cache of ``s`` tokens: GEMMs have ``m = b`` and attention reads the cache).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import PRECISION_BYTES, ModelSpec, TrainingSpec
from ..errors import SimwallError
from ..memo import memoized
from ..plan import Plan
from .moe import is_moe_layer, routed_tokens

__all__ = [
    "ATTENTION_CORE",
    "FLASH_ATTENTION",
    "FLASH_BWD_FLOP_FACTOR",
    "FP8_CAST_WRITES",
    "FP8_GEMMS",
    "FP32_BYTES",
    "KINDS",
    "MASK_BYTES",
    "MODES",
    "PASSES",
    "SELECTIVE_RECOMPUTE",
    "WGRAD",
    "XENT_FUSED",
    "Op",
    "StageOps",
    "activation_bytes_per_layer",
    "activation_element_bytes",
    "chunk_ops",
    "embedding_ops",
    "hardware_flop_per_step",
    "head_ops",
    "head_wgrad_activation_bytes",
    "kv_heads_per_device",
    "layer_key",
    "layer_ops",
    "layer_plan",
    "layer_wgrad_activation_bytes",
    "model_flop_per_step",
    "ops_flop",
    "per_micro_batch",
    "stage_ops",
    "uses_flash",
    "wgrad_activation_bytes",
    "wgrad_ops",
]

KINDS = ("matmul", "attention", "fused_attention", "elementwise", "reduction")
PASSES = ("fwd", "bwd", "recompute")
MODES = ("train", "prefill", "decode")

#: Dropout masks are stored as 1 byte per element (Korthikanti et al. 2022, Sec. 4.1,
#: which counts every dropout mask as ``sbh`` bytes).
MASK_BYTES = 1
#: An fp32 element, bytes (IEEE 754 single precision): optimizer state, and the logits the
#: cross-entropy keeps (Korthikanti et al. 2022, Sec. 4.3).
FP32_BYTES = 4

#: The ops selective recompute drops and recomputes: the attention core, whose saved
#: tensors grow with s^2 (Korthikanti et al. 2022, Sec. 5).
ATTENTION_CORE = frozenset({"attn_scores", "softmax", "attn_dropout", "attn_context"})

#: The fused (flash) attention kernel's forward op; it keeps no s^2 tensor (its backward
#: recomputes the scores itself), only the fp32 logsumexp.
FLASH_ATTENTION = "flash_attention"
#: The ops selective recompute checkpoints, whichever attention kernel runs: Megatron-LM's
#: ``--recompute-granularity selective`` wraps the whole core attention in a checkpoint
#: (megatron/core/transformer/attention.py, ``Attention._checkpointed_attention_forward``,
#: taken when ``checkpoint_core_attention``: ``recompute_granularity == 'selective'`` and
#: ``'core_attn' in recompute_modules``, the default list in transformer_config.py
#: ``TransformerConfig.__post_init__``). Megatron's ``CheckpointFunction`` runs the module
#: under ``torch.no_grad`` and saves only its inputs (Q, K, V, mask;
#: megatron/core/tensor_parallel/random.py), so with a fused kernel the forward is re-run in
#: the backward and only what the kernel alone kept is dropped: its logsumexp (its output is
#: the output projection's saved input, Q, K, V the checkpoint's). Megatron warns that this
#: recompute is not needed with fused attention (transformer_config.py, the ``core_attn``
#: warning); simwall charges what the flag does.
SELECTIVE_RECOMPUTE = ATTENTION_CORE | {FLASH_ATTENTION}
#: Backward FLOP of the fused kernel over its forward FLOP: 5 GEMMs (recomputed scores,
#: dV, dP, dQ, dK) to the forward's 2 (Dao 2023, FlashAttention-2, Sec. 4.1: "the backward
#: pass ... 2.5 times the forward FLOPs").
FLASH_BWD_FLOP_FACTOR = 2.5
#: Name suffix of the weight-gradient GEMM of a linear layer (``dB = A^T dC``, see
#: :func:`_grad_ops`): the W pass of a split backward (Qi et al. 2024, "Zero Bubble
#: Pipeline Parallelism", ICLR, Sec. 2: B computes the input gradient, W the parameter
#: gradient); everything else of a backward (dgrad, attention core, norms, elementwise,
#: recompute) is the B pass.
WGRAD = ".wgrad"


#: The GEMMs an fp8 run executes in FP8: the linear layers of a transformer layer, in
#: forward, dgrad and wgrad (Transformer Engine's ``Linear`` / ``LayerNormLinear`` /
#: ``LayerNormMLP`` under ``fp8_autocast``; TE docs "Using FP8 with Transformer Engine").
#: The attention core (QK^T, softmax, attention x V), norms, elementwise ops, the
#: embedding and the LM head stay 16-bit (Megatron-Core builds the output layer outside TE).
FP8_GEMMS = frozenset({"qkv_proj", "out_proj", "mlp_up", "mlp_down", "shared_mlp_up",
                       "shared_mlp_down", "q_proj", "q_down", "q_up", "kv_down", "kv_up"})
#: Elementwise work TE adds per FP8 GEMM operand that is not already FP8: a fused
#: cast-transpose kernel reads the 16-bit tensor, computes its amax for the delayed scaling
#: recipe and writes the FP8 tensor and its transpose (1 B each; Hopper FP8 GEMMs need
#: the transposed copy for dgrad / wgrad): forward input and backward output gradient
#: (Micikevicius et al. 2022, Sec. 4-5: per-tensor scaling from amax history; TE C API
#: ``nvte_cast_transpose``). Weights are cast once per step and cached (TE "FP8 weight
#: caching", ``is_first_microbatch``): their cast is not charged per micro-batch.
FP8_CAST_WRITES = 2
#: FP8 GEMMs whose input cast is fused into the kernel that produces the input, so no
#: separate cast runs: Transformer Engine's ``LayerNormLinear`` (QKV) and ``LayerNormMLP``
#: (up projection) take the norm's output in FP8 (the norm kernel writes it), and
#: ``LayerNormMLP`` writes the activation's output in FP8 for the down projection (TE
#: pytorch/module/layernorm_linear.py, layernorm_mlp.py: ``layernorm_fwd_fp8`` and the
#: activation with an FP8 output type). The attention output entering ``out_proj`` is cast
#: by a kernel of its own (fused attention returns bf16 by default).
FP8_FUSED_INPUT_CASTS = frozenset({"qkv_proj", "mlp_up", "mlp_down", "shared_mlp_down"})
#: FP8 GEMMs whose output-gradient cast is fused into the kernel producing that gradient:
#: the up projection of a GELU MLP, whose gradient comes out of the GELU backward with the
#: cast-transpose fused (TE ``fp8_cast_transpose_bgrad_dgelu_fused``). The other output
#: gradients arrive from the residual stream or the attention backward and are cast by
#: their own cast-transpose kernels.
FP8_FUSED_GRAD_CASTS = frozenset({"mlp_up"})
_CAST_FLOP = 2             # scale and compare (amax) per element

# Arithmetic per element of the non-GEMM ops, counted from their definitions. They are
# below 1 % of a layer's FLOP for h >= 1024 and only matter for the roofline table.
_NORM_FLOP = {"layernorm": 7, "rmsnorm": 4}  # LN: mean, var (2), sub, div, scale, shift
_SOFTMAX_FLOP = 5          # max, subtract, exp, sum, divide
_DROPOUT_FLOP = 2          # compare with the random draw, scale
_ADD_FLOP = 1              # residual add
_GELU_FLOP = 8             # tanh approximation (Hendrycks & Gimpel 2016, Sec. 2)
_SWIGLU_FLOP = 5           # x * sigmoid(x) (exp, add, div, mul) times the gate (mul)
_XENT_FLOP = 5             # log-softmax (max, sub, exp, sum, log) per logit

# Memory passes of the cross-entropy over the logits, per logit, as Megatron-LM runs it
# (megatron/core/tensor_parallel/cross_entropy.py, VocabParallelCrossEntropy; the same
# steps in Megatron-LM 2021's mpu/cross_entropy.py): unfused PyTorch kernels in fp32.
# Forward: cast of the 16-bit logits to fp32 (read e, write 4), row max (read 4),
# in-place subtract of the max (read 4, write 4), in-place exp (read 4, write 4), row sum
# (read 4), in-place divide by the sum, the saved softmax (read 4, write 4).
# Backward: in-place multiply of the softmax by the loss gradient (read 4, write 4; the
# target-class subtraction touches one logit per token), then the autograd cast back to
# the logits' dtype (read 4, write e). Plain PyTorch ``F.cross_entropy`` under autocast
# (FSDP runs) makes a similar number of fp32 passes (cast, log-softmax, NLL and their
# backwards); it is counted the same way.
_XENT_FWD_READ_FP32 = 5    # fp32 words read per logit, besides the 16-bit cast input
_XENT_FWD_WRITTEN_FP32 = 4  # fp32 words written per logit
_XENT_BWD_READ_FP32 = 2    # fp32 words read per logit
_XENT_BWD_WRITTEN_FP32 = 1  # fp32 words written per logit, besides the e-byte gradient
# A fused cross-entropy (``model.cross_entropy: fused``) makes one pass over the 16-bit
# logits each way: the forward reads them and writes three fp32 words per token (loss,
# log-sum-exp, z-loss), keeping the logits and the log-sum-exp; the backward reads both
# and writes the 16-bit gradient (flash_attn/ops/triton/cross_entropy.py,
# cross_entropy_fwd_kernel / cross_entropy_bwd_kernel; Inductor's fused loss the same).
_XENT_FUSED_ROW_FP32 = 3   # fp32 words written per token by the fused forward
_XENT_FUSED_BWD_FLOP = 3   # per logit: exp(logit - lse), minus the one-hot, times the grad


@dataclass(frozen=True)
class Op:
    """One kernel (or one fused group) of one device, one micro-batch.

    ``flop`` in FLOP; ``bytes_read`` / ``bytes_written`` from / to device memory;
    ``saved_bytes`` the activation bytes this (forward) op keeps for backward;
    ``gemm`` the ``(m, n, k)`` of one of the ``count`` identical GEMMs, else ``None``;
    ``fp8``: the GEMM runs at the FP8 rate (an fp8 run's linear layers, :data:`FP8_GEMMS`).
    """

    name: str
    kind: str
    flop: float
    bytes_read: float
    bytes_written: float
    saved_bytes: float = 0.0
    gemm: tuple[int, int, int] | None = None
    count: int = 1
    pass_: str = "fwd"
    fp8: bool = False  # a GEMM run at the FP8 tensor-core rate (see FP8_GEMMS)
    # Which implementation runs a fused attention op: "" the framework's default kernel on
    # the device, "fa2" FlashAttention-2 forced (``model.flash_kernel``; its efficiency:
    # simwall.hardware.efficiency).
    kernel: str = ""

    @property
    def bytes_(self) -> float:
        """Bytes moved to and from device memory."""
        return self.bytes_read + self.bytes_written

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOP per byte moved (0 when nothing is moved)."""
        return self.flop / self.bytes_ if self.bytes_ > 0 else 0.0


@dataclass(frozen=True)
class StageOps:
    """Ops of one pipeline stage per micro-batch: forward, and backward with recompute."""

    fwd: tuple[Op, ...]
    bwd: tuple[Op, ...]


# ---------------------------------------------------------------------------------------
# Shapes


@dataclass(frozen=True)
class _Dims:
    """Per-device sizes of one micro-batch."""

    tokens: int          # tokens through the projections (b s; b when decoding)
    b: int
    s: int               # query length of the attention (s; 1 when decoding)
    ctx: int             # key length of the attention (s; the KV cache when decoding)
    h: int
    heads: int           # query heads on this device
    kv: int              # K/V heads on this device
    d: float             # per-head attention dim (latent attention: mean of QK and V)
    ffn: int             # FFN width on this device
    moe_ffn: int         # one expert's MLP width on this device (MoE models)
    vocab: int           # vocabulary rows on this device
    rep: int             # divisor of the norm / dropout regions: t with SP, else 1
    e: int               # bytes per activation element
    w: int               # bytes per weight element
    g: int               # bytes per weight-gradient element
    dropout: bool
    flash: bool          # fused (flash) attention kernel
    flash_kernel: str    # its implementation: "" the default, "fa2" (Op.kernel)
    causal: bool         # causal mask: the fused kernel skips the masked half
    gated: bool          # gated (SwiGLU) MLP


def _check(pass_: str, mode: str) -> None:
    if pass_ not in PASSES:
        raise SimwallError(f"workload: pass_ must be one of {', '.join(PASSES)}, got {pass_!r}")
    if mode not in MODES:
        raise SimwallError(f"workload: mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != "train" and pass_ != "fwd":
        raise SimwallError(f"workload: mode {mode!r} has only a forward pass, got {pass_!r}")


def activation_element_bytes(training: TrainingSpec) -> int:
    """Bytes of an activation element (computed and saved): 16-bit in mixed precision
    (Korthikanti et al. 2022, Sec. 4.1 assumes 2 bytes), 4 in fp32; FP8 runs keep 16-bit
    activations and cast inside the GEMMs (Micikevicius et al. 2022, "FP8 Formats for Deep
    Learning", Sec. 4; Transformer Engine keeps most saved tensors in bf16, an
    approximation)."""
    return training.weight_bytes


def uses_flash(model: ModelSpec, training: TrainingSpec) -> bool:
    """Whether the attention core runs as one fused (flash) kernel: ``model.attention:
    flash`` and 16-bit activations. FlashAttention runs in fp16 / bf16 only (Dao 2023,
    FlashAttention-2, Sec. 4; the flash-attn package supports no fp32), so fp32 training
    falls back to the eager kernels (as PyTorch's scaled_dot_product_attention does)."""
    return model.attention == "flash" and activation_element_bytes(training) == 2


def kv_heads_per_device(model: ModelSpec, tp: int) -> int:
    """K/V heads per TP rank: split when ``tp`` divides them, else one replicated head per
    rank (plan.resolve allows ``tp`` a multiple of ``kv_heads``; Megatron-LM's GQA
    placement; Ainslie et al. 2023 define GQA)."""
    kv_heads = model.kv_heads_
    return kv_heads // tp if kv_heads % tp == 0 else 1


def _attention_dim(model: ModelSpec) -> float:
    """Per-head dimension the attention core runs at: the head size, or with latent
    attention the mean of the query-key and value head sizes (QK^T runs at the one, PV at
    the other; the fused kernel's FLOP and bytes are linear in both)."""
    if model.mla is None:
        return model.head_dim
    return (model.mla.qk_head_dim + model.mla.v_head_dim) / 2


@memoized(maxsize=1024)
def per_micro_batch(training: TrainingSpec, plan: Plan) -> tuple[TrainingSpec, Plan]:
    """``training`` and ``plan`` with one micro-batch per DP replica (global batch =
    micro-batch x dp), all else kept: the memo key of per-micro-batch ops and costs. No
    op of this module reads ``global_batch`` or ``micro_batches``, so points of a sweep
    that change only the global batch share those memo entries."""
    gb = plan.micro_batch * plan.dp
    if training.global_batch != gb:
        training = training.model_copy(update={"global_batch": gb})
    if plan.global_batch != gb:
        plan = replace(plan, global_batch=gb)
    return training, plan


def layer_plan(plan: Plan) -> Plan:
    """``plan`` reduced to what the ops of a layer, the embedding and the LM head read
    (:func:`layer_ops`, :func:`embedding_ops`, :func:`head_ops`: ``_dims``, the recompute
    mode and the expert-parallel degree): tp, cp, sequence parallelism, micro-batch,
    recompute and ep, the rest at one device's values. Plans equal here have the same
    per-layer ops, so costs memoised on it are shared by plans that differ elsewhere."""
    return Plan(tp=plan.tp, pp=1, dp=1, virtual_stages=1,
                sequence_parallel=plan.sequence_parallel, zero=0, recompute=plan.recompute,
                schedule="1f1b", micro_batch=plan.micro_batch, global_batch=plan.micro_batch,
                stage_layers=(1,), cp=plan.cp, ep=plan.ep)


@memoized(maxsize=4096)
def layer_key(training: TrainingSpec, plan: Plan) -> tuple[TrainingSpec, Plan]:
    """``(training, plan)`` reduced to what the per-layer functions of this module read
    (:func:`layer_ops`, :func:`activation_bytes_per_layer`,
    :func:`layer_wgrad_activation_bytes`, :func:`head_wgrad_activation_bytes`,
    :func:`embedding_ops`, :func:`head_ops`): :func:`layer_plan` and the training at its
    one micro-batch (:func:`per_micro_batch`). Their memo entries are then shared by
    plans that differ only in pp, dp, ZeRO, schedule, buckets and the like; the values
    are the same, as those functions read nothing else."""
    layer = layer_plan(plan)
    return per_micro_batch(training, layer)[0], layer


def _dims(model: ModelSpec, training: TrainingSpec, plan: Plan, mode: str) -> _Dims:
    t = plan.tp
    b, s = plan.micro_batch, model.seq_len
    decode = mode == "decode"
    # Context parallelism (plan.cp): each CP rank holds s/cp tokens of every sequence, its
    # queries attending to the keys of the whole sequence (ring or all-gathered K/V,
    # simwall.costing.cp). With causal load balancing (two mirrored chunks per rank) its
    # attention FLOP are 1/cp of the sequence's (Megatron-Core / Transformer Engine).
    q = s // plan.cp if not decode else s
    # Inference runs without dropout.
    return _Dims(
        tokens=b if decode else b * q, b=b, s=1 if decode else q, ctx=s, h=model.hidden,
        heads=model.heads // t, kv=kv_heads_per_device(model, t), d=_attention_dim(model),
        ffn=model.ffn // t, moe_ffn=model.moe_ffn // t, vocab=-(-model.vocab // t), rep=t if plan.sequence_parallel else 1,
        e=activation_element_bytes(training), w=PRECISION_BYTES[training.precision],
        g=PRECISION_BYTES[training.grad_precision_],
        dropout=model.dropout and mode == "train",
        # Decoding (one query per sequence against the cache) keeps the eager ops.
        flash=uses_flash(model, training) and not decode,
        flash_kernel="" if model.flash_kernel == "default" else model.flash_kernel,
        causal=model.kind == "gpt",
        gated=model.gated_mlp)


def _gemm_op(name: str, m: int, n: int, k: int, *, kind: str = "matmul", count: int = 1,
             read: float, written: float, saved: float = 0.0) -> Op:
    return Op(name=name, kind=kind, flop=2.0 * m * n * k * count, bytes_read=float(read),
              bytes_written=float(written), saved_bytes=float(saved), gemm=(m, n, k),
              count=count)


def _ew_op(name: str, kind: str, flop: float, read: float, written: float,
           saved: float = 0.0) -> Op:
    return Op(name=name, kind=kind, flop=float(flop), bytes_read=float(read),
              bytes_written=float(written), saved_bytes=float(saved))


def _norm_op(name: str, model: ModelSpec, x: _Dims, tokens: int, save: bool) -> Op:
    elems = tokens * x.h / x.rep
    return _ew_op(name, "reduction", _NORM_FLOP[model.norm] * elems, elems * x.e + 2 * x.h * x.w,
                  elems * x.e, saved=elems * x.e if save else 0.0)


def _dropout_add_op(name: str, x: _Dims) -> Op:
    """Dropout of a projection output plus the residual add, one fused kernel."""
    elems = x.tokens * x.h / x.rep
    if x.dropout:
        return _ew_op(name, "elementwise", (_DROPOUT_FLOP + _ADD_FLOP) * elems, 2 * elems * x.e,
                      elems * x.e + elems * MASK_BYTES, saved=elems * MASK_BYTES)
    return _ew_op(name, "elementwise", _ADD_FLOP * elems, 2 * elems * x.e, elems * x.e)


# ---------------------------------------------------------------------------------------
# One transformer layer


def _layer_fwd(model: ModelSpec, training: TrainingSpec, plan: Plan, mode: str,
               moe: bool = False) -> tuple[Op, ...]:
    """Forward ops of one layer (an MoE layer when ``moe``) with the activations each
    would save without recompute."""
    x = _dims(model, training, plan, mode)
    train = mode == "train"
    T, h, e, w = x.tokens, x.h, x.e, x.w
    q_out, kv_out = x.heads * x.d, x.kv * x.d
    qkv_out = q_out + 2 * kv_out
    ops: list[Op] = [_norm_op("input_norm", model, x, T, save=train)]
    if model.mla is not None:
        ops += _mla_projections(model, x, train)
        q_out = x.heads * model.mla.v_head_dim          # the output projection's input
    else:
        # QKV projection. It saves its input (sequence-parallel shard with SP: Korthikanti
        # et al. 2022, Sec. 4.2.2) and keeps Q, K, V for the attention core's backward.
        ops.append(_gemm_op(
            "qkv_proj", T, qkv_out, h, read=T * h * e + qkv_out * h * w,
            written=T * qkv_out * e,
            saved=(T * h * e / x.rep + T * qkv_out * e) if train else 0.0))
    if x.flash:
        ops.append(_flash_fwd_op(x, train))
    else:
        ops += _eager_core(x, train)
    ops.append(_gemm_op("out_proj", T, h, q_out, read=T * q_out * e + h * q_out * w,
                        written=T * h * e, saved=T * q_out * e if train else 0.0))
    ops.append(_dropout_add_op("attn_residual", x))
    ops.append(_norm_op("post_attn_norm", model, x, T, save=train))
    if moe:
        ops += _moe_ops(model, x, train, plan.ep)
    else:
        ops += _mlp_ops(model, x, train, "mlp", T, x.ffn, T * h * e / x.rep)
    ops.append(_dropout_add_op("mlp_residual", x))
    return tuple(ops)


def _mlp_ops(model: ModelSpec, x: _Dims, train: bool, name: str, tokens: int, ffn: int,
             saved_input: float, experts: int = 1) -> list[Op]:
    """An MLP of width ``ffn`` (per device) on ``tokens`` tokens: up (and gate)
    projection, activation, down projection; ``experts`` > 1: that many expert MLPs as
    grouped GEMMs sharing the tokens evenly. ``saved_input``: bytes the up projection keeps
    of its input."""
    h, e, w = x.h, x.e, x.w
    branches = 2 if model.gated_mlp else 1
    m = -(-tokens // experts)                     # tokens per expert GEMM
    ops = [_gemm_op(
        name + "_up", m, ffn, h, count=branches * experts,
        read=tokens * h * e + branches * experts * ffn * h * w,
        written=branches * tokens * ffn * e, saved=saved_input if train else 0.0)]
    act_flop = _SWIGLU_FLOP if model.gated_mlp else _GELU_FLOP
    ops.append(_ew_op(name + "_act", "elementwise", act_flop * tokens * ffn,
                      branches * tokens * ffn * e, tokens * ffn * e,
                      saved=branches * tokens * ffn * e if train else 0.0))
    ops.append(_gemm_op(name + "_down", m, h, ffn, count=experts,
                        read=tokens * ffn * e + experts * h * ffn * w,
                        written=tokens * h * e, saved=tokens * ffn * e if train else 0.0))
    return ops


def _moe_ops(model: ModelSpec, x: _Dims, train: bool, ep: int) -> list[Op]:
    """The MLP of an MoE layer (:mod:`simwall.model.moe`): router on the device's own
    tokens (its sequence-parallel shard with SP, as Megatron-Core routes them), top-k,
    permutation into expert order, the ``experts / ep`` local experts as grouped GEMMs
    on the routed tokens (gathered over TP: each TP rank runs its slice of every local
    expert on all of them), un-permutation with the routing weights, and the shared
    experts. The token exchange (all-to-all over EP, all-gather / reduce-scatter over TP)
    is communication, costed in :mod:`simwall.costing.ep`."""
    h, e, w = x.h, x.e, x.w
    n_exp = model.experts
    own = x.tokens // x.rep                       # tokens this device routes
    picked = own * model.top_k                    # its token-expert assignments
    ops = [
        # Router logits in fp32 (Megatron-Core's router computes them in fp32), kept with
        # the input for the backward.
        _gemm_op("moe_router", own, n_exp, h, read=own * h * e + n_exp * h * w,
                 written=own * n_exp * FP32_BYTES,
                 saved=(own * h * e + own * n_exp * FP32_BYTES) if train else 0.0),
        _ew_op("moe_topk", "reduction", _SOFTMAX_FLOP * own * n_exp, own * n_exp * FP32_BYTES,
               picked * 2 * FP32_BYTES),
        _ew_op("moe_permute", "elementwise", 0.0, own * h * e, picked * h * e),
    ]
    routed = routed_tokens(model, x.tokens)   # after the gather over TP
    ops += _mlp_ops(model, x, train, "mlp", routed, x.moe_ffn, routed * h * e,
                    experts=n_exp // ep)
    # Un-permute and weight by the router probabilities; the expert outputs are kept
    # for the gradient of the weights.
    ops.append(_ew_op("moe_unpermute", "elementwise", 2 * picked * h, picked * h * e,
                      own * h * e, saved=picked * h * e if train else 0.0))
    if model.shared_experts:
        ops += _mlp_ops(model, x, train, "shared_mlp", x.tokens,
                        model.shared_experts * x.moe_ffn, x.tokens * h * e / x.rep)
    return ops


def _mla_projections(model: ModelSpec, x: _Dims, train: bool) -> list[Op]:
    """Multi-head latent attention's projections (:class:`~simwall.config.MLASpec`):
    query down-projection, its norm and up-projection (or one query projection), the joint
    key-value down-projection (latent plus the shared rotary key), its norm and the
    up-projection to per-head keys and values. The down-projections are replicated on
    every TP rank, the up-projections split by heads (Megatron-Core
    multi_latent_attention.py: ``linear_kv_down_proj`` with ``parallel_mode='duplicated'``,
    the up-projections column-parallel). Each GEMM keeps its input; Q, K and V are kept for
    the attention core, as the QKV projection keeps them."""
    m = model.mla
    T, h, e, w = x.tokens, x.h, x.e, x.w
    qk = x.heads * m.qk_head_dim                    # per device
    kv_up = x.heads * (m.qk_nope_head_dim + m.v_head_dim)
    kv_down = m.kv_lora_rank + m.qk_rope_head_dim
    saved_qkv = T * x.heads * (2 * m.qk_head_dim + m.v_head_dim) * e
    ops: list[Op] = []
    if m.q_lora_rank is None:
        ops.append(_gemm_op("q_proj", T, qk, h, read=T * h * e + qk * h * w,
                            written=T * qk * e, saved=T * h * e / x.rep if train else 0.0))
    else:
        r = m.q_lora_rank
        ops.append(_gemm_op("q_down", T, r, h, read=T * h * e + r * h * w, written=T * r * e,
                            saved=T * h * e / x.rep if train else 0.0))
        ops.append(_ew_op("q_norm", "reduction", _NORM_FLOP["rmsnorm"] * T * r, T * r * e,
                          T * r * e, saved=T * r * e if train else 0.0))
        ops.append(_gemm_op("q_up", T, qk, r, read=T * r * e + qk * r * w, written=T * qk * e,
                            saved=T * r * e if train else 0.0))
    ops.append(_gemm_op("kv_down", T, kv_down, h, read=T * h * e + kv_down * h * w,
                        written=T * kv_down * e))   # shares the saved norm output
    c = m.kv_lora_rank
    ops.append(_ew_op("kv_norm", "reduction", _NORM_FLOP["rmsnorm"] * T * c, T * c * e,
                      T * c * e, saved=T * c * e if train else 0.0))
    ops.append(_gemm_op("kv_up", T, kv_up, c, read=T * c * e + kv_up * c * w,
                        written=T * kv_up * e,
                        saved=(T * c * e + saved_qkv) if train else 0.0))
    return ops


def _eager_core(x: _Dims, train: bool) -> list[Op]:
    """The attention core as separate kernels (scores, softmax, dropout, context), the
    s x s tensors through device memory and saved (Korthikanti et al. 2022, Sec. 4.1)."""
    e = x.e
    q_out, kv_out = x.heads * x.d, x.kv * x.d
    attn_elems = x.b * x.heads * x.s * x.ctx          # elements of QK^T (per device)
    ops: list[Op] = []
    # Attention core, one GEMM per (sequence, head). Decoding reads K and V of the cache.
    k_read = x.b * x.ctx * kv_out * e
    ops.append(_gemm_op(
        "attn_scores", x.s, x.ctx, x.d, kind="attention", count=x.b * x.heads,
        read=x.b * x.s * q_out * e + k_read, written=attn_elems * e))
    ops.append(_ew_op("softmax", "reduction", _SOFTMAX_FLOP * attn_elems, attn_elems * e,
                      attn_elems * e, saved=attn_elems * e if train else 0.0))
    if x.dropout:
        ops.append(_ew_op("attn_dropout", "elementwise", _DROPOUT_FLOP * attn_elems,
                          attn_elems * e, attn_elems * (e + MASK_BYTES),
                          saved=attn_elems * MASK_BYTES))
    # attention x V saves its probability input: the dropout output (the softmax output,
    # already saved by softmax, when there is no dropout).
    ops.append(_gemm_op(
        "attn_context", x.s, x.d, x.ctx, kind="attention", count=x.b * x.heads,
        read=attn_elems * e + k_read, written=x.b * x.s * q_out * e,
        saved=attn_elems * e if x.dropout else 0.0))
    return ops


def _flash_flop(x: _Dims) -> float:
    """Forward FLOP of the fused kernel on one device: QK^T and PV, ``2 x 2 s ctx d`` per
    (sequence, head), halved for a causal mask (FlashAttention-2, Dao 2023, Sec. 4.1 counts
    FLOP this way; Sec. 3.1.1: blocks above the diagonal are skipped)."""
    flop = 4.0 * x.b * x.heads * x.s * x.ctx * x.d
    return flop / 2 if x.causal else flop


def _flash_fwd_op(x: _Dims, train: bool) -> Op:
    """One fused attention kernel (FlashAttention, Dao et al. 2022, Algorithm 2): reads Q,
    K, V once, writes the output O and the fp32 logsumexp L (one per query row and head);
    nothing of size s x s reaches device memory. It keeps L for the backward (O is the
    output projection's saved input, Q, K, V the QKV projection's output, counted there);
    the dropout mask is regenerated from the RNG state, not stored (Dao et al. 2022, Sec.
    3.1, "Recomputation")."""
    e = x.e
    q_bytes = x.b * x.s * x.heads * x.d * e
    kv_bytes = 2 * x.b * x.ctx * x.kv * x.d * e
    lse_bytes = x.b * x.heads * x.s * FP32_BYTES
    return replace(_ew_op(FLASH_ATTENTION, "fused_attention", _flash_flop(x),
                          q_bytes + kv_bytes, q_bytes + lse_bytes,
                          saved=lse_bytes if train else 0.0), kernel=x.flash_kernel)


def _flash_bwd_op(op: Op, x: _Dims) -> Op:
    """Backward of the fused kernel (FlashAttention-2, Dao 2023, Algorithm 2): recomputes
    the scores from Q, K and L, reads Q, K, V, O, dO and L, writes dQ, dK, dV;
    :data:`FLASH_BWD_FLOP_FACTOR` x the forward FLOP."""
    e = x.e
    q_bytes = x.b * x.s * x.heads * x.d * e
    kv_bytes = 2 * x.b * x.ctx * x.kv * x.d * e
    lse_bytes = x.b * x.heads * x.s * FP32_BYTES
    return Op(name=op.name + ".grad", kind=op.kind, flop=FLASH_BWD_FLOP_FACTOR * op.flop,
              bytes_read=float(3 * q_bytes + kv_bytes + lse_bytes),
              bytes_written=float(q_bytes + kv_bytes), pass_="bwd", kernel=op.kernel)


def _cast_op(name: str, elems: float, e: int, pass_: str = "fwd") -> Op:
    """The FP8 cast-transpose (with amax) of ``elems`` 16-bit elements (:data:`FP8_CAST_WRITES`)."""
    return Op(name=name, kind="elementwise", flop=float(_CAST_FLOP * elems),
              bytes_read=float(elems * e), bytes_written=float(FP8_CAST_WRITES * elems),
              pass_=pass_)


def _fp8_forward(fwd: tuple[Op, ...], e: int) -> tuple[Op, ...]:
    """An fp8 run's forward ops: the :data:`FP8_GEMMS` marked ``fp8``, those whose input
    cast is not fused (:data:`FP8_FUSED_INPUT_CASTS`) preceded by it (``count`` x m x k
    elements)."""
    out: list[Op] = []
    for op in fwd:
        if op.name in FP8_GEMMS and op.gemm is not None:
            m, _, k = op.gemm
            if op.name not in FP8_FUSED_INPUT_CASTS:
                out.append(_cast_op(op.name + ".cast", op.count * m * k, e))
            op = replace(op, fp8=True)
        out.append(op)
    return tuple(out)


def _kept(op: Op, recompute: str) -> bool:
    """Whether ``op``'s saved activations stay in memory under ``recompute``."""
    if recompute == "full":
        return op.name == "input_norm"  # the layer input only (Korthikanti et al. 2022, Sec. 5)
    if recompute == "selective":
        return op.name not in SELECTIVE_RECOMPUTE
    return True


def _grad_ops(op: Op, x: _Dims) -> tuple[Op, ...]:
    """Backward ops of a forward op.

    GEMM ``C = A B`` with A ``(m, k)``, B ``(k, n)``: ``dA = dC B^T`` (``m, k, n``) and
    ``dB = A^T dC`` (``k, n, m``), each as many FLOP as the forward. Weight gradients of
    ``matmul`` ops are written in the gradient precision.
    """
    if op.name.endswith(".cast"):
        return ()                 # an FP8 cast has no backward (the gradient is cast anew)
    if op.name == FLASH_ATTENTION:
        return (_flash_bwd_op(op, x),)
    if op.name == "cross_entropy":
        return (_cross_entropy_grad_op(op, x.e),)
    if op.name == XENT_FUSED:
        return (_fused_cross_entropy_grad_op(op),)
    if op.gemm is None:
        return (replace(op, name=op.name + ".grad", saved_bytes=0.0, pass_="bwd"),)
    m, n, k = op.gemm
    c, e = op.count, x.e
    weight = op.kind == "matmul"
    cast: tuple[Op, ...] = ()
    if op.fp8 and not (op.name in FP8_FUSED_GRAD_CASTS and not x.gated):
        # The output gradient is cast (with its transpose for wgrad) once for both GEMMs.
        cast = (_cast_op(op.name + ".grad_cast", c * m * n, e, "bwd"),)
    b_bytes = n * k * (x.w if weight else e)
    d_a = _gemm_op(op.name + ".dgrad", m, k, n, kind=op.kind, count=c,
                   read=c * (m * n * e + b_bytes), written=c * m * k * e)
    d_b = _gemm_op(op.name + ".wgrad" if weight else op.name + ".dgrad2", k, n, m, kind=op.kind,
                   count=c, read=c * (m * k * e + m * n * e),
                   written=c * k * n * (x.g if weight else e))
    return cast + (replace(d_a, pass_="bwd", fp8=op.fp8), replace(d_b, pass_="bwd", fp8=op.fp8))


@memoized(maxsize=1024)
def layer_ops(model: ModelSpec, training: TrainingSpec, plan: Plan, pass_: str = "fwd",
              mode: str = "train", moe: bool = False) -> tuple[Op, ...]:
    """Ops of one transformer layer on one device for one micro-batch (``moe``: an MoE
    layer of a mixture-of-experts model, :func:`_moe_ops`).

    ``pass_='fwd'``: forward ops; their ``saved_bytes`` are what stays in memory under
    ``plan.recompute`` (zero for the ops whose activations are dropped).
    ``pass_='bwd'``: gradient ops, in backward order (recompute excluded).
    ``pass_='recompute'``: the forward ops re-run during backward (``full``: the whole
    layer; ``selective``: the attention core, eager kernels or the fused one,
    :data:`SELECTIVE_RECOMPUTE`; ``none``: no ops), in forward order.
    """
    _check(pass_, mode)
    if moe and not model.moe:
        raise SimwallError("workload: an MoE layer needs model.experts")
    fwd = _layer_fwd(model, training, plan, mode, moe)
    if training.precision == "fp8":
        fwd = _fp8_forward(fwd, activation_element_bytes(training))
    if pass_ == "fwd":
        return tuple(op if _kept(op, plan.recompute) else replace(op, saved_bytes=0.0)
                     for op in fwd)
    if pass_ == "recompute":
        chosen = {"none": (),
                  "selective": [op for op in fwd if op.name in SELECTIVE_RECOMPUTE],
                  "full": fwd}[plan.recompute]
        return tuple(replace(op, saved_bytes=0.0, pass_="recompute") for op in chosen)
    x = _dims(model, training, plan, mode)
    return tuple(g for op in reversed(fwd) for g in _grad_ops(op, x))


@memoized(maxsize=1024)
def activation_bytes_per_layer(model: ModelSpec, training: TrainingSpec, plan: Plan,
                               moe: bool = False) -> float:
    """Activation bytes one layer (``moe``: an MoE layer) keeps per micro-batch per device
    under ``plan.recompute``: the sum of ``saved_bytes`` of its forward ops (Korthikanti
    et al. 2022, Table 2)."""
    return float(sum(op.saved_bytes for op in layer_ops(model, training, plan, "fwd",
                                                         moe=moe)))


def wgrad_ops(ops: tuple[Op, ...]) -> tuple[Op, ...]:
    """The weight-gradient GEMMs (:data:`WGRAD`) among backward ``ops``: the W pass."""
    return tuple(op for op in ops if op.name.endswith(WGRAD))


#: Linear layers whose input lives in the sequence-parallel region (saved as the SP shard,
#: Korthikanti et al. 2022, Sec. 4.2.2): the column-parallel QKV and MLP-up projections
#: and the LM head; and those whose output does (the row-parallel output and MLP-down
#: projections, reduce-scattered into it), so their output gradient arrives as the shard.
_SP_INPUTS = frozenset({"qkv_proj", "mlp_up", "lm_head"})
_SP_OUTPUTS = frozenset({"out_proj", "mlp_down"})


def wgrad_activation_bytes(fwd: tuple[Op, ...], x_rep: int, e: int) -> float:
    """Bytes a deferred W pass keeps per micro-batch from the end of its B pass until it
    runs: for every linear (``matmul``) op of ``fwd``, its input ``A`` (m x k) and its
    output gradient ``dC`` (m x n per branch), the two operands of ``dB = A^T dC``; ``e``
    bytes per element. Operands in the sequence-parallel region (:data:`_SP_INPUTS`,
    :data:`_SP_OUTPUTS`; ``x_rep`` the SP divisor) are kept as the SP shard, as the
    forward keeps its inputs there, and gathered again for the GEMM (that all-gather is
    costed once, with B's TP communication). The zero-bubble implementation stores exactly these per linear layer
    (sail-sg/zero-bubble-pipeline-parallelism, megatron/core/weight_grad_store.py:
    ``WeightGradStore.put(total_input, grad_output, weight, func)``). A GPT layer without
    TP keeps 7h + 9h elements per token, 32 sbh bytes in 16-bit, less than the ``34 sbh +
    5 as^2 b`` its backward needs (Korthikanti et al. 2022, eq. 1): W holds less than B
    (Qi et al. 2024, Sec. 2.1)."""
    total = 0.0
    for op in fwd:
        if op.kind != "matmul" or op.gemm is None or op.name.endswith(".cast"):
            continue
        m, n, k = op.gemm
        total += (m * k * e / (x_rep if op.name in _SP_INPUTS else 1)
                  + op.count * m * n * e / (x_rep if op.name in _SP_OUTPUTS else 1))
    return float(total)


@memoized(maxsize=1024)
def layer_wgrad_activation_bytes(model: ModelSpec, training: TrainingSpec, plan: Plan
                                 ) -> float:
    """:func:`wgrad_activation_bytes` of one transformer layer (whatever the recompute
    mode: recomputed inputs are kept for W like saved ones)."""
    x = _dims(model, training, plan, "train")
    return wgrad_activation_bytes(_layer_fwd(model, training, plan, "train"), x.rep, x.e)


@memoized(maxsize=1024)
def head_wgrad_activation_bytes(model: ModelSpec, training: TrainingSpec, plan: Plan
                                ) -> float:
    """:func:`wgrad_activation_bytes` of the LM head (its input and logit gradients)."""
    x = _dims(model, training, plan, "train")
    return wgrad_activation_bytes(head_ops(model, training, plan, "fwd"), x.rep, x.e)


# ---------------------------------------------------------------------------------------
# Embedding and head


@memoized(maxsize=1024)
def embedding_ops(model: ModelSpec, training: TrainingSpec, plan: Plan, pass_: str = "fwd",
                  mode: str = "train") -> tuple[Op, ...]:
    """Input embedding on the first stage: vocabulary-parallel lookup plus the learned
    position embedding (GPT-2/BERT style), then dropout (training only).

    The lookup is a gather: no FLOP but the rows read and the partial sum written on every
    TP rank before the all-reduce (reduce-scatter with SP; Korthikanti et al. 2022, Sec. 4.2.2).
    """
    _check(pass_, mode)
    x = _dims(model, training, plan, mode)
    if pass_ == "recompute":
        return ()
    T, h, e = x.tokens, x.h, x.e
    lookup = _ew_op("embedding", "elementwise", _ADD_FLOP * T * h, 2 * T * h * x.w,
                    T * h * e)
    ops = [lookup]
    if x.dropout:
        elems = T * h / x.rep
        ops.append(_ew_op("embedding_dropout", "elementwise", _DROPOUT_FLOP * elems, elems * e,
                          elems * (e + MASK_BYTES), saved=elems * MASK_BYTES))
    if pass_ == "fwd":
        return tuple(ops)
    # Backward: dropout gradient, then the scatter-add of the gradient rows into the
    # embedding-table gradient (read-modify-write in the gradient precision).
    grads = [replace(op, name=op.name + ".grad", saved_bytes=0.0, pass_="bwd")
             for op in reversed(ops[1:])]
    grads.append(Op(name="embedding.grad", kind="elementwise", flop=float(_ADD_FLOP * T * h),
                    bytes_read=float(T * h * (e + x.g)), bytes_written=float(T * h * x.g),
                    pass_="bwd"))
    return tuple(grads)


@memoized(maxsize=1024)
def head_ops(model: ModelSpec, training: TrainingSpec, plan: Plan, pass_: str = "fwd",
             mode: str = "train") -> tuple[Op, ...]:
    """Final norm, LM-head logits GEMM (vocabulary split over TP) and cross-entropy loss on
    the last stage. Inference computes logits for the last position only (no loss).

    Saved: the final-norm input, the head GEMM input (SP shard with SP) and the fp32 logits
    the cross-entropy keeps (Korthikanti et al. 2022, Sec. 4.3).
    """
    _check(pass_, mode)
    x = _dims(model, training, plan, mode)
    if pass_ == "recompute":
        return ()
    train = mode == "train"
    T = x.tokens if train else x.b
    h, e, v = x.h, x.e, x.vocab
    ops = [_norm_op("final_norm", model, x, T, save=train),
           _gemm_op("lm_head", T, v, h, read=T * h * e + v * h * x.w, written=T * v * e,
                    saved=T * h * e / x.rep if train else 0.0)]
    if train:
        ops.append(_fused_cross_entropy_op(T, v, e) if model.cross_entropy == "fused"
                   else _cross_entropy_op(T * v, e))
    if pass_ == "fwd":
        return tuple(ops)
    return tuple(g for op in reversed(ops) for g in _grad_ops(op, x))


def _cross_entropy_op(logits: int, e: int) -> Op:
    """The cross-entropy over ``logits`` logits of ``e`` bytes each (one device, one
    micro-batch) as one op: the fp32 passes of :data:`_XENT_FWD_READ_FP32` and the
    others; keeps the fp32 softmax for the backward (:func:`_cross_entropy_grad_op`)."""
    return _ew_op("cross_entropy", "reduction", _XENT_FLOP * logits,
                  logits * (e + _XENT_FWD_READ_FP32 * FP32_BYTES),
                  logits * _XENT_FWD_WRITTEN_FP32 * FP32_BYTES,
                  saved=logits * FP32_BYTES)


def _cross_entropy_grad_op(op: Op, e: int) -> Op:
    """Backward of :func:`_cross_entropy_op` ``op``: scale the saved softmax by the loss
    gradient, cast the logits' gradient back to ``e`` bytes."""
    logits = op.saved_bytes / FP32_BYTES
    return replace(op, name=op.name + ".grad", flop=float(logits), saved_bytes=0.0,
                   pass_="bwd", bytes_read=logits * _XENT_BWD_READ_FP32 * FP32_BYTES,
                   bytes_written=logits * (_XENT_BWD_WRITTEN_FP32 * FP32_BYTES + e))


#: Name of the fused cross-entropy op (``model.cross_entropy: fused``).
XENT_FUSED = "cross_entropy_fused"


def _fused_cross_entropy_op(tokens: int, vocab: int, e: int) -> Op:
    """The fused cross-entropy over ``tokens`` x ``vocab`` logits of ``e`` bytes each (one
    device, one micro-batch): one read of the logits (:data:`_XENT_FUSED_ROW_FP32`); keeps
    the logits and an fp32 log-sum-exp per token for the backward."""
    logits = tokens * vocab
    return _ew_op(XENT_FUSED, "reduction", _XENT_FLOP * logits, logits * e,
                  tokens * _XENT_FUSED_ROW_FP32 * FP32_BYTES,
                  saved=logits * e + tokens * FP32_BYTES)


def _fused_cross_entropy_grad_op(op: Op) -> Op:
    """Backward of :func:`_fused_cross_entropy_op` ``op``: read the kept logits and
    log-sum-exp, write the ``e``-byte gradient (as many bytes as the logits)."""
    logits_bytes = op.bytes_read
    return replace(op, name=op.name + ".grad", flop=_XENT_FUSED_BWD_FLOP * op.flop / _XENT_FLOP,
                   saved_bytes=0.0, pass_="bwd", bytes_read=op.saved_bytes,
                   bytes_written=logits_bytes)


# ---------------------------------------------------------------------------------------
# Stages and whole steps


@memoized(maxsize=1024)
def chunk_ops(model: ModelSpec, training: TrainingSpec, plan: Plan, chunk: int) -> StageOps:
    """Ops of model chunk ``chunk`` (0 .. plan.chunks - 1) per micro-batch: the embedding
    on chunk 0, the head on the last chunk; backward includes recompute before each layer's
    gradients (Megatron-LM recomputes a layer right before its backward)."""
    if not 0 <= chunk < plan.chunks:
        raise SimwallError(f"workload: chunk must be in 0..{plan.chunks - 1}, got {chunk}")
    n = plan.stage_layers[chunk]
    first, last = chunk == 0, chunk == plan.chunks - 1
    fwd: list[Op] = []
    bwd: list[Op] = []
    if first:
        fwd += embedding_ops(model, training, plan, "fwd")
    first_layer = sum(plan.stage_layers[:chunk])
    kinds = [is_moe_layer(model, i) for i in range(first_layer, first_layer + n)]
    for kind in kinds:
        fwd += layer_ops(model, training, plan, "fwd", moe=kind)
    if last:
        fwd += head_ops(model, training, plan, "fwd")
        bwd += head_ops(model, training, plan, "bwd")
    for kind in reversed(kinds):
        bwd += (layer_ops(model, training, plan, "recompute", moe=kind)
                + layer_ops(model, training, plan, "bwd", moe=kind))
    if first:
        bwd += embedding_ops(model, training, plan, "bwd")
    return StageOps(fwd=tuple(fwd), bwd=tuple(bwd))


@memoized(maxsize=1024)
def stage_ops(model: ModelSpec, training: TrainingSpec, plan: Plan, stage: int) -> StageOps:
    """Ops of every chunk held by pipeline ``stage`` per micro-batch, chunks in model order
    (backward lists the chunks in reverse order)."""
    if not 0 <= stage < plan.pp:
        raise SimwallError(f"workload: stage must be in 0..{plan.pp - 1}, got {stage}")
    parts = [chunk_ops(model, training, plan, c) for c in range(stage, plan.chunks, plan.pp)]
    return StageOps(fwd=tuple(op for p in parts for op in p.fwd),
                    bwd=tuple(op for p in reversed(parts) for op in p.bwd))


def ops_flop(ops: tuple[Op, ...]) -> float:
    """Total FLOP of ``ops``."""
    return float(sum(op.flop for op in ops))


@memoized(maxsize=1024)
def hardware_flop_per_step(model: ModelSpec, training: TrainingSpec, plan: Plan) -> float:
    """FLOP all devices execute in one step (global batch, recompute included), summed
    from the per-device ops: stage ops x micro-batches x DP x CP x TP."""
    per_replica = _replica_flop(model, *per_micro_batch(training, plan))
    return float(per_replica * plan.micro_batches * plan.dp * plan.cp * plan.tp)


@memoized(maxsize=1024)
def _replica_flop(model: ModelSpec, training: TrainingSpec, plan: Plan) -> float:
    """FLOP of one micro-batch through every stage of ``plan`` (one device of each)."""
    return sum(ops_flop(so.fwd) + ops_flop(so.bwd)
               for so in (stage_ops(model, training, plan, st) for st in range(plan.pp)))


@memoized(maxsize=256)
def model_flop_per_step(model: ModelSpec, training: TrainingSpec) -> float:
    """FLOP of one step's forward and backward over the whole model and global batch,
    without recompute or parallelism (the numerator of model FLOP utilisation).

    Counted with the eager attention core whatever ``model.attention`` is: the full s x s
    attention GEMMs, causal mask not subtracted, backward 2x forward (Narayanan et al.
    2021, Sec. 5.1, the convention MFU figures of Megatron-LM use), so a kernel change
    does not change the model FLOP."""
    return float(_sample_flop(model, training.model_copy(update={"global_batch": 1}))
                 * training.global_batch)


@memoized(maxsize=256)
def _sample_flop(model: ModelSpec, training: TrainingSpec) -> float:
    """:func:`model_flop_per_step` of one sequence (``training.global_batch`` unread)."""
    # Routed tokens at their mean (no imbalance, no dropping): the model's own FLOP.
    model = model.model_copy(update={"attention": "eager", "moe_imbalance": 1.0,
                                     "capacity_factor": None})
    plan = Plan(tp=1, pp=1, dp=1, virtual_stages=1, sequence_parallel=False, zero=0,
                recompute="none", schedule="1f1b", micro_batch=1, global_batch=1,
                stage_layers=(model.layers,))
    one = stage_ops(model, training, plan, 0)
    return ops_flop(one.fwd) + ops_flop(one.bwd)
