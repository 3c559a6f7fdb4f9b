"""Pipeline parallelism: point-to-point sends between neighbouring stages (pure).

One ``b s h`` activation forward and one gradient backward per micro-batch between
neighbouring stages (Narayanan et al. 2021, "Efficient Large-Scale Language Model Training
on GPU Clusters Using Megatron-LM", SC21, Sec. 2.3 and 4.1). With the scatter/gather
optimisation (Sec. 4.1) each TP rank sends ``1/t`` of it over its own NIC and the
receivers all-gather over NVLink. With sequence parallelism the tensor is already split
``1/t`` and needs no all-gather.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ModelSpec, TrainingSpec
from ..plan import Plan
from .groups import axis_groups, near_pairs, stage_pairs
from .traffic import Traffic, run_collective

__all__ = ["PPCost", "bsh_activation_bytes", "chunk_ids", "pp_cost"]


@dataclass(frozen=True)
class PPCost:
    """Seconds of one micro-batch's activation to the next stage (``fwd_s``) and of its
    gradient back to the previous one (``bwd_s``), with the step's traffic."""

    fwd_s: float = 0.0
    bwd_s: float = 0.0
    traffic: tuple[Traffic, ...] = ()
    # The collectives of one forward (backward) send, in order (the send, then with the
    # scatter/gather optimisation the receivers' all-gather): what the engine runs as
    # flows in per-device runs (:class:`simwall.costing.stage.StageTransfers`).
    fwd_parts: tuple[Traffic, ...] = ()
    bwd_parts: tuple[Traffic, ...] = ()


def bsh_activation_bytes(model: ModelSpec, training: TrainingSpec, plan: Plan) -> float:
    """The ``b s h`` activation of one micro-batch on one CP rank (``s / cp`` tokens),
    bytes (what TP collectives and pipeline sends move)."""
    return plan.micro_batch * (model.seq_len // plan.cp) * model.hidden * training.weight_bytes


def chunk_ids(plan: Plan, stage: int) -> list[int]:
    """Global chunk index (0 .. pp * v - 1) of each local chunk of ``stage``, in order."""
    return [local * plan.pp + stage for local in range(len(plan.chunk_layers(stage)))]


def pp_cost(model: ModelSpec, training: TrainingSpec, plan: Plan, topology, stage: int,
            symmetric: bool) -> PPCost:
    """Pipeline sends of ``stage`` (the 0 -> 1 boundary standing for every one when
    ``symmetric``); nothing without pipeline parallelism."""
    if plan.pp <= 1:
        return PPCost()
    tp, sp = plan.tp, plan.sequence_parallel
    full_act = bsh_activation_bytes(model, training, plan)
    src = 0 if symmetric else stage
    nxt = (src + 1) % plan.pp
    prv = (src - 1) % plan.pp
    split = sp or plan.pp_scatter_gather
    msg = full_act / tp if (split and tp > 1) else full_act
    ranks = tp if split else 1
    if symmetric:        # stage 0 <-> 1 stands for every boundary
        pairs_f = near_pairs(plan, src, nxt, ranks, topology)
        pairs_b = tuple((b, a) for a, b in pairs_f)
    else:
        pairs_f = stage_pairs(plan, src, nxt, ranks)
        pairs_b = stage_pairs(plan, src, prv, ranks)
    # The engine sends after the forward of every chunk but the last and after the
    # backward of every chunk but the first.
    m, last, ids = plan.micro_batches, plan.chunks - 1, chunk_ids(plan, stage)
    fwd_sends = m * sum(1 for g in ids if g < last)
    bwd_sends = m * sum(1 for g in ids if g > 0)
    fwd = run_collective(topology, "send_recv", pairs_f, msg, fwd_sends, plan.collective,
                         symmetric)
    bwd = run_collective(topology, "send_recv", pairs_b, msg, bwd_sends, plan.collective,
                         symmetric)
    if not (plan.pp_scatter_gather and not sp and tp > 1):
        return PPCost(fwd.s, bwd.s, fwd.traffic + bwd.traffic, fwd.traffic, bwd.traffic)
    receivers = axis_groups(plan, nxt, "tp", topology, symmetric)
    gather = run_collective(topology, "all_gather", receivers, full_act,
                            fwd_sends + bwd_sends, plan.collective, symmetric)
    return PPCost(fwd.s + gather.s, bwd.s + gather.s,
                  fwd.traffic + bwd.traffic + gather.traffic,
                  fwd.traffic + gather.traffic if fwd.traffic else (),
                  bwd.traffic + gather.traffic if bwd.traffic else ())
