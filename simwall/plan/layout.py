"""A resolved parallelism plan and where its ranks run: degrees, micro-batching, the
layer split over model chunks, and the rank -> device placement (:class:`Plan`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..memo import memoized

__all__ = ["Plan", "balanced_split", "stage_classes"]


@dataclass(frozen=True)
class Plan:
    """Resolved plan. Degrees multiply to ``world``; batches count sequences.

    ``stage_layers`` has one entry per model chunk (``pp * virtual_stages`` of them);
    chunk ``c`` runs on pipeline stage ``c % pp`` (Megatron-LM's interleaved placement).
    Ranks are ordered TP fastest, then CP, then DP, then PP (Megatron-Core's default
    order "tp-cp-ep-dp-pp", megatron/core/parallel_state.py), so a TP group is consecutive
    devices, inside one node whenever ``tp <= devices_per_node``, and a CP group spans
    the ``tp x cp`` consecutive devices (one node when ``tp x cp <= devices_per_node``).
    Placement indexes a device by its stage, its rank in the DP x CP group (``dp_rank x
    cp + cp_rank``, Megatron-Core's "dp-cp" group that reduces the gradients) and its TP
    rank; with ``cp = 1`` that rank is the DP rank.
    """

    tp: int
    pp: int
    dp: int
    virtual_stages: int
    sequence_parallel: bool
    zero: int
    recompute: str
    schedule: str
    micro_batch: int
    global_batch: int
    stage_layers: tuple[int, ...]
    collective: str = "auto"
    dp_bucket_bytes: float = 25e6
    dp_overlap: bool = True
    pp_scatter_gather: bool = True
    offload: str = "none"
    cp: int = 1                  # context-parallel degree (simwall.costing.cp)
    cp_comm: str = "p2p"         # 'p2p' (K/V ring) or 'all_gather'
    ep: int = 1
    ep_overlap: bool = False     # expert-parallel all-to-alls beside another micro-batch
    # Hybrid sharding: ZeRO shards over ``dp_shard`` DP x CP ranks (0: all of them; see
    # :attr:`shard`), replicated over the dp x cp / shard groups.
    dp_shard: int = 0
    # Framework semantics (config.FRAMEWORK_PRESETS), resolved by
    # plan.frameworks.with_framework; the defaults here are the pre-issue-15 behaviour.
    framework: str = "none"
    tp_comm_overlap: bool = False
    overlap_param_gather: bool = False
    zero_grad_reduce: str = "step"
    zero3_gather_unit: str = "layer"
    zero3_prefetch: int = 1
    reshard_after_forward: bool = True
    zero3_gather_impl: str = "coalesced"  # 'coalesced' or 'per_param_list' (costing.zero)

    @property
    def world(self) -> int:
        return self.tp * self.cp * self.pp * self.dp

    @property
    def dp_cp(self) -> int:
        """Ranks that hold the same parameters and reduce their gradients together: DP x
        CP (Megatron-Core's data-parallel group "with context parallel", over which the
        distributed optimizer shards; megatron/core/parallel_state.py)."""
        return self.dp * self.cp

    @property
    def extra_warmup(self) -> int:
        """Warm-up forwards a stage runs beyond its schedule's: one with
        :attr:`ep_overlap` (Megatron-Core's combined 1F1B, megatron/core/
        pipeline_parallel/schedules.py: ``num_warmup_microbatches + 1``), else none."""
        return 1 if self.ep_overlap else 0

    @property
    def shard(self) -> int:
        """Ranks ZeRO shards the model states over: ``dp_shard``, or all DP x CP ranks."""
        return self.dp_shard or self.dp_cp

    @property
    def micro_batches(self) -> int:
        """Micro-batches per DP replica per step."""
        return self.global_batch // (self.dp * self.micro_batch)

    @property
    def chunks(self) -> int:
        return self.pp * self.virtual_stages

    def chunk_layers(self, stage: int) -> tuple[int, ...]:
        """Layers of each model chunk held by pipeline ``stage``, in model order."""
        return tuple(self.stage_layers[stage:self.chunks:self.pp])  # stage, stage + pp, ...

    def layers_on_stage(self, stage: int) -> int:
        return sum(self.chunk_layers(stage))

    def device_of(self, stage: int, dp_rank: int, tp_rank: int) -> int:
        """Global device index of one rank; ``dp_rank`` is the rank in the DP x CP group
        (``0 .. dp_cp - 1``: DP rank x cp + CP rank)."""
        return (stage * self.dp_cp + dp_rank) * self.tp + tp_rank

    def rank_of(self, device: int) -> tuple[int, int, int]:
        """``(stage, dp_rank, tp_rank)`` of a global device index, ``dp_rank`` in the
        DP x CP group (inverse of :meth:`device_of`)."""
        stage, rest = divmod(device, self.dp_cp * self.tp)
        dp_rank, tp_rank = divmod(rest, self.tp)
        return stage, dp_rank, tp_rank

    def as_dict(self) -> dict:
        return {
            "tp": self.tp, "pp": self.pp, "dp": self.dp,
            "virtual_stages": self.virtual_stages,
            "sequence_parallel": self.sequence_parallel, "zero": self.zero,
            "recompute": self.recompute, "schedule": self.schedule,
            "micro_batch": self.micro_batch, "global_batch": self.global_batch,
            "micro_batches": self.micro_batches, "stage_layers": list(self.stage_layers),
            "collective": self.collective, "dp_bucket_bytes": self.dp_bucket_bytes,
            "dp_overlap": self.dp_overlap, "pp_scatter_gather": self.pp_scatter_gather,
            "offload": self.offload, "cp": self.cp, "cp_comm": self.cp_comm, "ep": self.ep,
            "ep_overlap": self.ep_overlap, "dp_shard": self.shard, "world": self.world,
            "framework": self.framework, "tp_comm_overlap": self.tp_comm_overlap,
            "overlap_param_gather": self.overlap_param_gather,
            "zero_grad_reduce": self.zero_grad_reduce,
            "zero3_gather_unit": self.zero3_gather_unit,
            "zero3_prefetch": self.zero3_prefetch,
            "reshard_after_forward": self.reshard_after_forward,
        }


def balanced_split(layers: int, chunks: int) -> tuple[int, ...]:
    """Split ``layers`` over ``chunks`` as evenly as possible.

    When the split cannot be even, the extra layers go to the middle chunks first, since
    the first chunk also holds the embedding and the last the LM head and loss. This is
    the balancing Llama 3 used (Dubey et al. 2024, Sec. 3.3.2: 126 layers on 16 stages,
    one layer fewer on the first and the last stage).
    """
    base, extra = divmod(layers, chunks)
    order = list(range(1, chunks - 1)) + [0, chunks - 1] if chunks > 2 else list(range(chunks))
    out = [base] * chunks
    for c in order[:extra]:
        out[c] += 1
    return tuple(out)


#: Axes ``simwall plan --best-by`` groups plans on: the names the plan column uses ->
#: the :class:`Plan` field.
BEST_BY_AXES = {"tp": "tp", "cp": "cp", "pp": "pp", "dp": "dp", "ep": "ep",
                "mb": "micro_batch", "zero": "zero", "rc": "recompute",
                "sp": "sequence_parallel", "schedule": "schedule", "v": "virtual_stages"}


@memoized(maxsize=1024)
def stage_classes(stage_layers: tuple[int, ...], pp: int, v: int) -> tuple[int, ...]:
    """Per pipeline stage, the first stage of its class: the same role (first, last) and
    the same layers per chunk (chunk ``c`` on stage ``c % pp``, as
    :meth:`Plan.chunk_layers`). On a symmetric run of a dense model, stages of one class
    differ only in their index (:func:`simwall.costing.stage.stage_cost`,
    :func:`simwall.model.memory.device_memory`)."""
    first: dict[tuple, int] = {}
    out = []
    for stage in range(pp):
        key = (stage == 0, stage == pp - 1, stage_layers[stage:pp * v:pp])
        out.append(first.setdefault(key, stage))
    return tuple(out)
