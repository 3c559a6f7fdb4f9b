"""The schemas of workloads, clusters and the hardware catalog (pydantic v2).

Every schema is :class:`Strict`: frozen, unknown keys forbidden, no NaN/inf. Numbers and
booleans are strict too (YAML already types them). Names of extension points (pipeline
schedules, collective algorithms, topology generators) are checked against
:mod:`simwall.registry` by :class:`OneOf`, so a new registry entry is a name the files
may use; the implementations are not imported to check a name.

Why pydantic: it gives typed frozen objects, per-field constraints and precise error
locations (``loc``) for free; hand-written checks would duplicate all of that. See
docs/input-formats.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PrivateAttr,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from ..registry import (
    COLLECTIVE_ALGORITHMS,
    INTER_TOPOLOGIES,
    INTRA_TOPOLOGIES,
    SCHEDULES,
    Registry,
)
from .limits import MAX_DEGRADED_LINKS, MAX_DEVICES, MAX_LAYERS, MAX_PLANES, MAX_TORUS_DIMS
from .yamlio import dotted_key

__all__ = [
    "FP8_WEIGHT_CACHE_BYTES",
    "FRAMEWORK_PRESETS",
    "MIXED_PRECISION_PRESETS",
    "PRECISION_BYTES",
    "ClusterSpec",
    "DegradedLink",
    "DegradedPlane",
    "DeviceRef",
    "DeviceSpec",
    "EfficiencySpec",
    "Expected",
    "FaultSpec",
    "GraphSpec",
    "HostSpec",
    "InterSpec",
    "IntraSpec",
    "LinkChoice",
    "LinkRef",
    "LinkSpec",
    "MLASpec",
    "MixedNodes",
    "ModelSpec",
    "OneOf",
    "PlanSpec",
    "PowerSpec",
    "RunDefaults",
    "Straggler",
    "Strict",
    "TrainingSpec",
    "Workload",
    "at_most",
]

# ---------------------------------------------------------------------------------------
# Schema building blocks


@dataclass(frozen=True, eq=False)
class OneOf:
    """``Annotated[str, OneOf(registry)]``: the value must be a name of ``registry`` that
    users may write (:meth:`~simwall.registry.Registry.choices`), or one of ``also``.

    The registry is read when a value is validated, so adding an entry to it is enough
    for the schema to accept the new name. A wrong name is reported like a ``Literal``
    (``expected one of 'gpipe', '1f1b', 'interleaved', got 'zigzag'``; see
    :mod:`simwall.config.validation`).
    """

    registry: Registry
    also: tuple[str, ...] = ()

    def choices(self) -> tuple[str, ...]:
        """The accepted names, in the order an error lists them."""
        return self.also + self.registry.choices()

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def _check(self, value: str) -> str:
        if value not in self.choices():
            # Not a value_error: validation describes the field (``expected one of ...``).
            raise PydanticCustomError("not_one_of", "not a registered {kind} name",
                                      {"kind": self.registry.kind})
        return value


@dataclass(frozen=True)
class Expected:
    """``Annotated[tuple[str, str], Expected("two node names")]``: what a value must be,
    in the user's words; errors say ``expected two node names, got a list of 3`` where
    the type alone would give ``expected a list`` (see :mod:`simwall.config.validation`)."""

    words: str


def at_most(limit: int, why: str) -> BeforeValidator:
    """``Annotated[tuple[...], at_most(N, why)]``: a list of at most ``limit`` entries,
    checked before any entry is validated (pydantic would validate every entry of a
    million-entry list first). The error is reported as it is written here (see
    :mod:`simwall.config.validation`); ``why`` says where the limit comes from."""
    def check(value: Any) -> Any:
        if isinstance(value, (list, tuple)) and len(value) > limit:
            raise PydanticCustomError(
                "too_many_entries", f"{len(value):,} entries is more than simwall's limit of "
                f"{limit:,} ({why}; see simwall/config/limits.py)")
        return value
    return BeforeValidator(check)


PosInt = Annotated[int, Field(strict=True, gt=0)]
NonNegInt = Annotated[int, Field(strict=True, ge=0)]
# Strict: YAML already types numbers and booleans, so a quoted "8" or a `true` where a
# number belongs is a mistake to report, not to coerce.
PosFloat = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(strict=True, gt=0, le=1, allow_inf_nan=False)]
Bool = Annotated[bool, Field(strict=True)]
Precision = Literal["fp32", "tf32", "fp16", "bf16", "fp8"]

#: Bytes per element of each precision.
PRECISION_BYTES: dict[str, int] = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1}


class Strict(BaseModel):
    """Base of every schema: frozen, unknown keys forbidden, no NaN/inf."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False,
                              populate_by_name=True, validate_default=True)


# ---------------------------------------------------------------------------------------
# Workload


class MLASpec(Strict):
    """Multi-head latent attention (DeepSeek-AI 2024, "DeepSeek-V2", arXiv 2405.04434,
    Sec. 2.1; DeepSeek-V3, arXiv 2412.19437, Sec. 2.1.1): keys and values come from one
    compressed latent of ``kv_lora_rank`` per token (plus a shared rotary key of
    ``qk_rope_head_dim``), queries from a latent of ``q_lora_rank`` (None: a full query
    projection); per head, queries and keys have ``qk_nope_head_dim + qk_rope_head_dim``
    dimensions, values ``v_head_dim``. DeepSeek-V3: 1536, 512, 128, 64, 128."""

    q_lora_rank: PosInt | None = None
    kv_lora_rank: PosInt
    qk_nope_head_dim: PosInt
    qk_rope_head_dim: PosInt
    v_head_dim: PosInt

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim


