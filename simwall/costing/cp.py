"""Context parallelism: the K/V exchange of every attention layer (pure).

With ``plan.cp`` ranks each holding ``s / cp`` tokens of every sequence (two mirrored
chunks, for causal load balancing), a rank's queries need the keys and values of the whole
sequence. Two ways to get them (Megatron-Core's ``cp_comm_type``,
megatron/core/transformer/transformer_config.py; run by Transformer Engine's
context-parallel attention):

- ``p2p``: a ring. The attention runs in ``cp`` steps, one per K/V chunk; while a step
  computes on the chunk at hand, the next chunk (``b s/cp`` tokens of K and V, the rank's
  K/V heads under GQA) is sent to the next CP rank and received from the previous one:
  ``cp - 1`` send/receives per layer forward, overlapped with the attention of the
  current step ("P2P is async and can be overlapped with attention compute"). With causal
  load balancing every step computes the same share of the rank's attention (``1/cp`` of
  it). Backward runs the ring again, passing K/V and the accumulated dK/dV (twice the
  bytes per step), overlapped with the attention backward of each step. Only what a
  step's attention does not cover is exposed.
- ``all_gather``: K and V of the whole sequence are all-gathered before the attention
  ("not async, and cannot be overlapped"; Transformer Engine's
  AttnFuncWithCPAndKVAllGather, "KV all-gather between CP ranks is exposed", after Llama
  3, Dubey et al. 2024, Sec. 3.3.2); backward gathers them again and reduce-scatters
  dK/dV. All of it is exposed.

Recompute that repeats the attention forward (full recompute; selective, which
checkpoints the core attention with either kernel: simwall.model.ops.SELECTIVE_RECOMPUTE)
repeats its exchange. The exposed seconds ride with the layer's tensor-parallel
communication (model-parallel communication inside a layer: the ``tp_comm`` part of the
breakdown); the traffic is recorded on the CP groups (:func:`.groups.cp_groups`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import DeviceSpec, ModelSpec, TrainingSpec
from ..model import optime
from ..model.memory import local_tokens
from ..model.ops import (
    ATTENTION_CORE,
    FLASH_ATTENTION,
    activation_element_bytes,
    kv_heads_per_device,
    layer_ops,
)
from ..plan import Plan
from .contention import beside_s, overlap_loss
from .groups import axis_groups
from .traffic import Traffic, run_collective

__all__ = ["CPCost", "attention_s", "cp_cost", "kv_chunk_bytes"]

_ATTENTION_OPS = ATTENTION_CORE | {FLASH_ATTENTION}


@dataclass(frozen=True)
class CPCost:
    """Exposed CP seconds of one layer per micro-batch (forward; backward with the
    recompute's repeat) and the step's traffic."""

    layer_fwd_s: float = 0.0
    layer_bwd_s: float = 0.0
    traffic: tuple[Traffic, ...] = ()


def kv_chunk_bytes(model: ModelSpec, training: TrainingSpec, plan: Plan) -> float:
    """K and V of one CP rank's ``b s / cp`` tokens on one TP rank, bytes (the message of
    one ring step)."""
    return float(2 * local_tokens(model, plan) * kv_heads_per_device(model, plan.tp)
                 * model.head_dim * activation_element_bytes(training))


def attention_s(model: ModelSpec, training: TrainingSpec, plan: Plan, device: DeviceSpec,
                pass_: str) -> float:
    """Seconds of one layer's attention core on one device per micro-batch in ``pass_``
    ('fwd', 'bwd' or 'recompute'): the fused kernel, or the eager scores / softmax /
    dropout / context kernels and their gradients (what the ring overlaps with)."""
    ops = [op for op in layer_ops(model, training, plan, pass_)
           if op.name.split(".")[0] in _ATTENTION_OPS]
    return optime.ops_time_s(ops, device, training.precision) if ops else 0.0


def cp_cost(model: ModelSpec, training: TrainingSpec, plan: Plan, device: DeviceSpec,
            topology, stage: int, symmetric: bool, speed: float = 1.0) -> CPCost:
    """The K/V exchange of ``stage``'s layers (on stage 0's CP groups when
    ``symmetric``); nothing without context parallelism. ``speed`` < 1 slows the
    attention that hides the ring (a straggler)."""
    cp = plan.cp
    if cp <= 1:
        return CPCost()
    groups = axis_groups(plan, 0 if symmetric else stage, "cp", topology, symmetric)
    kv = kv_chunk_bytes(model, training, plan)
    runs = plan.micro_batches * plan.layers_on_stage(stage)     # layer passes per step
    attn_fwd = attention_s(model, training, plan, device, "fwd") / speed
    attn_bwd = attention_s(model, training, plan, device, "bwd") / speed
    repeats = attention_s(model, training, plan, device, "recompute") > 0
    fwd_runs = runs * (2 if repeats else 1)
    if plan.cp_comm == "all_gather":
        # Collective sizes are the full buffer (simwall.net.collectives): K/V of all cp
        # ranks.
        gather = run_collective(topology, "all_gather", groups, cp * kv, fwd_runs + runs,
                                plan.collective, symmetric)
        scatter = run_collective(topology, "reduce_scatter", groups, cp * kv, runs,
                                 plan.collective, symmetric)
        fwd = gather.s
        bwd = gather.s + scatter.s + (fwd if repeats else 0.0)
        return CPCost(fwd, bwd, gather.traffic + scatter.traffic)
    # The ring: every rank sends to the next one at once (cp - 1 steps a pass).
    pairs = tuple((g[i], g[(i + 1) % cp]) for g in groups for i in range(cp))
    step_f = run_collective(topology, "send_recv", pairs, kv, (cp - 1) * fwd_runs,
                            plan.collective, symmetric)
    step_b = run_collective(topology, "send_recv", pairs, 2 * kv, (cp - 1) * runs,
                            plan.collective, symmetric)
    loss = overlap_loss(device)
    fwd = (cp - 1) * beside_s(step_f.s, attn_fwd / cp, loss)
    bwd = (cp - 1) * beside_s(step_b.s, attn_bwd / cp, loss) + (fwd if repeats else 0.0)
    return CPCost(fwd, bwd, step_f.traffic + step_b.traffic)
