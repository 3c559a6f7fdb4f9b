"""Durations of the tasks of one training step, per pipeline stage (pure, no simpy).

The engine schedules these; the analytical fast path (plan search) sums them directly.
Everything here is for one representative rank of a stage (all ranks of a stage are
alike on a symmetric cluster) unless a stage list is passed for per-device runs.

Communication per plan (Narayanan et al. 2021, "Efficient Large-Scale Language Model
Training on GPU Clusters Using Megatron-LM", SC21, Sec. 2.3 and 4.1; Korthikanti et al.
2022, Sec. 4.2.2):
- TP: per layer two all-reduces of the ``b s h`` activation in the forward pass and two in
  the backward pass; with sequence parallelism each all-reduce becomes an all-gather plus a
  reduce-scatter of the same buffer. Full recompute repeats the forward's collectives.
  Vocabulary-parallel embedding adds one all-reduce (reduce-scatter with SP) forward; the
  LM head needs its input gathered with SP (all-gather forward, reduce-scatter backward).
- PP: one ``b s h`` activation forward and one gradient backward per micro-batch between
  neighbouring stages; with the scatter/gather optimisation (Sec. 4.1) each TP rank sends
  ``1/t`` of it over its own NIC and the receivers all-gather over NVLink. With sequence
  parallelism the tensor is already split ``1/t`` and needs no all-gather.
- DP: gradients reduced in buckets once per step (after gradient accumulation), as
  backward of the last micro-batch produces them; ZeRO 1/2 reduce-scatter instead and
  all-gather the updated 16-bit parameters after the optimizer step (Rajbhandari et al.
  2020, Sec. 5); ZeRO 3 all-gathers each layer's parameters before its forward and its
  backward (prefetched one layer ahead) and reduce-scatters its gradients.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..net import collectives

from ..model import optime as cost

from ..model import memory

from . import offload

from ..model import ops as workload
from ..config import PRECISION_BYTES, DeviceSpec, ModelSpec, TrainingSpec
from ..plan import Plan

__all__ = [
    "ChunkCost",
    "StageCost",
    "StepCosts",
    "Traffic",
    "buckets",
    "placement",
    "step_costs",
]


@dataclass(frozen=True)
class Traffic:
    """A collective one step runs ``count`` times: ``kind`` by all ``groups`` at once,
    ``bytes_`` per rank (the full buffer, as in :mod:`simwall.collectives`), with
    ``algorithm`` (``'auto'``: each group picks its own) and, on symmetric runs, the
    ``window`` of nodes whose outgoing flows are costed."""

    kind: str
    groups: tuple[tuple[int, ...], ...]
    bytes_: float
    algorithm: str
    count: float
    window: collectives.Window = None


@dataclass(frozen=True)
class ChunkCost:
    """One model chunk on one stage, per micro-batch. Times in seconds."""

    chunk: int                 # global chunk index (0 .. pp * v - 1)
    layers: int
    fwd_compute_s: float
    fwd_tp_s: float
    bwd_compute_s: float       # includes recompute
    bwd_tp_s: float
    zero3_fwd_exposed_s: float
    zero3_bwd_exposed_s: float
    grad_bytes: float          # gradient bytes of this chunk's parameters on one device
    activation_bytes: float    # activation bytes kept per micro-batch until its backward

    @property
    def fwd_s(self) -> float:
        return self.fwd_compute_s + self.fwd_tp_s + self.zero3_fwd_exposed_s

    @property
    def bwd_s(self) -> float:
        return self.bwd_compute_s + self.bwd_tp_s + self.zero3_bwd_exposed_s


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
    post_optimizer_s: float           # ZeRO 1/2 all-gather of updated parameters
    traffic: tuple[Traffic, ...] = ()  # the collectives above, counted per step


@dataclass(frozen=True)
class StepCosts:
    stages: tuple[StageCost, ...]


def buckets(total_bytes: float, bucket_bytes: float) -> tuple[float, ...]:
    """``total_bytes`` cut into buckets of ``bucket_bytes`` (the last one partial)."""
    if total_bytes <= 0:
        return ()
    n = math.ceil(total_bytes / bucket_bytes - 1e-9)
    full = tuple([float(bucket_bytes)] * (n - 1))
    return full + (float(total_bytes - bucket_bytes * (n - 1)),)


def _groups_tp(plan: Plan, stage: int) -> list[list[int]]:
    return [[plan.device_of(stage, d, t) for t in range(plan.tp)] for d in range(plan.dp)]


def _groups_dp(plan: Plan, stage: int) -> list[list[int]]:
    return [[plan.device_of(stage, d, t) for d in range(plan.dp)] for t in range(plan.tp)]


def _devices_near(topology, devices) -> Iterator[int]:
    """Every device whose traffic can contend with that of ``devices``: those on the
    same nodes, or on the same oversubscribed leaves (``Topology.contention_nodes``).
    Node by node, nearest to the lowest first; a device may come more than once."""
    per_node = topology.devices_per_node
    seen: set[range] = set()
    for n in sorted({d // per_node for d in devices}):
        near = topology.contention_nodes(n)
        if near not in seen:
            seen.add(near)
            for m in near:
                yield from range(m * per_node, (m + 1) * per_node)


def _translates(first: tuple[int, ...], offsets: Sequence[int], topology
                ) -> tuple[tuple[int, ...], ...]:
    """``first`` moved by each of ``offsets`` (distinct, >= 0, 0 included): the groups
    of a symmetric run. Only ``first`` when the others are copies of it on other rails
    of a rail-disjoint network (``Topology.rails_disjoint``): ``first`` has one device
    per node, all on one rail; every translate stays on the same nodes (largest local
    index + largest offset < devices per node); no two offsets land on the same rail.
    Such groups share no link and a rail permutation maps one onto another, so together
    they take as long as ``first`` alone and load their rails as it loads its own."""
    if len(offsets) > 1 and topology.rails_disjoint():
        per_node, rails = topology.devices_per_node, topology.rails
        local = [d % per_node for d in first]
        if (len({d // per_node for d in first}) == len(first)
                and len({j % rails for j in local}) == 1
                and max(local) + max(offsets) < per_node
                and len({o % rails for o in offsets}) == len(offsets)):
            return (first,)
    return tuple(tuple(d + o for d in first) for o in offsets)


@lru_cache(maxsize=1024)
def _near_groups(plan: Plan, stage: int, axis: str, topology) -> tuple[tuple[int, ...], ...]:
    """The ``axis`` ('tp' or 'dp') groups of ``stage`` that share a node with its first
    group: the ones a symmetric run puts on the network (see :func:`placement`), less
    copies on other rails (:func:`_translates`)."""
    lo, tp = plan.device_of(stage, 0, 0), plan.tp
    hi = lo + plan.dp * tp                         # devices of the stage: lo .. hi - 1
    if axis == "tp":     # device - lo = dp_rank * tp + tp_rank; group d = first + d * tp
        first = tuple(range(lo, lo + tp))
        ranks = sorted({(dev - lo) // tp for dev in _devices_near(topology, first)
                        if lo <= dev < hi})
        return _translates(first, [d * tp for d in ranks], topology)
    first = tuple(range(lo, hi, tp))                # group t = first + t
    found: set[int] = set()
    for dev in _devices_near(topology, first):
        if lo <= dev < hi:
            found.add((dev - lo) % tp)
            if len(found) == tp:
                break
    return _translates(first, sorted(found), topology)


def _stage_pairs(plan: Plan, a: int, b: int, ranks: int) -> list[list[int]]:
    """[device of stage ``a``, same replica and TP rank in stage ``b``], TP ranks < ranks."""
    return [[plan.device_of(a, d, r), plan.device_of(b, d, r)]
            for d in range(plan.dp) for r in range(ranks)]


@lru_cache(maxsize=1024)
def _near_pairs(plan: Plan, a: int, b: int, ranks: int, topology
                ) -> tuple[tuple[int, ...], ...]:
    """:func:`_stage_pairs` that share a node with the first pair, in the same order,
    less copies on other rails (:func:`_translates`)."""
    first = (plan.device_of(a, 0, 0), plan.device_of(b, 0, 0))
    ids = set()
    for dev in _devices_near(topology, first):
        s, d, r = plan.rank_of(dev)
        if s in (a, b) and r < ranks:
            ids.add((d, r))
    # Pair (d, r) is the first moved by d * tp + r devices in both stages.
    return _translates(first, [d * plan.tp + r for d, r in sorted(ids)], topology)


def costs_symmetrically(cluster, topology, plan: Plan) -> bool:
    """Whether stage 0's groups may stand for every stage's (``symmetric`` costing): no
    failed or degraded links, no stragglers, and a shift by one stage maps the network
    onto itself (``Topology.shift_invariant``)."""
    return (not cluster.faults.links and not cluster.faults.stragglers
            and topology.shift_invariant(plan.dp * plan.tp))


def clear_caches() -> None:
    """Forget every memoised cost of this module (for cold-start benchmarks)."""
    for fn in (_near_groups, _near_pairs, op_times, stage_cost):
        fn.cache_clear()


def placement(topology, kind: str, groups, bytes_: float, algorithm: str, symmetric: bool
              ) -> tuple[tuple[tuple[int, ...], ...], str, collectives.Window]:
    """``(groups, algorithm, window)`` with which ``kind`` run by all ``groups`` at once is
    put on the network (max-min shared links).

    ``symmetric``: the groups are alike up to translation; the caller passes only the
    first one and the groups that can share its links (:func:`_near_groups`,
    :func:`_near_pairs`), the algorithm is chosen once for the first, and a group
    spanning many leaves is costed on the flows of its first two
    (:func:`simwall.collectives.symmetry_window`), so the cost does not grow with DP.
    Per-device runs (``symmetric=False``) put every group on the network.
    """
    window = None
    if symmetric:      # the caller passes the groups sharing a node with the first
        rep = groups[0]
        window = collectives.symmetry_window(rep, topology)
        if algorithm == "auto":
            algorithm = collectives.choose_algorithm(kind, rep, bytes_, topology, window)
    return tuple(tuple(g) for g in groups), algorithm, window


@lru_cache(maxsize=4096)
def op_times(model: ModelSpec, training: TrainingSpec, plan: Plan, device: DeviceSpec
              ) -> dict[str, float]:
    """Per micro-batch compute seconds of one layer and of the embedding/head parts."""
    p = training.precision
    t = {
        "layer_fwd": cost.ops_time_s(workload.layer_ops(model, training, plan, "fwd"), device, p),
        "layer_bwd": cost.ops_time_s(workload.layer_ops(model, training, plan, "bwd"), device, p),
        "layer_rec": cost.ops_time_s(workload.layer_ops(model, training, plan, "recompute"),
                                     device, p),
        "emb_fwd": cost.ops_time_s(workload.embedding_ops(model, training, plan, "fwd"), device, p),
        "emb_bwd": cost.ops_time_s(workload.embedding_ops(model, training, plan, "bwd"), device, p),
        "head_fwd": cost.ops_time_s(workload.head_ops(model, training, plan, "fwd"), device, p),
        "head_bwd": cost.ops_time_s(workload.head_ops(model, training, plan, "bwd"), device, p),
    }
    return t


@lru_cache(maxsize=4096)
def stage_cost(model: ModelSpec, training: TrainingSpec, plan: Plan, device: DeviceSpec,
                topology, stage: int, speed: float = 1.0, symmetric: bool = False
                ) -> StageCost:
    """Durations for ``stage``; ``speed`` < 1 slows its compute (a straggler).

    ``symmetric``: the cluster is fault-free and its stages are translations of each
    other, so stage 0's groups (and the 0 -> 1 pipeline boundary) stand for every
    stage's; see :func:`placement`. Memoised: plans and sweeps that share shapes reuse it
    (the topology is keyed by identity; it is immutable once built).
    """
    sym = symmetric
    gstage = 0 if sym else stage
    act_b = training.weight_bytes
    b, s, h = plan.micro_batch, model.seq_len, model.hidden
    t = op_times(model, training, plan, device)
    tp, sp = plan.tp, plan.sequence_parallel
    full_act = b * s * h * act_b                       # the b s h activation, bytes
    # What one step runs, for simwall.linkload: each collective costed below, recorded
    # with how often the step runs it (per layer and micro-batch, per send, per bucket).
    m = plan.micro_batches
    last = plan.chunks - 1
    ids = [local * plan.pp + stage for local in range(len(plan.chunk_layers(stage)))]
    n_here = plan.layers_on_stage(stage)
    traffic: list[Traffic] = []

    def coll(kind: str, groups, bytes_: float, count: float) -> float:
        """Seconds of one run of ``kind`` by all ``groups`` at once; the step runs it
        ``count`` times (recorded in ``traffic``)."""
        if bytes_ <= 0 or not groups or len(groups[0]) < 2:
            return 0.0
        placed, algorithm, window = placement(topology, kind, groups, bytes_,
                                              plan.collective, sym)
        if count > 0:
            traffic.append(Traffic(kind, placed, float(bytes_), algorithm, float(count),
                                   window))
        return collectives.collective_time_s(topology, kind, placed, bytes_, algorithm,
                                             window=window)

    tp_groups = ([] if tp == 1 else _near_groups(plan, gstage, "tp", topology) if sym
                 else _groups_tp(plan, gstage))
    # Per layer and micro-batch: two collectives forward, two backward, two more to
    # recompute the forward; each is AG + RS with SP, else an AR.
    per_mb = n_here * (4 + (2 if plan.recompute == "full" else 0))
    has_head = last in ids
    if sp:
        per_collective = (coll("all_gather", tp_groups, full_act, m * per_mb)
                          + coll("reduce_scatter", tp_groups, full_act, m * per_mb))
    else:
        # --- validate (issue 4): without SP the LM head's input enters the vocabulary-
        # parallel GEMM through Megatron's copy-to-tensor-parallel region (identity
        # forward, all-reduce of the b s h input gradient backward; Shoeybi et al. 2019,
        # Sec. 3, the "f" operator; Megatron-LM parallel_lm_logits), so its backward pays
        # one more all-reduce per micro-batch (counted here, charged below).
        per_collective = coll("all_reduce", tp_groups, full_act,
                              m * per_mb + (m if has_head else 0))
    layer_tp_fwd = 2 * per_collective
    layer_tp_bwd = 2 * per_collective + (layer_tp_fwd if plan.recompute == "full" else 0.0)
    # Vocabulary-parallel embedding: its output is summed over the TP ranks, an
    # all-reduce, or with SP a reduce-scatter into the sequence-parallel region.
    emb_tp = coll("reduce_scatter" if sp else "all_reduce", tp_groups, full_act,
                  m if 0 in ids else 0)
    # LM head with SP: all-gather forward and backward.
    head_tp = coll("all_gather", tp_groups, full_act, 2 * m if has_head else 0) if sp else 0.0
    head_tp_bwd = head_tp if sp else per_collective

    layer_params = memory.layer_params(model, tp)
    grad_b = PRECISION_BYTES[training.grad_precision_]
    param_b = training.weight_bytes
    dp_groups = ([] if plan.dp == 1 else _near_groups(plan, gstage, "dp", topology) if sym
                 else _groups_dp(plan, gstage))
    act_layer = memory.activation_bytes_per_layer(model, training, plan)

    # ZeRO-3: gather each layer's parameters (prefetched under the previous layer's compute)
    # before forward and backward; reduce-scatter its gradients in backward.
    z3_ag = z3_rs = 0.0
    if plan.zero == 3 and plan.dp > 1:
        z3_ag = coll("all_gather", dp_groups, layer_params * param_b, 2 * m * n_here)
        z3_rs = coll("reduce_scatter", dp_groups, layer_params * grad_b, m * n_here)
    # --- offload (issue 6, simwall.offload): ZeRO-Infinity keeps the 16-bit weights in
    # host memory and fetches each layer over PCIe before its forward and its backward,
    # prefetched one layer ahead like ZeRO-3's gather (so only the excess is exposed).
    if plan.offload == "optimizer+params":
        z3_ag += offload.layer_fetch_s(topology, training, plan, stage, layer_params)
    # --- end offload
    layer_fwd = (t["layer_fwd"]) / speed
    layer_bwd = (t["layer_bwd"] + t["layer_rec"]) / speed
    z3_fwd_exposed = max(0.0, z3_ag - layer_fwd - layer_tp_fwd)
    z3_bwd_exposed = max(0.0, z3_ag + z3_rs - layer_bwd - layer_tp_bwd)

    chunks = []
    for local, n_layers in enumerate(plan.chunk_layers(stage)):
        g = local * plan.pp + stage
        fwd_c = n_layers * layer_fwd
        bwd_c = n_layers * layer_bwd
        fwd_tp = n_layers * layer_tp_fwd
        bwd_tp = n_layers * layer_tp_bwd
        grads = n_layers * layer_params * grad_b
        act = n_layers * act_layer
        if g == 0:
            fwd_c += t["emb_fwd"] / speed
            bwd_c += t["emb_bwd"] / speed
            fwd_tp += emb_tp
            grads += memory.embedding_params(model, tp) * grad_b
            act += memory.embedding_activation_bytes(model, plan)
        if g == last:
            fwd_c += t["head_fwd"] / speed
            bwd_c += t["head_bwd"] / speed
            fwd_tp += head_tp
            bwd_tp += head_tp_bwd
            grads += memory.head_params(model, tp, plan.pp) * grad_b
            act += memory.output_activation_bytes(model, training, plan)
        chunks.append(ChunkCost(
            chunk=g, layers=n_layers, fwd_compute_s=fwd_c, fwd_tp_s=fwd_tp,
            bwd_compute_s=bwd_c, bwd_tp_s=bwd_tp,
            zero3_fwd_exposed_s=n_layers * z3_fwd_exposed,
            zero3_bwd_exposed_s=n_layers * z3_bwd_exposed,
            grad_bytes=grads, activation_bytes=act))

    # Pipeline point-to-point of one micro-batch's activation (or its gradient).
    pp_fwd = pp_bwd = 0.0
    if plan.pp > 1:
        src = gstage
        nxt = (src + 1) % plan.pp
        prv = (src - 1) % plan.pp
        split = sp or plan.pp_scatter_gather
        msg = full_act / tp if (split and tp > 1) else full_act
        ranks = tp if split else 1
        if sym:        # stage 0 <-> 1 stands for every boundary
            pairs_f = _near_pairs(plan, src, nxt, ranks, topology)
            pairs_b = tuple((b, a) for a, b in pairs_f)
        else:
            pairs_f = _stage_pairs(plan, src, nxt, ranks)
            pairs_b = _stage_pairs(plan, src, prv, ranks)
        # The engine sends after the forward of every chunk but the last and after the
        # backward of every chunk but the first.
        fwd_sends = m * sum(1 for g in ids if g < last)
        bwd_sends = m * sum(1 for g in ids if g > 0)
        pp_fwd = coll("send_recv", pairs_f, msg, fwd_sends)
        pp_bwd = coll("send_recv", pairs_b, msg, bwd_sends)
        if plan.pp_scatter_gather and not sp and tp > 1:
            nxt_tp = _near_groups(plan, nxt, "tp", topology) if sym else _groups_tp(plan, nxt)
            gather = coll("all_gather", nxt_tp, full_act, fwd_sends + bwd_sends)
            pp_fwd += gather
            pp_bwd += gather

    # Data-parallel gradient reduction, in buckets, once per step.
    total_grads = sum(c.grad_bytes for c in chunks)
    bucket_list: tuple[float, ...] = ()
    bucket_times: tuple[float, ...] = ()
    if plan.dp > 1 and plan.zero < 3:
        kind = "all_reduce" if plan.zero == 0 else "reduce_scatter"
        bucket_list = buckets(total_grads, plan.dp_bucket_bytes)
        memo: dict[float, float] = {}
        for size in bucket_list:
            if size not in memo:
                memo[size] = coll(kind, dp_groups, size, bucket_list.count(size))
        bucket_times = tuple(memo[x] for x in bucket_list)

    tied = 0.0
    if model.tied_embeddings and plan.pp > 1 and stage in (0, plan.pp - 1):
        emb_grads = memory.embedding_params(model, tp) * grad_b
        pairs = (_near_pairs(plan, 0, plan.pp - 1, tp, topology) if sym
                 else _stage_pairs(plan, 0, plan.pp - 1, tp))
        # The engine charges it once, on stage 0.
        tied = coll("all_reduce", pairs, emb_grads, 1 if stage == 0 else 0)

    params_here = memory.stage_params(model, plan, stage)
    shard = memory.optimizer_shard_params(params_here, plan)
    opt = cost.optimizer_step_time_s(shard, training.optimizer, device, training) / speed
    # --- offload (issue 6, simwall.offload): ZeRO-Offload runs the optimizer on the host
    # CPU: exposed gradient copy to host + CPU Adam + updated weights back over PCIe.
    if plan.offload != "none":
        opt = offload.host_optimizer_s(topology, training, plan, stage, shard,
                                       backward_s=sum(c.bwd_compute_s for c in chunks))
    # --- end offload
    post = 0.0
    if plan.zero in (1, 2) and plan.dp > 1:
        post = coll("all_gather", dp_groups, params_here * param_b, 1)
    return StageCost(stage=stage, chunks=tuple(chunks), pp_fwd_s=pp_fwd, pp_bwd_s=pp_bwd,
                     bucket_bytes=bucket_list, bucket_s=bucket_times, tied_embedding_s=tied,
                     optimizer_s=opt, post_optimizer_s=post, traffic=tuple(traffic))


def step_costs(model: ModelSpec, training: TrainingSpec, plan: Plan, device: DeviceSpec,
               topology, speeds: dict[int, float] | None = None,
               symmetric: bool = True) -> StepCosts:
    """Task durations for every stage.

    With ``symmetric`` (a fault-free cluster whose stages are translations of each
    other) the collective times of stage 0 stand for every stage's; otherwise each stage
    is costed on its own groups. ``speeds`` maps stage -> compute speed factor.
    """
    speeds = speeds or {}
    stages = []
    for st in range(plan.pp):
        cost_st = stage_cost(model, training, plan, device, topology, st,
                              speeds.get(st, 1.0))
        stages.append(cost_st)
    return StepCosts(stages=tuple(stages))