class ModelSpec(Strict):
    """Transformer shape. Sizes are element counts; ``seq_len`` is tokens per sequence."""

    kind: Literal["gpt", "bert"] = "gpt"
    layers: PosInt
    hidden: PosInt
    heads: PosInt
    kv_heads: PosInt | None = None  # default: heads (multi-head attention, no GQA)
    ffn_hidden: PosInt | None = None  # default: 4 * hidden (Vaswani et al. 2017)
    vocab: PosInt
    seq_len: PosInt
    gated_mlp: Bool = False
    tied_embeddings: Bool = True
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    dropout: Bool = True
    # Attention kernel. ``flash``: one fused, IO-aware kernel that keeps no s x s tensor
    # (FlashAttention, Dao et al. 2022, Sec. 3.1 / Algorithm 2; FlashAttention-2, Dao 2023),
    # as every run after 2023 used. ``eager``: scores, softmax, dropout and context as
    # separate kernels through device memory (Megatron-LM 2021 / Korthikanti et al. 2022,
    # whose cases set it). docs/cost-model.md and docs/memory-model.md give both models.
    attention: Literal["flash", "eager"] = "flash"
    # Which fused kernel runs ``flash`` attention: ``default``, the one the framework picks
    # on the device (Transformer Engine prefers cuDNN's fused attention on Hopper and later,
    # transformer_engine/pytorch/attention.py, get_attention_backend: "Disabling
    # FlashAttention to give FusedAttention preference on Hopper+"); ``fa2``, FlashAttention-2
    # forced (NVTE_FUSED_ATTN=0, as NVIDIA's Grok 1 recipe sets). Their efficiencies:
    # EfficiencySpec.flash_attention and flash_attention_fa2.
    flash_kernel: Literal["default", "fa2"] = "default"
    # Which kernel computes the LM head's cross-entropy loss. ``default``: the framework's
    # own (Megatron-Core's vocabulary-parallel cross-entropy under plan.framework megatron,
    # PyTorch's ``F.cross_entropy`` on logits cast to fp32 otherwise), which keeps fp32
    # logits for the backward. ``fused``: one kernel reads the 16-bit logits and keeps only
    # them and an fp32 log-sum-exp per token, and its backward writes a 16-bit gradient:
    # flash-attn's Triton cross-entropy (flash_attn/ops/triton/cross_entropy.py,
    # ``save_for_backward(logits, lse, labels)``; OLMo's ``fused_loss: true``), or the loss
    # under torch.compile (Inductor fuses the cast, log-softmax and z-loss; AOTAutograd's
    # min-cut partitioner saves the matmul's 16-bit output and the row reductions and
    # recomputes the pointwise rest in the backward: torch/_functorch/partitioners.py,
    # ``min_cut_rematerialization_partition``; OLMo-core ``compile_model=True``).
    cross_entropy: Literal["default", "fused"] = "default"
    # Mixture of experts (docs/cost-model.md, "Mixture of experts"). ``experts``: routed
    # experts per MoE layer (None: a dense model). Each token goes to ``top_k`` of them
    # (default 2: GShard, Lepikhin et al. 2021, Sec. 2.2; Mixtral, Jiang et al. 2024,
    # Sec. 2.1); each expert is an MLP of width ``moe_ffn_hidden`` (default ffn_hidden;
    # fine-grained experts are narrower: DeepSeekMoE, Dai et al. 2024, Sec. 3.1), plus
    # ``shared_experts`` MLPs of that width every token passes (DeepSeekMoE Sec. 3.2).
    # Layer i is an MoE layer when i >= ``dense_layers`` (DeepSeek-V3's
    # first_k_dense_replace) and (i - dense_layers) % ``moe_layer_freq`` == 0
    # (Megatron-Core --moe-layer-freq). ``capacity_factor``: tokens an expert takes at most,
    # as a multiple of its fair share (None: dropless, Megatron-Core's default; Fedus et
    # al. 2022, Switch Transformers, Sec. 2.2). ``moe_imbalance``: the busiest device's
    # routed tokens over the mean (1: perfectly balanced; no general published value, so
    # the ideal is the default and the key is there to ask "what if").
    # ``moe_node_limit``: node-limited routing, each token's experts on at most this many
    # nodes, its dispatch sent over the network once per node and fanned out over NVLink
    # there (DeepSeek-V3, arXiv 2412.19437, Sec. 3.2.2; None: every expert's copy crosses
    # the network on its own, as Megatron-Core's all-to-all dispatcher sends them).
    # Multi-head latent attention (MLASpec) in place of the QKV projection; None: MHA/GQA.
    mla: MLASpec | None = None
    experts: PosInt | None = None
    top_k: PosInt = 2
    moe_ffn_hidden: PosInt | None = None
    shared_experts: Annotated[int, Field(strict=True, ge=0)] = 0
    moe_layer_freq: PosInt = 1
    dense_layers: Annotated[int, Field(strict=True, ge=0)] = 0
    capacity_factor: Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)] | None = None
    moe_imbalance: Annotated[float, Field(strict=True, ge=1, allow_inf_nan=False)] = 1.0
    moe_node_limit: PosInt | None = None

    @model_validator(mode="after")
    def _shape(self) -> ModelSpec:
        if self.mla is not None:
            if self.kv_heads is not None:
                raise ValueError("model.kv_heads: must be unset with model.mla (latent "
                                 f"attention has one key and value per head), got {self.kv_heads}")
            if self.attention != "flash":
                raise ValueError("model.attention: must be flash with model.mla (simwall "
                                 f"models latent attention with the fused kernel), got "
                                 f"{self.attention}")
        moe_keys = ("moe_ffn_hidden", "shared_experts", "moe_layer_freq", "dense_layers",
                    "capacity_factor", "moe_imbalance", "top_k", "moe_node_limit")
        if self.experts is None:
            # Keys away from their defaults (a re-validated dump sets every key).
            given = [k for k in moe_keys
                     if getattr(self, k) != type(self).model_fields[k].default]
            if given:
                raise ValueError(f"model.{given[0]}: needs model.experts (a mixture-of-"
                                 f"experts model), got no experts")
        else:
            if self.top_k > self.experts:
                raise ValueError(f"model.top_k: must be at most model.experts "
                                 f"({self.experts}), got {self.top_k}")
            if self.dense_layers >= self.layers:
                raise ValueError(f"model.dense_layers: must be below model.layers "
                                 f"({self.layers}), got {self.dense_layers}")
        if self.hidden % self.heads:
            raise ValueError(f"model.hidden: must be divisible by model.heads ({self.heads}), "
                             f"got {self.hidden}")
        if self.kv_heads is not None and (self.kv_heads > self.heads or self.heads % self.kv_heads):
            raise ValueError(f"model.kv_heads: must divide model.heads ({self.heads}), "
                             f"got {self.kv_heads}")
        return self

    @property
    def kv_heads_(self) -> int:
        return self.kv_heads if self.kv_heads is not None else self.heads

    @property
    def ffn(self) -> int:
        return self.ffn_hidden if self.ffn_hidden is not None else 4 * self.hidden

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def moe(self) -> bool:
        """True for a mixture-of-experts model."""
        return self.experts is not None

    @property
    def moe_ffn(self) -> int:
        """Width of one expert's MLP."""
        return self.moe_ffn_hidden if self.moe_ffn_hidden is not None else self.ffn


