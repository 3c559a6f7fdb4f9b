"""Device groups of a stage and how a symmetric run places them on the network (pure).

A stage's TP groups (one per DP x CP rank), DP groups (one per TP rank; with context
parallelism the DP x CP group that reduces the gradients), CP groups (one per DP rank and
TP rank) and the pairs of devices that pipeline sends join; per-device runs put every group on the network. On a
symmetric cluster (:func:`costs_symmetrically`) the groups are translations of each other,
so only the first one and the groups that can share its links are costed
(:func:`near_groups`, :func:`near_pairs`, :func:`placement`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..memo import memoized
from ..net import collectives
from ..plan import Plan

__all__ = [
    "axis_groups",
    "blocks",
    "boundary_pairs",
    "costs_symmetrically",
    "cp_groups",
    "dp_groups",
    "expert_dp_groups",
    "near_expert_dp_groups",
    "near_groups",
    "near_pairs",
    "placement",
    "replica_groups",
    "shard_groups",
    "stage_pairs",
    "strided",
    "tp_groups",
]

Groups = Sequence[Sequence[int]]


def tp_groups(plan: Plan, stage: int) -> list[list[int]]:
    """Every TP group of ``stage``: one per DP x CP rank, devices in TP-rank order."""
    return [[plan.device_of(stage, d, t) for t in range(plan.tp)] for d in range(plan.dp_cp)]


def dp_groups(plan: Plan, stage: int) -> list[list[int]]:
    """Every DP group of ``stage``: one per TP rank, devices in replica order; with context
    parallelism the DP x CP group (Megatron-Core reduces gradients and shards the
    distributed optimizer over ``get_data_parallel_group(with_context_parallel=True)``,
    megatron/core/parallel_state.py)."""
    return [[plan.device_of(stage, d, t) for d in range(plan.dp_cp)] for t in range(plan.tp)]


def expert_dp_groups(plan: Plan, stage: int) -> list[list[int]]:
    """Every expert-data-parallel group of ``stage``: the ranks of a DP x CP group that
    hold the same experts, one per (TP rank, EP rank), ``dp x cp / ep`` devices ``ep x
    tp`` apart. Megatron-Core reduces the routed experts' gradients and shards their
    optimizer state over this group, the dense parameters' over the DP x CP group
    (megatron/core/distributed/distributed_data_parallel.py: buffers of parameters with
    ``allreduce`` False, the expert-parallel ones, take ``intra_expt_dp_group``, the rest
    ``intra_dp_cp_group``); its size is ``world / (expert TP x EP x PP)``
    (megatron/core/parallel_state.py, ``expert_data_parallel_size``, expert TP = TP
    here), its ranks the "dp" axis of the expert rank generator, order tp-ep-dp-pp with
    CP folded in: EP ranks are consecutive DP x CP ranks, as :mod:`.ep` places them."""
    return strided(dp_groups(plan, stage), plan.ep)


def blocks(groups: Groups, n: int) -> list:
    """Each group cut into runs of ``n`` consecutive ranks, in order."""
    return [g[i:i + n] for g in groups for i in range(0, len(g), n)]


def strided(groups: Groups, n: int) -> list:
    """Each group cut into ``n`` subgroups of ranks ``n`` apart (rank ``i`` of every run
    of ``n``), in order."""
    return [g[i::n] for g in groups for i in range(n)]


def shard_groups(plan: Plan, stage: int) -> list[list[int]]:
    """Every hybrid-sharding shard group of ``stage`` (``plan.dp_shard``): ``shard``
    consecutive ranks of a DP x CP group, which shard the model states (FSDP's
    HYBRID_SHARD shards inside a node: consecutive DP ranks are ``tp`` devices apart).
    The whole DP x CP group when nothing is hybrid."""
    return blocks(dp_groups(plan, stage), plan.shard)


def replica_groups(plan: Plan, stage: int) -> list[list[int]]:
    """Every hybrid-sharding replica group of ``stage``: the ranks of a DP x CP group that
    hold the same shard, ``shard`` ranks apart (one per shard group)."""
    return strided(dp_groups(plan, stage), plan.shard)


def cp_groups(plan: Plan, stage: int) -> list[list[int]]:
    """Every CP group of ``stage``: one per (DP rank, TP rank), devices in CP-rank order
    (``tp`` apart: TP is the innermost axis, then CP)."""
    return [[plan.device_of(stage, d * plan.cp + c, t) for c in range(plan.cp)]
            for d in range(plan.dp) for t in range(plan.tp)]


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


@memoized(maxsize=1024)
def _placement_plan(tp: int, cp: int, dp: int) -> Plan:
    """A plan with ``plan``'s rank placement alone (:meth:`Plan.device_of` and
    :meth:`Plan.rank_of` read tp, cp and dp only): the memo key of :func:`near_groups`
    and :func:`near_pairs`, so plans that differ elsewhere share their groups."""
    return Plan(tp=tp, pp=1, dp=dp, virtual_stages=1, sequence_parallel=False, zero=0,
                recompute="none", schedule="1f1b", micro_batch=1, global_batch=dp,
                stage_layers=(1,), cp=cp)


def near_groups(plan: Plan, stage: int, axis: str, topology) -> tuple[tuple[int, ...], ...]:
    """The ``axis`` ('tp', 'dp' or 'cp') groups of ``stage`` that share a node with its
    first group: the ones a symmetric run puts on the network (see :func:`placement`),
    less copies on other rails (:func:`_translates`)."""
    return _near_groups(_placement_plan(plan.tp, plan.cp, plan.dp), stage, axis, topology)


@memoized(maxsize=1024)
def _near_groups(plan: Plan, stage: int, axis: str, topology
                 ) -> tuple[tuple[int, ...], ...]:
    """:func:`near_groups` of a plan with the rank placement alone."""
    lo, tp = plan.device_of(stage, 0, 0), plan.tp
    hi = lo + plan.dp_cp * tp                      # devices of the stage: lo .. hi - 1
    if axis == "tp":     # device - lo = dp_rank * tp + tp_rank; group d = first + d * tp
        first = tuple(range(lo, lo + tp))
        ranks = sorted({(dev - lo) // tp for dev in _devices_near(topology, first)
                        if lo <= dev < hi})
        return _translates(first, [d * tp for d in ranks], topology)
    if axis == "cp":     # group (d, t) = first + d * cp * tp + t
        span = plan.cp * tp
        first = tuple(range(lo, lo + span, tp))
        offsets = sorted({(dev - lo) // span * span + (dev - lo) % tp
                          for dev in _devices_near(topology, first) if lo <= dev < hi})
        return _translates(first, offsets, topology)
    first = tuple(range(lo, hi, tp))                # group t = first + t
    found: set[int] = set()
    for dev in _devices_near(topology, first):
        if lo <= dev < hi:
            found.add((dev - lo) % tp)
            if len(found) == tp:
                break
    return _translates(first, sorted(found), topology)


def near_expert_dp_groups(plan: Plan, stage: int, topology) -> tuple[tuple[int, ...], ...]:
    """The expert-DP groups (:func:`expert_dp_groups`) of the DP groups a symmetric run
    costs (:func:`near_groups`) that share a node with the first of them."""
    return _near_subgroups(plan, stage, topology, plan.ep, True)


@memoized(maxsize=1024)
def _near_subgroups(plan: Plan, stage: int, topology, n: int, spaced: bool
                    ) -> tuple[tuple[int, ...], ...]:
    """The subgroups (:func:`strided` if ``spaced``, else :func:`blocks`, of ``n``) of the
    DP groups a symmetric run costs (:func:`near_groups`) that share a node with the
    first of them: expert DP, hybrid sharding's shard and replica groups."""
    subs = (strided if spaced else blocks)(near_groups(plan, stage, "dp", topology), n)
    near = set(_devices_near(topology, subs[0]))
    return tuple(g for g in subs if near.intersection(g))


