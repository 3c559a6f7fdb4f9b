"""The optimizer step and what follows it (pure).

On the device: one fused streaming kernel over the optimizer shard
(:func:`simwall.model.optime.optimizer_step_time_s`). With ZeRO 1/2 each DP rank updates
its shard, then the updated 16-bit parameters are all-gathered (Rajbhandari et al. 2020,
"ZeRO", Sec. 5). With offload the step runs on the host CPU (:mod:`.offload`).
With ``plan.overlap_param_gather`` that all-gather runs layer by layer under the next
step's forward (Megatron-Core ``--overlap-param-gather``): only what the first forward
does not cover, at least one layer's share, is exposed (:func:`gather_exposed_s`).
"""

from __future__ import annotations

from ..config import DeviceSpec, ModelSpec, TrainingSpec
from ..model import memory, optime
from ..net import Topology
from ..plan import Plan
from . import offload
from .contention import beside_s
from .groups import axis_groups
from .traffic import Costed, run_collective

__all__ = ["gather_exposed_s", "optimizer_s", "parameter_gather_cost"]


def optimizer_s(model: ModelSpec, training: TrainingSpec, plan: Plan, device: DeviceSpec,
                topology, stage: int, speed: float, backward_s: float) -> float:
    """Seconds of ``stage``'s optimizer step after its last backward; ``speed`` < 1 slows
    a device step (a straggler); ``backward_s``: one micro-batch's backward compute there
    (hides the gradient copy to the host when offloading)."""
    shard = memory.stage_optimizer_shard_params(model, plan, stage)
    if plan.offload != "none":
        # --- offload (issue 6, simwall.costing.offload): ZeRO-Offload runs the optimizer on
        # the host CPU: exposed gradient copy to host + CPU Adam + updated weights back
        # over PCIe.
        return offload.host_optimizer_s(topology, training, plan, stage, shard,
                                        backward_s=backward_s)
    return optime.optimizer_step_time_s(shard, training.optimizer, device, training) / speed


def parameter_gather_cost(model: ModelSpec, training: TrainingSpec, plan: Plan, topology: Topology,
                          stage: int, symmetric: bool) -> Costed:
    """ZeRO 1/2: the all-gather of ``stage``'s updated 16-bit parameters after the
    optimizer step, once per step (nothing otherwise). MoE: the routed experts' are
    gathered over the expert-DP groups their optimizer state is sharded on
    (:func:`~.groups.expert_dp_groups`), after the dense parameters' over DP x CP."""
    if not (plan.zero in (1, 2) and plan.shard > 1):
        return Costed()
    at = 0 if symmetric else stage
    # Hybrid sharding gathers inside the shard group (every replica holds the same shards).
    groups = axis_groups(plan, at, "dps", topology, symmetric)
    experts = memory.stage_expert_params(model, plan, stage) if plan.ep > 1 else 0
    params_bytes = (memory.stage_params(model, plan, stage) - experts) * training.weight_bytes
    dense = run_collective(topology, "all_gather", groups, params_bytes, 1, plan.collective,
                           symmetric)
    if not experts:
        return dense
    expert = run_collective(topology, "all_gather",
                            axis_groups(plan, at, "edp", topology, symmetric),
                            experts * training.weight_bytes, 1, plan.collective, symmetric)
    return Costed(s=dense.s + expert.s, traffic=dense.traffic + expert.traffic)


def gather_exposed_s(plan: Plan, gather_s: float, layers: int, forward_s: float,
                     loss: float = 0.0) -> float:
    """Exposed seconds of the ZeRO 1/2 parameter all-gather of ``gather_s`` seconds over
    ``layers`` layers: all of it, or with ``plan.overlap_param_gather`` one layer's share
    and what the rest takes beyond the next step's first forward (``forward_s``, one
    micro-batch over the stage's chunks) or the compute it slows (``loss``,
    :func:`.contention.beside_s`): Megatron-Core gathers bucket by bucket as the forward
    reaches each layer (NeMo docs, "Communication Overlap": the DP communication "is
    chunked by the granularity of a Transformer layer" and "exposes only one DP
    communication chunk")."""
    if gather_s <= 0 or not plan.overlap_param_gather:
        return gather_s
    first = gather_s / max(1, layers)
    return first + beside_s(gather_s - first, forward_s, loss)