#: Mixed-precision conventions (``training.mixed_precision``): bytes per parameter of
#: the stored weights, the gradients and the fp32 master copy, and the dtype gradients are
#: reduced in over DP, for a 16-bit run (``precision`` bf16 / fp16 / fp8). Optimizer moments
#: (Adam: m and v, 8 B) come on top in every convention. Keys of each entry:
#: ``weights`` ("compute": the run's 16-bit dtype; "fp32"), ``grads``, ``master``
#: (bytes of the separate fp32 master copy).
#:
#: - ``deepspeed`` (the default; today's numbers): Rajbhandari et al. 2020, "ZeRO", Sec. 3.1:
#:   fp16 weights and gradients (2 + 2 B) and K = 12 B of optimizer state (fp32 master 4 +
#:   momentum 4 + variance 4) = 16 B/param with Adam; gradients reduced in their own 16-bit
#:   dtype (the paper's 2 Psi communication volume, Sec. 7).
#: - ``megatron``: Megatron-LM keeps fp32 main gradients next to 16-bit weights: 2 + 4 + 12
#:   = 18 B/param with Adam, 6 + 12/d with the distributed optimizer (ZeRO-1; Megatron-LM
#:   docs/source/api-guide/dist_optimizer.md, table "bf16 parameters, fp32 gradients");
#:   with bf16 Megatron-LM sets ``accumulate_allreduce_grads_in_fp32`` unless
#:   ``--grad-reduce-in-bf16`` is given (NVIDIA/Megatron-LM megatron/training/arguments.py,
#:   ``validate_args``, ``if args.bf16:`` branch, comment "bfloat16 requires gradient
#:   accumulation and all-reduce to be done in fp32"; megatron/training/training.py
#:   ``get_model`` passes it as DDP's ``grad_reduce_in_fp32``, and megatron/core/distributed/distributed_data_parallel.py
#:   allocates the gradient buffer as ``torch.float if grad_reduce_in_fp32 else
#:   param.dtype``), so gradients are accumulated and reduced in fp32.
#: - ``fsdp``: PyTorch FSDP with ``MixedPrecision`` keeps the sharded parameters in fp32
#:   (they are the master copy; the bf16 compute copy exists only gathered, per layer) and
#:   fp32 gradients and Adam m, v: 4 + 4 + 8 = 16 B/param, all sharded under FULL_SHARD
#:   (Zhao et al. 2023, "PyTorch FSDP: Experiences on Scaling Fully Sharded Data Parallel",
#:   VLDB 16(12), Sec. 4.3 mixed precision: full-precision parameters kept sharded, low-
#:   precision copies for compute); reduce_dtype fp32 as MosaicML llm-foundry's
#:   ``mixed_precision: DEFAULT`` (param_dtype bf16, reduce_dtype fp32).
MIXED_PRECISION_PRESETS: dict[str, dict[str, Any]] = {
    "deepspeed": {"weights": "compute", "grads": "compute", "master": 4},
    "megatron": {"weights": "compute", "grads": "fp32", "master": 4},
    "fsdp": {"weights": "fp32", "grads": "fp32", "master": 0},
}

#: Bytes per parameter of Transformer Engine's FP8 weight cache: the fp8 weight and, on
#: Hopper, its physically transposed fp8 copy (FP8 GEMMs there take only the TN layout, so
#: dgrad and wgrad need "columnwise" copies: TE docs, "Performance considerations", Handling
#: transposes), kept across the micro-batches of a step (TE "FP8 weight caching",
#: ``is_first_microbatch``). Counted for the linear layers' weights only.
FP8_WEIGHT_CACHE_BYTES = 2


#: Framework semantics (``plan.framework``): how each framework runs the communication
#: of a plan; every key can be overridden alone (``plan.<key>``). docs/cost-model.md,
#: "Frameworks", gives the sources in full; in short:
#:
#: - ``tp_comm_overlap``: TP collectives decomposed into chunks pipelined with the GEMMs
#:   that consume/produce them (Wang et al., ASPLOS 2023; Transformer Engine userbuffers,
#:   Megatron-LM ``--tp-comm-overlap``, which needs sequence parallelism:
#:   megatron/training/arguments.py ``validate_args``). megatron: on (the Megatron-Core
#:   performance configurations and NeMo recipes enable it; off in Megatron-LM 2021, which
#:   case files set explicitly); deepspeed, fsdp: off (no such path).
#: - ``overlap_param_gather``: the ZeRO-1/2 all-gather of updated parameters runs bucket
#:   by bucket under the next forward (Megatron-Core ``--overlap-param-gather``; NeMo docs
#:   "Communication Overlap": "exposes only one DP communication chunk"). megatron: on;
#:   deepspeed: off (stage_1_and_2.py all-gathers after ``step``); fsdp: off (no ZeRO-1).
#: - ``zero_grad_reduce``: ZeRO-2 reduce-scatters gradients after every micro-batch's
#:   backward (``micro_batch``: DeepSpeed stage_1_and_2.py backward hooks, DeepSpeed issue
#:   #2252; FSDP SHARD_GRAD_OP reduce-scatters every backward outside ``no_sync``) or once
#:   per step after accumulation (``step``: Megatron's distributed optimizer).
#: - ``zero3_gather_unit``: what one ZeRO-3 all-gather fetches: a ``layer`` (FSDP's
#:   wrapped transformer block, one flat parameter) or one ``module`` (DeepSpeed fetches
#:   per submodule: partitioned_param_coordinator.fetch_sub_module).
#: - ``zero3_prefetch``: units fetched ahead of the one computing (FSDP: 1, the implicit
#:   forward prefetch and BackwardPrefetch.BACKWARD_PRE; DeepSpeed: 1, the prefetch loop
#:   takes the next parameter and stops at stage3_prefetch_bucket_size = 5e7 elements,
#:   fewer than one GEMM weight of a large model); 0: no prefetch.
#: - ``reshard_after_forward``: ZeRO-3 frees the gathered parameters after the forward
#:   and gathers them again for the backward (FSDP FULL_SHARD / FSDP2 default True;
#:   DeepSpeed stage 3 always; Llama 3 kept them: Dubey et al. 2024, Sec. 3.3.2).
#: - ``zero3_gather_impl``: how one ZeRO-3 gather is issued. ``coalesced`` (every preset):
#:   one all-gather per gather unit into one flat output buffer (DeepSpeed since
#:   microsoft/DeepSpeed commit c0eeb69d, 2021-10-31, "ZeRO3, improved parameter all-gather
#:   operation" (#1188): ``_all_gather_base``; FSDP's flat parameter). ``per_param_list``:
#:   DeepSpeed ZeRO-3 as released in 2021 (v0.3.13, commit 599258f9, 2021-03-08, to
#:   v0.5.4): ``partition_parameters.py`` ``_allgather_param`` gathers each parameter
#:   tensor with its own ``torch.distributed.all_gather(list of world_size views)``, and
#:   PyTorch's NCCL backend (torch/lib/c10d/ProcessGroupNCCL.cpp, ``allgather``, 1.x)
#:   gathers into a new flat buffer and copies it back with one ``copy_`` per rank: one
#:   collective per parameter tensor, each with ``world_size`` copy launches
#:   (simwall.costing.zero).
FRAMEWORK_PRESETS: dict[str, dict[str, Any]] = {
    "megatron": {"tp_comm_overlap": True, "overlap_param_gather": True,
                 "zero_grad_reduce": "step", "zero3_gather_unit": "layer",
                 "zero3_prefetch": 1, "reshard_after_forward": True,
                 "zero3_gather_impl": "coalesced"},
    "deepspeed": {"tp_comm_overlap": False, "overlap_param_gather": False,
                  "zero_grad_reduce": "micro_batch", "zero3_gather_unit": "module",
                  "zero3_prefetch": 1, "reshard_after_forward": True,
                  "zero3_gather_impl": "coalesced"},
    "fsdp": {"tp_comm_overlap": False, "overlap_param_gather": False,
             "zero_grad_reduce": "micro_batch", "zero3_gather_unit": "layer",
             "zero3_prefetch": 1, "reshard_after_forward": True,
             "zero3_gather_impl": "coalesced"},
}