def axis_groups(plan: Plan, stage: int, axis: str, topology, symmetric: bool) -> Groups:
    """The ``axis`` ('tp', 'dp', 'cp', 'edp': expert DP, 'dps' / 'dpr': the shard /
    replica groups of hybrid sharding) groups of ``stage`` to cost: :func:`near_groups`
    (:func:`near_expert_dp_groups`, :func:`near_shard_groups`) when ``symmetric``, else
    every group (:func:`tp_groups` / :func:`dp_groups` / :func:`cp_groups` /
    :func:`expert_dp_groups` / :func:`shard_groups` / :func:`replica_groups`)."""
    if axis == "dps" and not plan.dp_shard:
        axis = "dp"                  # no hybrid sharding: the shard group is the DP group
    if axis in ("dps", "dpr"):
        if symmetric:
            return _near_subgroups(plan, stage, topology, plan.shard, axis == "dpr")
        return shard_groups(plan, stage) if axis == "dps" else replica_groups(plan, stage)
    if axis == "edp":
        return (near_expert_dp_groups(plan, stage, topology) if symmetric
                else expert_dp_groups(plan, stage))
    if symmetric:
        return near_groups(plan, stage, axis, topology)
    if axis == "cp":
        return cp_groups(plan, stage)
    return tp_groups(plan, stage) if axis == "tp" else dp_groups(plan, stage)


