"""ZeRO-3: each layer's parameters gathered and its gradients reduce-scattered (pure).

ZeRO 3 all-gathers the parameters of each gather unit before its forward and its
backward and reduce-scatters its gradients in the backward (Rajbhandari et al. 2020,
"ZeRO", Sec. 5). How the framework runs it (config.FRAMEWORK_PRESETS) decides the cost:

- the gather unit (``plan.zero3_gather_unit``): a whole ``layer`` (FSDP's wrapped block,
  one flat parameter per block) or one ``module`` (DeepSpeed fetches each submodule's
  parameters with its own all-gather: the linear layers of a block), each collective
  paying its own latency;
- prefetch (``plan.zero3_prefetch``): with 1 or more units fetched ahead, the stream of
  gathers runs under the compute of the units before, so a pass of ``N`` units exposes
  its first gather and, per unit, what the gather takes beyond the unit's compute
  (:func:`pass_exposed_s`); with 0 every gather is exposed;
- ``plan.reshard_after_forward`` off keeps the gathered parameters from the forward to
  the backward (no backward gather);
- module units with full recompute gather again for the recomputed forward (DeepSpeed
  releases a submodule's parameters after its forward, the recompute's forward hooks
  fetch them again); a layer unit recomputes inside its own backward, gathered once;
- how a gather is issued (``plan.zero3_gather_impl``): ``coalesced``, one all-gather per
  unit into one flat buffer; ``per_param_list``, DeepSpeed's ZeRO-3 of 2021 (v0.3.13 to
  v0.5.4; microsoft/DeepSpeed deepspeed/runtime/zero/partition_parameters.py,
  ``_allgather_param``, e.g. commit 599258f9): one ``torch.distributed.all_gather`` per
  parameter tensor not kept resident (:func:`param_tensors_per_layer` collectives per
  layer, each paying its own latency) with a list of ``world_size`` output views, which
  PyTorch's NCCL backend
  (torch/lib/c10d/ProcessGroupNCCL.cpp, ``ProcessGroupNCCL::allgather``: a new flattened
  output, then ``outputTensors[i][j].copy_(outputFlattened[i][j])`` for every rank ``j``,
  on the NCCL stream; the same loop in PyTorch 1.3 to 2.x) follows with one copy per
  rank, after DeepSpeed built the list with one Python ``narrow`` view per rank: per
  rank and collective a view and a ``copy_`` (:func:`list_copy_s`), a fixed cost
  that grows with the DP degree while the bytes per rank shrink. The gradients go the
  same way: every parameter with a gradient, resident ones included, is reduce-scattered
  by its own list ``torch.distributed.reduce_scatter`` (``_reduce_scatter_gradient``:
  one ``narrow`` per rank), whose NCCL backend first copies each rank's input into a
  flattened buffer (``ProcessGroupNCCL::reduce_scatter``: ``inputFlattened[i][j].copy_``
  per rank).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import PRECISION_BYTES, ModelSpec, TrainingSpec
from ..model import kv_heads_per_device, memory
from ..plan import Plan
from . import offload
from .contention import beside_s
from .groups import axis_groups
from .traffic import Traffic, run_collective

__all__ = ["COPY_OP_S", "PERSISTENCE_THRESHOLD_ELEMENTS", "VIEW_OP_S", "Zero3Cost",
           "exposed_s", "gathers_per_layer", "list_copy_s", "param_tensors_per_layer",
           "pass_exposed_s", "units_per_layer", "zero3_cost"]


@dataclass(frozen=True)
class Zero3Cost:
    """Seconds per gather unit and micro-batch: fetching the unit's parameters
    (``gather_s``: ZeRO-3's all-gather with its latency, plus the host fetch of
    ZeRO-Infinity) and reduce-scattering its gradients (with hybrid sharding, then
    all-reducing the rank's shard of them across the replicas); ``units`` per layer; how many
    gathers per layer the forward and the backward run; with the step's traffic."""

    gather_s: float = 0.0
    reduce_scatter_s: float = 0.0
    traffic: tuple[Traffic, ...] = ()
    units: int = 1
    fwd_gathers: int = 0
    bwd_gathers: int = 0
    prefetch: int = 1
    # The part of gather_s that is a collective (NCCL kernels, which slow the compute
    # beside them: .contention); the rest is ZeRO-Infinity's host fetch, a DMA copy.
    gather_collective_s: float = 0.0


def units_per_layer(model: ModelSpec, plan: Plan) -> int:
    """Gather units of one layer: 1 for ``layer``; for ``module`` the linear layers
    (QKV, attention output, MLP up, MLP down, and the gate of a gated MLP)."""
    if plan.zero3_gather_unit == "module":
        return 4 + (1 if model.gated_mlp else 0)
    return 1


#: DeepSpeed ZeRO-3's ``stage3_param_persistence_threshold`` default, elements: parameters
#: smaller than this stay gathered for the whole run and are never fetched per submodule
#: (microsoft/DeepSpeed deepspeed/runtime/zero/constants.py,
#: ZERO_OPTIMIZATION_PARAM_PERSISTENCE_THRESHOLD_DEFAULT = 100000; stage3.py
#: ``persistent_parameters``: ``ds_numel < persistence_threshold`` sets ``ds_persist``,
#: which fetch and release skip; commit 599258f9, 2021, and later).
PERSISTENCE_THRESHOLD_ELEMENTS = 100_000


def param_tensors_per_layer(model: ModelSpec, tp: int = 1,
                            persistence: int = PERSISTENCE_THRESHOLD_ELEMENTS) -> int:
    """Parameter tensors of one dense transformer layer on a TP rank that
    ``per_param_list`` gathers one by one: those of at least ``persistence`` elements
    among a weight per linear layer (fused QKV, attention output, MLP up, the gate of a
    gated MLP, MLP down), a bias per linear layer where the model has biases (LayerNorm
    models, :func:`simwall.model.memory.layer_params`) and the two norms' gain (+ bias).
    GPT-3 175B: the 4 weights (biases and norms are under 1e5 elements and persist)."""
    h, f = model.hidden, model.ffn // tp
    qkv = h // tp + 2 * kv_heads_per_device(model, tp) * model.head_dim
    weights = [h * qkv, (h // tp) * h, h * f, f * h] + ([h * f] if model.gated_mlp else [])
    layernorm = model.norm == "layernorm"
    small = ([qkv, h, f, h] + ([f] if model.gated_mlp else []) if layernorm else [])
    small += [h] * (4 if layernorm else 2)
    return sum(1 for n in weights + small if n >= persistence)


#: Host seconds of one eager PyTorch view op called from Python (``tensor.narrow``, which
#: DeepSpeed's 2021 list collectives call once per rank): the PyTorch operator
#: micro-benchmark of ``torch.split`` (a view op) reports 2.26 us per call (3.3 us before
#: the change) in pytorch/pytorch pull 32194 (2020, "reimplement __torch_function__
#: overrides for torch.functional using inline logic", its timing tables). A cited
#: figure, not fitted; the 2021 runs' host CPUs may differ.
VIEW_OP_S = 2.26e-6

#: Host seconds of one small CUDA ``Tensor.copy_`` issued from C++ in the PyTorch of 2020,
#: dispatch, TensorIterator set-up and the kernel launch together: ProcessGroupNCCL's
#: copy loop calls one per rank. pytorch/pytorch issue 37048 ("copy_ slowness", 2020)
#: times ``torch.addmm`` with and without its internal ``copy_`` into the output over
#: 100,000 calls (2.578 against 1.502 s, and 2.336 against 1.471 s: 10.8 and 8.7 us per
#: call), and the maintainer's reply puts the difference at "~10 us", "fully exposed
#: overheads and cuda launch latency": 10 us. A cited figure, not fitted; the raw
#: cuLaunchKernel alone is ~3 us (hardware.efficiency.FALLBACK ``launch_s``).
COPY_OP_S = 10e-6


def list_copy_s(ranks: int) -> float:
    """Host seconds a list collective of ``per_param_list`` spends per call on its
    ``ranks`` list entries: per rank, DeepSpeed's Python ``narrow`` view
    (:data:`VIEW_OP_S`) and one ``copy_`` between the list entry and PyTorch's flattened
    buffer (ProcessGroupNCCL::allgather after, ``reduce_scatter`` before the NCCL call,
    :data:`COPY_OP_S`); the copies move only the collective's bytes, which its own time
    already bounds."""
    return ranks * (VIEW_OP_S + COPY_OP_S)


def gathers_per_layer(plan: Plan) -> tuple[int, int]:
    """``(forward, backward)`` all-gathers of each unit per micro-batch (see the module
    docstring)."""
    bwd = 1 if plan.reshard_after_forward else 0
    if plan.zero3_gather_unit == "module" and plan.recompute == "full":
        bwd += 1
    return 1, bwd


def zero3_cost(model: ModelSpec, training: TrainingSpec, plan: Plan, topology, stage: int,
               symmetric: bool) -> Zero3Cost:
    """Per-unit parameter fetch and gradient reduce-scatter of ``stage``."""
    layer_params = memory.layer_params(model, plan.tp)
    k = units_per_layer(model, plan)
    fwd_n, bwd_n = gathers_per_layer(plan)
    gather_s = scatter_s = 0.0
    traffic: tuple[Traffic, ...] = ()
    if plan.zero == 3 and plan.shard > 1:
        # Hybrid sharding gathers and reduce-scatters inside the shard group, then
        # all-reduces each rank's gradient shard across the replicas (below).
        at = 0 if symmetric else stage
        groups = axis_groups(plan, at, "dps", topology, symmetric)
        m, n_here = plan.micro_batches, plan.layers_on_stage(stage)
        # Collectives per unit: one (coalesced) or one per parameter tensor.
        per_unit = (max(1, param_tensors_per_layer(model, plan.tp)) / k
                    if plan.zero3_gather_impl == "per_param_list" else 1)
        gather = run_collective(topology, "all_gather", groups,
                                layer_params * training.weight_bytes / (k * per_unit),
                                (fwd_n + bwd_n) * m * n_here * k * per_unit, plan.collective,
                                symmetric)
        # Reduce-scatters per unit: one, or one per parameter tensor with a gradient
        # (resident ones too: their gradients are partitioned like the others').
        per_unit_rs = (max(1, param_tensors_per_layer(model, plan.tp, persistence=0)) / k
                       if plan.zero3_gather_impl == "per_param_list" else 1)
        scatter = run_collective(topology, "reduce_scatter", groups,
                                 layer_params * PRECISION_BYTES[training.grad_reduce_precision_]
                                 / (k * per_unit_rs), m * n_here * k * per_unit_rs,
                                 plan.collective, symmetric)
        gather_s, scatter_s = gather.s, scatter.s
        if plan.zero3_gather_impl == "per_param_list":
            host_s = list_copy_s(len(groups[0]))
            gather_s = per_unit * (gather.s + host_s)
            scatter_s = per_unit_rs * (scatter.s + host_s)
        traffic = gather.traffic + scatter.traffic
        if plan.dp_shard:
            # FSDP HYBRID_SHARD: after the reduce-scatter inside the shard group, the
            # gradient shard is all-reduced across the replica group
            # (torch/distributed/fsdp/_runtime_utils.py, _reduce_grad: reduce_scatter on
            # the process group, then all_reduce on _inter_node_pg, on its all-reduce
            # stream): simwall runs it after the reduce-scatter it waits for.
            across = run_collective(
                topology, "all_reduce", axis_groups(plan, at, "dpr", topology, symmetric),
                layer_params * PRECISION_BYTES[training.grad_reduce_precision_]
                / (k * plan.shard), m * n_here * k, plan.collective, symmetric)
            scatter_s += across.s
            traffic += across.traffic
    # --- offload (issue 6, simwall.costing.offload): ZeRO-Infinity keeps the 16-bit
    # weights in host memory and fetches each layer over PCIe before its forward and its
    # backward, prefetched like ZeRO-3's gather (so only the excess is exposed).
    collective_s = gather_s
    if plan.offload == "optimizer+params":
        gather_s += offload.layer_fetch_s(topology, training, plan, stage, layer_params) / k
        fwd_n, bwd_n = 1, max(1, bwd_n)
    # --- end offload
    if gather_s == 0.0 and scatter_s == 0.0:
        return Zero3Cost()
    return Zero3Cost(gather_s, scatter_s, traffic, units=k, fwd_gathers=fwd_n,
                     bwd_gathers=bwd_n, prefetch=plan.zero3_prefetch,
                     gather_collective_s=collective_s)


def pass_exposed_s(units: int, comm_s: float, compute_s: float, prefetch: int,
                   after_s: float = 0.0, loss: float = 0.0) -> float:
    """Exposed seconds of one pass over ``units`` gather units, each needing ``comm_s``
    of communication (one stream, in order) before its ``compute_s`` of compute and
    ``after_s`` (the backward's gradient reduce-scatter) after it. Without prefetch every
    unit waits for its own gather; with it, unit ``i + 1``'s gather runs under unit
    ``i``'s compute, a pipeline: the first unit's gather and the last unit's
    reduce-scatter are exposed, and per further unit what its communication takes beyond
    the compute it hides under, or the compute it slows (``loss``,
    :func:`.contention.beside_s`). The reduce-scatters run under later units' compute in
    both cases."""
    if units <= 0 or comm_s + after_s <= 0:
        return 0.0
    if prefetch <= 0:
        return units * comm_s + after_s + (units - 1) * beside_s(after_s, compute_s, loss)
    return comm_s + after_s + (units - 1) * beside_s(comm_s + after_s, compute_s, loss)


def _scaled(loss: float, collective_s: float, total_s: float) -> float:
    """``loss`` for a stretch of communication of which ``collective_s`` of ``total_s``
    seconds are collectives (the rest a DMA copy, which takes no SMs)."""
    if collective_s >= total_s:
        return loss
    return loss * collective_s / total_s if total_s > 0 else 0.0


def exposed_s(z3: Zero3Cost, n_layers: int, layer_fwd_s: float, layer_bwd_s: float,
              tp_fwd_s: float, tp_bwd_s: float, loss: float = 0.0) -> tuple[float, float]:
    """``(forward, backward)`` seconds per layer and micro-batch that the parameter fetch
    (and, backward, the reduce-scatter) adds beyond the compute and TP time of a pass
    over ``n_layers`` layers (:func:`pass_exposed_s`, averaged over the layers), with
    ``loss`` the share of compute a collective beside it takes."""
    if n_layers <= 0 or (z3.gather_s <= 0 and z3.reduce_scatter_s <= 0):
        return 0.0, 0.0
    k = z3.units
    n = n_layers * k
    fwd_comm, bwd_comm = z3.fwd_gathers * z3.gather_s, z3.bwd_gathers * z3.gather_s
    # Only the collectives slow the compute: the loss is scaled by their share of the time.
    fwd_coll = z3.fwd_gathers * z3.gather_collective_s
    bwd_coll = z3.bwd_gathers * z3.gather_collective_s + z3.reduce_scatter_s
    fwd = pass_exposed_s(n, fwd_comm, (layer_fwd_s + tp_fwd_s) / k, z3.prefetch,
                         loss=_scaled(loss, fwd_coll, fwd_comm))
    bwd = pass_exposed_s(n, bwd_comm, (layer_bwd_s + tp_bwd_s) / k, z3.prefetch,
                         after_s=z3.reduce_scatter_s,
                         loss=_scaled(loss, bwd_coll, bwd_comm + z3.reduce_scatter_s))
    return fwd / n_layers, bwd / n_layers