class TrainingSpec(Strict):
    """Batch sizes in sequences; precisions name the element type.

    ``mixed_precision`` picks a framework's convention for the bytes of model states and
    the gradient-reduction dtype (:data:`MIXED_PRECISION_PRESETS`); ``grad_precision``,
    ``grad_reduce_precision`` and ``master_weights`` override single parts of it.
    """

    global_batch: PosInt
    micro_batch: PosInt = 1
    precision: Literal["fp32", "fp16", "bf16", "fp8"] = "bf16"
    optimizer: Literal["adam", "adamw", "sgd", "adafactor", "shampoo"] = "adam"
    mixed_precision: Literal["deepspeed", "megatron", "fsdp"] = "deepspeed"
    # Gradient precision: the ZeRO paper counts 16-bit gradients (2 B/param); Megatron-LM
    # accumulates fp32 main gradients (4 B/param). Default: the preset's.
    grad_precision: Literal["fp32", "fp16", "bf16"] | None = None
    # Dtype of the DP gradient reduction; default: the gradients' own dtype. Megatron-LM's
    # ``--grad-reduce-in-bf16`` is NOT "fp32 gradients reduced in bf16": it turns
    # accumulate_allreduce_grads_in_fp32 off, so the gradient buffer itself is bf16
    # (megatron/core/distributed/distributed_data_parallel.py: grad dtype = param.dtype);
    # model it with ``grad_precision: bf16``.
    grad_reduce_precision: Literal["fp32", "fp16", "bf16"] | None = None
    master_weights: Bool = True  # fp32 master copy kept by the optimizer in mixed precision
    # FP8 training only: the linear layers' weights are stored as FP8 tensors, with no
    # 16-bit copy beside their FP8 cache (Transformer Engine ``fp8_model_init``; NeMo
    # ``fp8_params``, Megatron-LM ``--fp8-param-gather``); the optimizer's fp32 master
    # copy stays. Memory only (simwall.model.memory.model_state_bytes); the distributed
    # optimizer's parameter all-gather is still costed at 16 bits (an upper bound).
    fp8_params: Bool = False

    @model_validator(mode="after")
    def _fp8_params_need_fp8(self) -> TrainingSpec:
        if self.fp8_params and self.precision != "fp8":
            raise ValueError(f"training.fp8_params: needs training.precision fp8 (FP8 "
                             f"weights are an FP8-training feature), got precision "
                             f"{self.precision}")
        return self

    @property
    def mixed(self) -> bool:
        """True for a 16-bit (or fp8) run: the mixed-precision conventions apply."""
        return self.precision != "fp32"

    @property
    def compute_precision(self) -> str:
        """The dtype every op runs in except the FP8 GEMMs of an fp8 run: FP8 training
        (Transformer Engine) runs only the linear layers' GEMMs in FP8, attention, softmax,
        norms and elementwise ops in bf16 (TE docs, "Using FP8 with Transformer Engine";
        Micikevicius et al. 2022, "FP8 Formats for Deep Learning", Sec. 4). Also the
        precision whose peak MFU is reported against."""
        return "bf16" if self.precision == "fp8" else self.precision

    @property
    def weight_precision(self) -> str:
        """The dtype weights (and activations) are computed in. FP8 training keeps 16-bit
        weights and casts them to FP8 per GEMM (Micikevicius et al. 2022, "FP8 Formats for
        Deep Learning", Sec. 4: higher-precision master weights; NVIDIA Transformer
        Engine's default). An approximation: weights stored in bf16."""
        return self.compute_precision

    @property
    def weight_bytes(self) -> int:
        """Bytes per weight element as computed (:attr:`weight_precision`): the gathered
        or working copy."""
        return PRECISION_BYTES[self.weight_precision]

    @property
    def stored_weight_bytes(self) -> int:
        """Bytes per weight element as the model state stores it: fp32 under ``fsdp``
        with master weights (FSDP keeps its sharded parameters in fp32), else
        :attr:`weight_bytes`."""
        preset = MIXED_PRECISION_PRESETS[self.mixed_precision]
        if self.mixed and self.master_weights and preset["weights"] == "fp32":
            return PRECISION_BYTES["fp32"]
        return self.weight_bytes

    @property
    def master_bytes(self) -> int:
        """Bytes per parameter of the separate fp32 master copy in the optimizer state
        (0 in fp32, without master weights, or where the stored weights are fp32)."""
        if not (self.mixed and self.master_weights):
            return 0
        return int(MIXED_PRECISION_PRESETS[self.mixed_precision]["master"])

    @property
    def grad_precision_(self) -> str:
        """Dtype the gradients are kept (accumulated) in."""
        if self.grad_precision is not None:
            return self.grad_precision
        if not self.mixed:
            return "fp32"
        grads = MIXED_PRECISION_PRESETS[self.mixed_precision]["grads"]
        return self.weight_precision if grads == "compute" else grads

    @property
    def grad_reduce_precision_(self) -> str:
        """Dtype the DP gradient reduction moves."""
        if self.grad_reduce_precision is not None:
            return self.grad_reduce_precision
        return self.grad_precision_

    @property
    def fp8_cache_bytes(self) -> int:
        """Bytes per linear-layer weight of the FP8 weight cache (0 unless fp8)."""
        return FP8_WEIGHT_CACHE_BYTES if self.precision == "fp8" else 0