def stage_pairs(plan: Plan, a: int, b: int, ranks: int) -> list[list[int]]:
    """[device of stage ``a``, same replica and TP rank in stage ``b``], TP ranks < ranks."""
    return [[plan.device_of(a, d, r), plan.device_of(b, d, r)]
            for d in range(plan.dp_cp) for r in range(ranks)]


def near_pairs(plan: Plan, a: int, b: int, ranks: int, topology
               ) -> tuple[tuple[int, ...], ...]:
    """:func:`stage_pairs` that share a node with the first pair, in the same order,
    less copies on other rails (:func:`_translates`)."""
    return _near_pairs(_placement_plan(plan.tp, plan.cp, plan.dp), a, b, ranks, topology)


@memoized(maxsize=1024)
def _near_pairs(plan: Plan, a: int, b: int, ranks: int, topology
                ) -> tuple[tuple[int, ...], ...]:
    """:func:`near_pairs` of a plan with the rank placement alone."""
    first = (plan.device_of(a, 0, 0), plan.device_of(b, 0, 0))
    ids = set()
    for dev in _devices_near(topology, first):
        s, d, r = plan.rank_of(dev)
        if s in (a, b) and r < ranks:
            ids.add((d, r))
    # Pair (d, r) is the first moved by d * tp + r devices in both stages.
    return _translates(first, [d * plan.tp + r for d, r in sorted(ids)], topology)


def boundary_pairs(plan: Plan, a: int, b: int, ranks: int, topology, symmetric: bool
                   ) -> Groups:
    """The pairs (stage ``a`` -> stage ``b``) to cost: :func:`near_pairs` when
    ``symmetric``, else every pair (:func:`stage_pairs`)."""
    if symmetric:
        return near_pairs(plan, a, b, ranks, topology)
    return stage_pairs(plan, a, b, ranks)


def costs_symmetrically(cluster, topology, plan: Plan) -> bool:
    """Whether stage 0's groups may stand for every stage's (``symmetric`` costing): no
    failed or degraded links, no stragglers, one device kind (no ``mixed`` nodes), and a
    shift by one stage maps the network onto itself (``Topology.shift_invariant``)."""
    return (not cluster.faults.links and not cluster.faults.stragglers
            and not cluster.mixed and topology.shift_invariant(plan.dp_cp * plan.tp))


def placement(topology, kind: str, groups, bytes_: float, algorithm: str, symmetric: bool
              ) -> tuple[tuple[tuple[int, ...], ...], str, collectives.Window]:
    """``(groups, algorithm, window)`` with which ``kind`` run by all ``groups`` at once is
    put on the network (max-min shared links).

    ``symmetric``: the groups are alike up to translation; the caller passes only the
    first one and the groups that can share its links (:func:`near_groups`,
    :func:`near_pairs`), the algorithm is chosen once for the first, and a group
    spanning many leaves is costed on the flows of its first two
    (:func:`simwall.net.collectives.symmetry_window`), so the cost does not grow with DP.
    Per-device runs (``symmetric=False``) put every group on the network.
    """
    window = None
    if symmetric:      # the caller passes the groups sharing a node with the first
        rep = groups[0]
        window = collectives.symmetry_window(rep, topology)
        if algorithm == "auto":
            algorithm = collectives.choose_algorithm(kind, rep, bytes_, topology, window)
    return tuple(tuple(g) for g in groups), algorithm, window
