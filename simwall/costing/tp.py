"""Tensor parallelism: the collectives of a layer, the embedding and the LM head (pure).

Per layer two all-reduces of the ``b s h`` activation in the forward pass and two in the
backward pass; with sequence parallelism each all-reduce becomes an all-gather plus a
reduce-scatter of the same buffer. Full recompute repeats the forward's collectives.
Vocabulary-parallel embedding adds one all-reduce (reduce-scatter with SP) forward; the
LM head needs its input gathered with SP (all-gather forward, reduce-scatter backward)
(Narayanan et al. 2021, SC21, Sec. 2.3; Korthikanti et al. 2022, Sec. 4.2.2).

With ``plan.tp_comm_overlap`` (config.FRAMEWORK_PRESETS) a layer's collectives are
decomposed into chunks pipelined with the GEMMs that consume or produce them
(:func:`overlapped_s`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import ModelSpec, TrainingSpec
from ..plan import Plan
from .groups import axis_groups
from .pp import bsh_activation_bytes, chunk_ids
from .traffic import Costed, Traffic, run_collective

__all__ = ["TPCost", "overlapped_s", "tp_cost", "with_overlap"]


@dataclass(frozen=True)
class TPCost:
    """TP collective seconds per micro-batch, and the step's traffic (layers, then the
    embedding, then the head)."""

    layer_fwd_s: float      # one layer's forward
    layer_bwd_s: float      # one layer's backward (with full recompute's repeat)
    embedding_s: float      # the embedding's forward (chunk 0)
    head_fwd_s: float       # the LM head's forward (last chunk)
    head_bwd_s: float       # the LM head's backward (last chunk)
    traffic: tuple[Traffic, ...] = ()


def tp_cost(model: ModelSpec, training: TrainingSpec, plan: Plan, topology, stage: int,
            symmetric: bool) -> TPCost:
    """TP collectives of ``stage`` (on stage 0's groups when ``symmetric``)."""
    tp, sp = plan.tp, plan.sequence_parallel
    gstage = 0 if symmetric else stage
    groups = [] if tp == 1 else axis_groups(plan, gstage, "tp", topology, symmetric)
    full_act = bsh_activation_bytes(model, training, plan)
    m = plan.micro_batches
    ids = chunk_ids(plan, stage)
    has_head = plan.chunks - 1 in ids

    def run(kind: str, count: float) -> Costed:
        return run_collective(topology, kind, groups, full_act, count, plan.collective,
                              symmetric)

    # Per layer and micro-batch: two collectives forward, two backward, two more to
    # recompute the forward; each is AG + RS with SP, else an AR.
    per_mb = plan.layers_on_stage(stage) * (4 + (2 if plan.recompute == "full" else 0))
    if sp:
        gather, scatter = run("all_gather", m * per_mb), run("reduce_scatter", m * per_mb)
        per_collective = gather.s + scatter.s
        layer_traffic = gather.traffic + scatter.traffic
    else:
        # --- validate (issue 4): without SP the LM head's input enters the vocabulary-
        # parallel GEMM through Megatron's copy-to-tensor-parallel region (identity
        # forward, all-reduce of the b s h input gradient backward; Shoeybi et al. 2019,
        # Sec. 3, the "f" operator; Megatron-LM parallel_lm_logits), so its backward pays
        # one more all-reduce per micro-batch (counted here, charged below).
        reduce = run("all_reduce", m * per_mb + (m if has_head else 0))
        per_collective, layer_traffic = reduce.s, reduce.traffic
    layer_fwd = 2 * per_collective
    layer_bwd = 2 * per_collective + (layer_fwd if plan.recompute == "full" else 0.0)
    # Vocabulary-parallel embedding: its output is summed over the TP ranks, an
    # all-reduce, or with SP a reduce-scatter into the sequence-parallel region.
    emb = run("reduce_scatter" if sp else "all_reduce", m if 0 in ids else 0)
    # LM head with SP: all-gather forward and backward.
    head = run("all_gather", 2 * m if has_head else 0) if sp else Costed()
    head_bwd = head.s if sp else per_collective
    return TPCost(layer_fwd_s=layer_fwd, layer_bwd_s=layer_bwd, embedding_s=emb.s,
                  head_fwd_s=head.s, head_bwd_s=head_bwd,
                  traffic=layer_traffic + emb.traffic + head.traffic)


def overlapped_s(comm_s: float, gemm_s: float, chunks: int) -> float:
    """Exposed seconds of ``comm_s`` of TP collectives decomposed into ``chunks`` pieces,
    each piece's transfer pipelined with the GEMM of another piece (Wang et al., ASPLOS
    2023, "Overlap Communication with Dependent Computation via Decomposition in Large
    Deep Learning Models", Sec. 3-4: an all-gather + GEMM or GEMM + reduce-scatter split
    into ``tp`` steps; Transformer Engine's userbuffers run it as ring-exchange / pipelined
    chunks, TE docs "Communication-GEMM overlap"): at least one piece is not covered
    (the first gathered or the last reduced), and the rest only as far as the
    ``gemm_s`` seconds of the GEMMs cover it. Never more than ``comm_s``."""
    if comm_s <= 0:
        return 0.0
    if chunks < 2:
        return comm_s
    piece = comm_s / chunks
    return min(comm_s, piece + max(0.0, comm_s - piece - gemm_s))


def with_overlap(tp: TPCost, plan: Plan, gemm_fwd_s: float, gemm_bwd_s: float) -> TPCost:
    """``tp`` with its per-layer collectives exposed only as :func:`overlapped_s` leaves
    them when the plan overlaps TP communication (``plan.tp_comm_overlap``; like
    Megatron-LM's ``--tp-comm-overlap``, only with sequence parallelism, whose all-gather
    and reduce-scatter are what userbuffers decompose); unchanged otherwise. ``gemm_*_s``:
    one layer's linear-layer GEMM seconds forward and backward (with its recompute)."""
    if not (plan.tp_comm_overlap and plan.sequence_parallel and plan.tp > 1):
        return tp
    return replace(tp, layer_fwd_s=overlapped_s(tp.layer_fwd_s, gemm_fwd_s, plan.tp),
                   layer_bwd_s=overlapped_s(tp.layer_bwd_s, gemm_bwd_s, plan.tp))