class PlanSpec(Strict):
    """Parallelism plan as the user writes it (``dp`` may be ``auto``)."""

    tp: PosInt = 1
    pp: PosInt = 1
    dp: PosInt | Literal["auto"] = "auto"
    sequence_parallel: Bool = False
    zero: Annotated[int, Field(strict=True, ge=0, le=3)] = 0
    recompute: Literal["none", "selective", "full"] = "none"
    schedule: Annotated[str, OneOf(SCHEDULES)] = "1f1b"
    virtual_stages: PosInt = 1
    stage_layers: Annotated[tuple[NonNegInt, ...], at_most(
        MAX_LAYERS, "one entry per model chunk; the deepest published models have about "
        "128 layers")] | None = None
    collective: Annotated[str, OneOf(COLLECTIVE_ALGORITHMS, also=("auto",))] = "auto"
    # DP gradient bucket, bytes; None: the framework's own default
    # (simwall.plan.frameworks.dp_bucket_bytes_for).
    dp_bucket_bytes: PosFloat | None = None
    dp_overlap: Bool = True
    # Megatron-LM (Narayanan et al. 2021, Sec. 4.1): split PP sends over the TP ranks'
    # NICs and all-gather inside the node.
    pp_scatter_gather: Bool = True
    offload: Literal["none", "optimizer", "optimizer+params"] = "none"
    # Context parallelism (issue 16): the sequence split over cp ranks; cp_comm is
    # Megatron-Core's --cp-comm-type (p2p: ring of K/V chunks; all_gather: K/V gathered
    # whole; megatron/training/arguments.py). See simwall/costing/cp.py.
    cp: PosInt = 1
    cp_comm: Literal["p2p", "all_gather"] = "p2p"
    # Expert parallelism: the routed experts of an MoE layer split over ``ep`` ranks carved
    # out of the data-parallel ranks (Megatron-Core: expert-data-parallel = dp / ep, ranks
    # ordered tp-cp-ep-dp-pp, megatron/core/parallel_state.py); experts keep the TP split
    # of the dense MLP (expert TP = TP).
    ep: PosInt = 1
    # Megatron-Core's --overlap-moe-expert-parallel-comm: in the 1F1B steady state one
    # micro-batch's forward runs beside another's backward, each one's expert-parallel
    # all-to-alls under the other's compute, with one more warm-up forward per stage
    # (megatron/core/pipeline_parallel/combined_1f1b.py, schedules.py). See
    # simwall/costing/ep.py.
    ep_overlap: Bool = False
    # Hybrid sharding: ZeRO shards the model states over ``dp_shard`` consecutive ranks of
    # the DP x CP group and replicates them over the dp x cp / dp_shard such groups
    # (PyTorch FSDP's HYBRID_SHARD / _HYBRID_SHARD_ZERO2, FSDP2 on a 2-D (replicate,
    # shard) mesh, Megatron-Core's --num-distributed-optimizer-instances); None: over
    # every DP x CP rank. See simwall/costing/dp.py.
    dp_shard: PosInt | None = None
    # --- framework semantics (issue 15): a named preset of how the framework runs the
    # plan's communication (FRAMEWORK_PRESETS); each key below overrides one part of it
    # (None: the preset's value). ``auto``: the first framework that runs the plan
    # (simwall.plan.frameworks.preset_for). ``fsdp2`` names FSDP2's rule (which plans it
    # runs) with the ``fsdp`` preset, whose semantics it shares.
    framework: Literal["auto", "megatron", "deepspeed", "fsdp", "fsdp2"] = "auto"
    tp_comm_overlap: Bool | None = None
    overlap_param_gather: Bool | None = None
    zero_grad_reduce: Literal["step", "micro_batch"] | None = None
    zero3_gather_unit: Literal["layer", "module"] | None = None
    zero3_prefetch: NonNegInt | None = None
    reshard_after_forward: Bool | None = None
    zero3_gather_impl: Literal["coalesced", "per_param_list"] | None = None


class RunDefaults(Strict):
    """Where a workload runs when the user names no cluster."""

    cluster: str = "dgx-a100"
    devices: PosInt | None = None


class Workload(Strict):
    """One model + training setup + plan (a file under workloads/)."""

    name: str
    source: str | None = None
    model: ModelSpec
    training: TrainingSpec
    plan: PlanSpec = PlanSpec()
    defaults: RunDefaults = RunDefaults()

    _file: str | None = PrivateAttr(default=None)
    _lines: dict[str, int] = PrivateAttr(default_factory=dict)
    _set_keys: tuple[str, ...] = PrivateAttr(default=())

    @property
    def file(self) -> str:
        return self._file or f"<workload {self.name}>"

    def line(self, key: str) -> int | None:
        """The line of ``key`` (``plan.tp``, ``faults.stragglers[0].device``) in the file
        (None if absent or set by ``--set``)."""
        return self._lines.get(dotted_key(key))

    def origin(self, key: str) -> str:
        """Where the value of ``key`` (``plan.sequence_parallel``) came from: ``--set``
        (it or a mapping above it was overridden), ``file`` (the file wrote it) or
        ``default`` (the schema's default)."""
        parts = dotted_key(key).split(".")
        if any(parts[:len(k.split("."))] == k.split(".") for k in self._set_keys):
            return "--set"
        return "file" if self.line(key) is not None else "default"


# ---------------------------------------------------------------------------------------
# Hardware catalog


class EfficiencySpec(Strict):
    """Achievable fractions of peak, per device kind (see simwall.hardware.efficiency for their use).

    ``gemm_max``: fraction of peak the largest GEMMs reach; ``gemm_half_flop``: GEMM size
    (FLOP) at which half of ``gemm_max`` is reached; ``memory_bw``: fraction of peak memory
    bandwidth reached by streaming kernels; ``launch_s``: fixed per-kernel overhead.
    Each device's YAML cites where its values come from.
    """

    gemm_max: Fraction = 0.8
    # Fraction of the FP8 peak the largest FP8 GEMMs reach; 0: same as gemm_max.
    gemm_max_fp8: Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)] = 0.0
    gemm_half_flop: NonNegFloat = 0.0
    memory_bw: Fraction = 0.8
    launch_s: NonNegFloat = 0.0
    sm_count: NonNegInt = 0  # compute units a GEMM's tiles spread over (wave quantisation); 0: off
    gemm_tile: NonNegInt = 0  # GEMM output tile edge in elements (tile quantisation); 0: off
    # Fraction of tensor-core peak a fused (flash) attention kernel reaches, forward and
    # backward, on the FlashAttention FLOP count (causal half skipped); 0: fall back.
    flash_attention: Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)] = 0.0
    # The same for FlashAttention-2 where a run forces it (model.flash_kernel: fa2); 0: as
    # flash_attention.
    flash_attention_fa2: Annotated[float, Field(strict=True, ge=0, le=1,
                                                allow_inf_nan=False)] = 0.0
    # How much longer compute takes while a collective runs beside it on the same device
    # (the communication kernels hold SMs and memory bandwidth): 0.19 = 19 % longer; 0: no
    # contention (collectives on engines of their own).
    overlap_slowdown: NonNegFloat = 0.0


class PowerSpec(Strict):
    """Electrical power of one device (simwall.costing.energy). ``idle``: watts with no
    kernel running; ``max``: the board's power limit (TDP) in watts, drawn with every SM
    busy and HBM streaming at peak; ``hbm_pj_per_bit``: energy of moving one bit to or from
    device memory (picojoules); ``hbm_peak_w``: the HBM's share of ``max`` (None:
    ``hbm_pj_per_bit`` x 8 x the device's memory bandwidth; catalog entries fix it with
    their own bandwidth). Each device's YAML cites its values."""

    idle_w: NonNegFloat = Field(alias="idle")
    max_w: PosFloat = Field(alias="max")
    hbm_pj_per_bit: NonNegFloat = 0.0
    hbm_peak_w: NonNegFloat | None = None

    @model_validator(mode="after")
    def _idle_below_max(self) -> PowerSpec:
        if self.idle_w > self.max_w:
            raise ValueError(f"idle power ({self.idle_w:g} W) above max ({self.max_w:g} W)")
        return self


class DeviceSpec(Strict):
    """One accelerator (or CPU socket). Units: FLOP/s, bytes, bytes/s."""

    name: str
    kind: Literal["gpu", "tpu", "cpu"] = "gpu"
    peak_flop_per_s: dict[Precision, PosFloat] = Field(alias="peak_flops")
    memory_capacity_bytes: PosFloat = Field(alias="memory_capacity")
    memory_bandwidth_bytes_per_s: PosFloat = Field(alias="memory_bandwidth")
    efficiency: EfficiencySpec = EfficiencySpec()
    power: PowerSpec | None = None  # None: no energy figures for this device
    source: str = ""

    _hash: int | None = PrivateAttr(default=None)

    def __hash__(self) -> int:
        # Hashable (for memoised cost functions) although ``peak_flops`` is a dict.
        private = self.__pydantic_private__    # self._hash, without pydantic's __getattr__
        found = private.get("_hash")
        if found is None:
            found = private["_hash"] = hash(self.model_dump_json())
        return found

    def peak(self, precision: str) -> float:
        """Peak dense FLOP/s for ``precision``, falling back to the nearest wider type."""
        for p in {"fp8": ("fp8", "fp16", "bf16"), "fp16": ("fp16", "bf16"),
                  "bf16": ("bf16", "fp16"), "tf32": ("tf32", "fp32"),
                  "fp32": ("fp32",)}[precision]:
            if p in self.peak_flop_per_s:
                return self.peak_flop_per_s[p]
        return self.peak_flop_per_s.get("fp32", min(self.peak_flop_per_s.values()))


class LinkSpec(Strict):
    """One link class. ``bandwidth``: bytes/s per direction; ``latency``: seconds."""

    name: str
    bandwidth_bytes_per_s: PosFloat = Field(alias="bandwidth")
    latency_s: NonNegFloat = Field(alias="latency")
    efficiency: Fraction = 1.0  # achievable fraction of ``bandwidth`` for large transfers
    # Energy of one bit over one directed edge of this class (picojoules); None: not
    # counted (simwall.costing.energy).
    energy_pj_per_bit: NonNegFloat | None = None
    # NCCL's hardware class of a hop over this link (nvlink, pci, net: the latency rows of
    # NVIDIA/nccl src/graph/tuning.cc); None: NCCL's protocol model does not apply.
    nccl_class: Literal["nvlink", "pci", "net"] | None = None
    # NVLink SHARP (in-switch reduction) all-reduce throughput as a fraction of the
    # achievable link bandwidth; None: the switch of this link class cannot reduce.
    nvls_efficiency: Fraction | None = None
    source: str = ""


# ---------------------------------------------------------------------------------------
# Cluster


class DeviceRef(Strict):
    """A catalog device with some fields replaced (what-if studies)."""

    base: str
    name: str | None = None
    kind: Literal["gpu", "tpu", "cpu"] | None = None
    peak_flop_per_s: dict[Precision, PosFloat] | None = Field(default=None, alias="peak_flops")
    memory_capacity_bytes: PosFloat | None = Field(default=None, alias="memory_capacity")
    memory_bandwidth_bytes_per_s: PosFloat | None = Field(default=None, alias="memory_bandwidth")
    efficiency: EfficiencySpec | None = None
    power: PowerSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        # A what-if device is named after its base and the YAML keys it changes, e.g.
        # "H100-SXM5-80GB (memory_bandwidth changed)", so reports show what was varied.
        if isinstance(data, dict) and data.get("name") is None and isinstance(
                data.get("base"), str):
            changed = sorted(str(k) for k, v in data.items()
                             if k not in ("base", "name") and v is not None)
            if changed:
                data = {**data, "name": f"{data['base']} ({', '.join(changed)} changed)"}
        return data


class LinkRef(Strict):
    """A catalog link with some fields replaced."""

    base: str
    bandwidth_bytes_per_s: PosFloat | None = Field(default=None, alias="bandwidth")
    latency_s: NonNegFloat | None = Field(default=None, alias="latency")
    efficiency: Fraction | None = None
    energy_pj_per_bit: NonNegFloat | None = None


LinkChoice = Union[str, LinkRef]

#: Torus dimensions (chips per dimension).
TorusDims = Annotated[tuple[PosInt, ...], at_most(
    MAX_TORUS_DIMS, "published tori have 3 to 6 dimensions")]


class IntraSpec(Strict):
    """Inside a node: how its devices connect."""

    topology: Annotated[str, OneOf(INTRA_TOPOLOGIES)] = "nvswitch"
    link: LinkChoice = "NVLink3"
    dims: TorusDims | None = None  # for torus


#: A fat-tree tier's oversubscription (down : up bandwidth), 1 to 64.
Taper = Annotated[float, Field(strict=True, ge=1, le=64, allow_inf_nan=False)]


class InterSpec(Strict):
    """Between nodes (or, for a torus, between all chips)."""

    topology: Annotated[str, OneOf(INTER_TOPOLOGIES)] = "fat_tree"
    link: LinkChoice = "IB-HDR"
    nics_per_node: PosInt = 8
    # Taper of a fat-tree tier, 1 to 64 (a leaf of radix r keeps about r / (1 + o) ports
    # up: beyond 64 the bundled radix-64 switch would keep none).
    oversubscription: Taper = 1.0
    rail_optimized: Bool = True
    dims: TorusDims | None = None  # for torus: chips per dimension
    switch_radix: PosInt = 64
    # fat_tree3: the aggregation tier's oversubscription and leaves per pod (None: half
    # the switch radix, as in a k-ary fat-tree).
    agg_oversubscription: Taper = 1.0
    pod_leaves: PosInt | None = None
    # dragonfly: nodes per router (p), routers per group (a), global links per router (h).
    router_nodes: PosInt = 4
    group_routers: PosInt = 8
    global_links: PosInt = 4
    # multi_plane: independent identical planes each NIC's bandwidth is split over (a
    # port per plane), and the fabric of one plane (simwall.net.generators.inter_multi_plane).
    planes: Annotated[int, Field(strict=True, ge=1, le=MAX_PLANES)] = 1
    plane_topology: Annotated[str, OneOf(INTER_TOPOLOGIES)] = "fat_tree"

    @model_validator(mode="after")
    def _planes_need_multi_plane(self) -> InterSpec:
        if self.planes > 1 and self.topology != "multi_plane":
            raise ValueError(f"inter.planes: splits NICs over planes only with "
                             f"inter.topology 'multi_plane' (and inter.plane_topology the "
                             f"fabric of one plane), got {self.planes} planes with "
                             f"{self.topology!r}")
        return self


class HostSpec(Strict):
    """The host side of each device: the PCIe link to it and host memory (for offload)."""

    link: LinkChoice = "PCIe4"
    memory_capacity_bytes: PosFloat = Field(default=1.0e12, alias="memory_capacity")
    cpu: str | None = None


class Straggler(Strict):
    device: NonNegInt
    slowdown: Annotated[float, Field(strict=True, gt=0, le=1, allow_inf_nan=False)]  # speed factor


#: Two graph node names (a link's ends).
NodePair = Annotated[tuple[str, str], Expected("two node names (the link's ends)")]


class DegradedLink(Strict):
    between: NodePair
    bandwidth_factor: Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]  # 0 = failed


class DegradedPlane(Strict):
    """Plane ``plane`` of a multi-plane fabric degraded (factor 0: failed): every one of
    its links, or only its link ``between`` two graph nodes (NIC, switch names)."""

    plane: NonNegInt
    between: NodePair | None = None
    bandwidth_factor: Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]  # 0 = failed


class FaultSpec(Strict):
    stragglers: Annotated[tuple[Straggler, ...], at_most(
        MAX_DEVICES, "at most one per device; the largest training clusters have about "
        "100,000 devices")] = ()
    links: Annotated[tuple[DegradedLink, ...], at_most(
        MAX_DEGRADED_LINKS, "failure studies degrade a handful of links")] = ()
    # Degraded planes of a multi-plane fabric (inter.topology 'multi_plane').
    planes: Annotated[tuple[DegradedPlane, ...], at_most(
        MAX_DEGRADED_LINKS, "failure studies degrade a handful of links")] = ()


#: Node kinds of an explicit cluster graph.
GraphNodeKind = Literal["device", "nic", "switch", "host"]
#: Edge kinds (the ``kind`` edge attribute, see simwall.net.topology).
GraphLinkKind = Literal["intra", "nic", "net", "spine", "inter", "host"]


class GraphNode(Strict):
    """One node of an explicit cluster graph (docs/input-formats.md, "Graph files").

    ``node``: the cluster node (server, NVLink domain) it belongs to: required on hosts,
    on devices of a multi-node graph and on a node's own switches; ``rail``: a NIC's index
    in its node (rail matching); ``device`` / ``memory_capacity``: a device's catalog kind
    (default the cluster's) and its memory, if the file states it."""

    name: Annotated[str, Field(min_length=1)]
    kind: GraphNodeKind
    node: NonNegInt | None = None
    rail: NonNegInt | None = None
    device: str | None = None
    memory_capacity_bytes: NonNegFloat | None = Field(default=None, alias="memory_capacity")


class GraphLink(Strict):
    """One full-duplex link of an explicit cluster graph: ``between`` two node names.

    ``type``: a catalog link class (its bandwidth, latency and efficiency are the
    defaults); ``bandwidth`` (bytes/s per direction) and ``latency`` (seconds, this
    edge's share of the hop) override them; ``kind`` defaults from the kinds of the two
    ends (docs/input-formats.md)."""

    between: NodePair
    type: str | None = None
    bandwidth_bytes_per_s: NonNegFloat | None = Field(default=None, alias="bandwidth")
    latency_s: NonNegFloat | None = Field(default=None, alias="latency")
    efficiency: Fraction | None = None
    kind: GraphLinkKind | None = None


class GraphRoute(Strict):
    """A fixed route: the node names from one device to another."""

    path: Annotated[tuple[str, ...], Field(min_length=2), Expected(
        "a path of at least two node names (device to device)")]


class GraphRouting(Strict):
    """How routes are found where the file gives none: shortest paths (fewest hops),
    one of several equal-cost paths chosen per device pair (ECMP hashing); with
    ``rail_matching`` a cross-node route first moves inside the source node to the device
    on the destination's rail (NCCL PXN)."""

    rail_matching: Bool = False


class GraphSymmetry(Strict):
    """Symmetry traits the file declares (simwall.net.generators.base.Generator says what
    each means); none declared: nothing is assumed (stage-by-stage costing).
    ``contention_block``: nodes per block whose traffic can slow each other (1: a node
    only its own), None: every node."""

    shift_symmetric: Bool = False
    shift_period: PosInt | None = None
    node_traffic_intra: Bool = False
    rail_disjoint: Bool = False
    block_nodes: PosInt | None = None
    contention_block: PosInt | None = None


class GraphSpec(Strict):
    """An explicit cluster graph: nodes, links, optional routes, routing and symmetry.
    ``file`` and ``lines`` are filled by the loader (where errors are located)."""

    nodes: Annotated[tuple[GraphNode, ...], at_most(
        4 * MAX_DEVICES, "devices, NICs, switches and hosts of the largest clusters")]
    links: Annotated[tuple[GraphLink, ...], at_most(
        8 * MAX_DEVICES, "links of the largest clusters")]
    routes: tuple[GraphRoute, ...] = ()
    routing: GraphRouting = GraphRouting()
    symmetry: GraphSymmetry = GraphSymmetry()
    file: str | None = None
    lines: dict[str, int] = {}
    key_prefix: str = ""          # "graph." when the graph is inline in a cluster file
    # A GraphML file or networkx graph: errors name a node by its id and a link by its
    # ends (simwall.config.graph.graph_key), not by a position in a list the user never
    # wrote.
    item_names: bool = False

    def line(self, key: str) -> int | None:
        """The line of ``key`` (``links[3].bandwidth``) in the graph's file, if known (a
        list item by its first key: ``nodes[2]`` is the line of its ``name``)."""
        dotted = dotted_key(key)
        for suffix in ("", ".name", ".between", ".path"):
            found = self.lines.get(dotted + suffix)
            if found is not None:
                return found
        return None


class MixedNodes(Strict):
    """Nodes whose devices are another kind than the cluster's ``device`` (a mixed
    cluster, e.g. a node of an older generation); the links stay the cluster's."""

    nodes: Annotated[tuple[NonNegInt, ...], at_most(
        MAX_DEVICES, "one entry per node")] = Field(min_length=1)
    device: str | DeviceRef


class ClusterSpec(Strict):
    """A cluster (a file under topologies/). ``nodes: auto`` sizes it for the plan."""

    name: str
    source: str | None = None
    device: str | DeviceRef = "A100-SXM4-80GB"
    nodes: PosInt | Literal["auto"] = "auto"
    devices_per_node: PosInt = 8
    intra: IntraSpec = IntraSpec()
    inter: InterSpec = InterSpec()
    host: HostSpec = HostSpec()
    faults: FaultSpec = FaultSpec()
    # Nodes of other device kinds (simulated per device: each DP replica's stream runs at
    # the pace of its slowest device; simwall.engine.step).
    mixed: tuple[MixedNodes, ...] = ()
    # An explicit graph instead of the generators (intra and inter topology 'graph').
    graph: GraphSpec | None = None
    # Device memory the training process cannot use for tensors, bytes per device: CUDA
    # context, kernels, library workspaces, NCCL buffers (None: the cited default,
    # simwall.model.memory.RESERVED_BYTES). ``memory_fragmentation``: the allocator's
    # fragmentation as a fraction of the allocated peak (None: its cited default,
    # simwall.model.memory.FRAGMENTATION). docs/memory-model.md, "Reserved memory".
    memory_reserved_bytes: NonNegFloat | None = Field(default=None, alias="memory_reserved")
    memory_fragmentation: Annotated[float, Field(strict=True, ge=0, lt=1,
                                                 allow_inf_nan=False)] | None = None
    # Energy and cost (simwall.costing.energy, docs/energy.md). ``power_overhead``: node
    # power beyond the devices and links (host CPUs and memory, NICs, switches, fans,
    # power-supply losses) as a factor on their energy (None: the cited default,
    # simwall.costing.energy.POWER_OVERHEAD); ``pue``: the facility's power usage
    # effectiveness (1: the node only, as MLPerf measures); ``price_per_device_hour``:
    # what one device-hour costs (any currency; None: no cost figures).
    power_overhead: Annotated[float, Field(strict=True, ge=1, allow_inf_nan=False)] | None = None
    pue: Annotated[float, Field(strict=True, ge=1, allow_inf_nan=False)] = 1.0
    price_per_device_hour: NonNegFloat | None = None

    @model_validator(mode="after")
    def _plane_faults_need_planes(self) -> ClusterSpec:
        if self.faults.planes and self.inter.topology != "multi_plane":
            raise ValueError(f"faults.planes: degrades planes of a multi-plane fabric; "
                             f"inter.topology {self.inter.topology!r} has none (expected "
                             f"'multi_plane')")
        return self

    _file: str | None = PrivateAttr(default=None)
    _lines: dict[str, int] = PrivateAttr(default_factory=dict)
    _set_keys: tuple[str, ...] = PrivateAttr(default=())

    @property
    def file(self) -> str:
        return self._file or f"<cluster {self.name}>"

    def line(self, key: str) -> int | None:
        """The line of ``key`` (``plan.tp``, ``faults.stragglers[0].device``) in the file
        (None if absent or set by ``--set``)."""
        return self._lines.get(dotted_key(key))
