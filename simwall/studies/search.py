"""Plan search (``simwall plan``): the fastest plans of a workload on a cluster.

Search enumerates every plan the engine accepts for a workload on a cluster, drops
those the closed-form memory model (:mod:`simwall.model.memory`) says cannot fit, ranks the
rest with an analytic estimate built from the per-stage task durations of
:mod:`simwall.costing` (the same durations the engine schedules), and confirms the
best few with the engine. The topology is built once per search and the stage costs
are memoised per plan shape, so plans that differ only in their schedule share them.

The analytic estimate of the pipelined forward/backward phase, with ``T_s`` the
forward + backward time of one micro-batch on stage ``s`` (all its chunks), ``m``
micro-batches and ``v`` chunks per stage (Narayanan et al. 2021, SC21, Sec. 2.2: the
1F1B bubble is ``(p - 1)`` stage-times, divided by ``v`` when interleaved)::

    pipe = m * max_s T_s + (sum_s T_s - max_s T_s) / v + (p - 1) * (t_pp_fwd + t_pp_bwd)

(with ZB-H1, ``plan.schedule: zero_bubble``, the bubble's stage-times are
``F_s + B_s - min(W_s, F_s, B_s)``, ``W_s`` the weight-gradient part of the backward and
``B_s`` the rest: Qi et al. 2024 give ``T_F + T_B - T_W`` for ``T_W <= T_F, T_B``),
then the exposed data-parallel tail (bucket reductions beyond the last backward that
they overlap), the tied-embedding reduction, the optimizer step and ZeRO's parameter
all-gather, assembled by the engine's own :func:`simwall.engine.step.step_timing`
(:func:`simwall.engine.step.estimate_step`).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from ..api import Prepared, run_prepared
from ..config import (
    PRECISION_BYTES,
    ClusterSpec,
    Workload,
    reoverride,
    split_key_overrides,
)
from ..costing import costs_symmetrically, op_times, stage_cost
from ..costing.tp import tp_cost, with_overlap
from ..engine.prepare import load_inputs, topology_for
from ..engine.step import estimate_step
from ..engine.sync import OTHER_S
from ..errors import ConfigError, SimwallError
from ..hardware.catalog import resolve_device, resolve_link
from ..hardware.efficiency import check_precision
from ..memo import memoized, table
from ..model.limits import resolve_checked
from ..model.memory import MemoryModel, memory_reserve, stage_layer_kinds
from ..plan import (
    BEST_BY_AXES,
    SEMANTIC_KEYS,
    Plan,
    balanced_split,
    cluster_devices,
    framed,
    framework_label,
    framework_names,
    frameworks_for,
    preset_for,
    stage_classes,
)
from ..report import StepResult
from .progress import Progress, tracked

__all__ = [
    "BEST_BY_AXES",
    "CONFIRM_FACTOR",
    "CP_DEGREES",
    "MICRO_BATCHES",
    "VIRTUAL_STAGES",
    "Candidate",
    "Ranked",
    "SearchResult",
    "Searcher",
    "cp_degrees",
    "cp_min_chunk_tokens",
    "describe_axes",
    "describe_plan",
    "enumerate_plans",
    "parse_axes",
    "render_search",
    "search",
    "search_records",
]

#: Micro-batch sizes tried. Our cap: larger micro-batches raise GEMM efficiency but also
#: activation memory and the pipeline bubble (the trade-off of Narayanan et al. 2021,
#: SC21, Sec. 3.4); past 8 sequences the GEMMs of the models we ship are already large.
MICRO_BATCHES = (1, 2, 4, 8)
#: Virtual stages tried with the interleaved schedule. Our choice of small values: each
#: extra chunk divides the bubble but adds point-to-point communication (Narayanan et
#: al. 2021, Sec. 2.2.2).
VIRTUAL_STAGES = (2, 4)
#: Context-parallel degrees tried: powers of two up to 16 (Llama 3 405B at 131,072 tokens
#: used CP 16, Dubey et al. 2024, Table 4; NVIDIA's Llama 3.1 recipes CP 2), each only where
#: a CP rank's sequence chunk is long enough for the ring exchange of K/V to hide behind its
#: attention (:func:`cp_min_chunk_tokens`). Our choice, to keep the search at most 5x larger;
#: a ``plan.cp`` the workload sets is always tried as well.
CP_DEGREES = (2, 4, 8, 16)
#: Plans confirmed with the engine per plan asked for (top K -> CONFIRM_FACTOR x K).
CONFIRM_FACTOR = 3

#: Relative margin by which :meth:`Searcher.step_bound` must exceed a limit for a plan
#: to be skipped unestimated. The bound and the estimate add the same figures in other
#: orders, so they may differ in the last bits (about 1e-16 relative per addition); 1e-9
#: is far above that. Not a model constant: a larger margin only skips fewer plans.
BOUND_MARGIN = 1e-9
#: Bytes per GB in the printed output (SI gigabytes, as device datasheets use).
GB = 1e9


@dataclass(frozen=True)
class Candidate:
    """One plan with its closed-form peak memory and its analytic step-time estimate."""

    plan: Plan
    peak_bytes: float
    peak_stage: int
    estimate_s: float
    bubble_s: float


@dataclass(frozen=True)
class Ranked:
    """A candidate confirmed by the engine."""

    candidate: Candidate
    result: StepResult
    why: str

    @property
    def step_time_s(self) -> float:
        return self.result.step_time_s

    @property
    def framework(self) -> str:
        """The frameworks that run this plan (:func:`simwall.plan.framework_label`)."""
        return framework_label(self.candidate.plan)


@dataclass(frozen=True)
class SearchResult:
    workload: str
    cluster: str
    world: int
    considered: int                   # valid plans enumerated
    fitting: int                      # of those, fitting the closed-form memory model
    confirmed: int                    # simulated with the engine
    ranked: tuple[Ranked, ...]        # best first (engine time), top K
    # With ``best_by``: the axes, and ``ranked`` holds the best plan of each combination of
    # their values, in order of the values; ``unfit`` the combinations enumerated of which
    # no plan fits (``describe_axes`` labels).
    best_by: tuple[str, ...] = ()
    unfit: tuple[str, ...] = ()
    # Show cp / ep in every row (the search tried cp > 1 / the model is MoE).
    show_cp: bool = False
    show_ep: bool = False
    # The choices --set fixed ("tp=4"), and the framework the search was restricted to.
    fixed: tuple[str, ...] = ()
    framework: str | None = None

    def __repr__(self) -> str:
        # The counts and the best plan; ``ranked`` holds every plan with its result.
        best = (f"; best {describe_plan(self.ranked[0].candidate.plan)}: "
                f"{self.ranked[0].step_time_s:.4f} s" if self.ranked else "; none fits")
        return (f"SearchResult({self.workload} on {self.cluster}: {self.considered} valid, "
                f"{self.fitting} fit, {self.confirmed} simulated, {len(self.ranked)} "
                f"ranked{best})")


def tp_valid(workload: Workload, cluster: ClusterSpec, tp: int) -> bool:
    """The TP checks of :func:`simwall.plan.resolve`, without raising."""
    m = workload.model
    if m.heads % tp or m.ffn % tp:
        return False
    kv = m.kv_heads_
    if kv % tp and tp % kv:
        return False
    return not (tp > cluster.devices_per_node and tp % cluster.devices_per_node)


def cp_min_chunk_tokens(workload: Workload, cluster: ClusterSpec) -> float:
    """Shortest sequence chunk per CP rank, in tokens, whose attention hides the ring
    exchange of its K/V: Ring Attention's condition, block size ``c >= F / B`` (Liu, Zaharia
    and Abbeel 2023, arXiv 2310.01889, Sec. 3: a ``c``-token block costs ``4 c^2 d`` FLOP
    of attention against ``4 c d`` bytes of 2-byte K and V sent to the next device), with
    ``F`` the device's peak FLOP/s at the training precision and ``B`` the per-direction
    bandwidth of the cluster's intra-node link (the fastest a CP ring can use). K and V
    have ``kv_heads`` of the ``heads`` (MQA/GQA cut CP's traffic in that ratio: Megatron-Core
    ``docs/source/api-guide/context_parallel.rst``), so ``c >= F / B x kv_heads / heads``."""
    m = workload.model
    device = resolve_device(cluster.device, "device", cluster.file)
    link = resolve_link(cluster.intra.link, "intra.link", cluster.file)
    flop_per_s = device.peak(workload.training.precision)
    return flop_per_s / link.bandwidth_bytes_per_s * m.kv_heads_ / m.heads


def cp_degrees(workload: Workload, cluster: ClusterSpec,
               world: int | None = None) -> tuple[int, ...]:
    """Context-parallel degrees the search tries: 1, the workload's ``plan.cp``, and each of
    :data:`CP_DEGREES` whose chunk ``seq_len / cp`` is at least
    :func:`cp_min_chunk_tokens`; each dividing the device count, with ``2 cp`` dividing the
    sequence (causal load balancing)."""
    world = world or cluster_devices(cluster, workload)
    seq = workload.model.seq_len
    min_chunk = cp_min_chunk_tokens(workload, cluster)
    want = {1, workload.plan.cp}
    want.update(c for c in CP_DEGREES if seq / c >= min_chunk)
    return tuple(sorted(c for c in want
                        if c == 1 or (world % c == 0 and seq % (2 * c) == 0)))


def enumerate_plans(workload: Workload, cluster: ClusterSpec,
                    max_tp: int | None = None) -> Iterator[Plan]:
    """Every plan :func:`simwall.plan.resolve` would accept for this workload on this
    cluster (fixed ``global_batch`` and device count), over tp, cp (:func:`cp_degrees`),
    pp, micro-batch, ZeRO, recompute, sequence parallelism, schedule and (MoE models)
    expert parallelism (:func:`expert_degrees`). TP stays inside a node by default
    (``max_tp`` = devices per node): Megatron-LM's rule (Narayanan et al. 2021, Sec. 3.2,
    Takeaway #1). Fixed knobs (collective, buckets, offload) come from the workload.

    ZeRO > 0 is only tried with dp > 1 and sequence parallelism only with tp > 1 (both
    are no-ops otherwise and would duplicate plans)."""
    spec, model, train = workload.plan, workload.model, workload.training
    world = cluster_devices(cluster, workload)
    max_tp = max_tp or cluster.devices_per_node
    gb = train.global_batch
    reduce_bytes = PRECISION_BYTES[train.grad_reduce_precision_]
    framing: dict[tuple, dict[str, Any]] = {}
    for cp, tp in ((c, t) for c in cp_degrees(workload, cluster, world)
                   for t in range(1, min(world // c, max_tp) + 1)):
        if (world // cp) % tp or not tp_valid(workload, cluster, tp):
            continue
        for pp in range(1, min(model.layers, world // (tp * cp)) + 1):
            if (world // (tp * cp)) % pp:
                continue
            dp = world // (tp * cp * pp)
            for mb in MICRO_BATCHES:
                if gb % (dp * mb):
                    continue
                m = gb // (dp * mb)
                scheds: list[tuple[str, int]] = [("1f1b", 1)]
                if pp > 1:
                    scheds += [("gpipe", 1), ("zero_bubble", 1)]
                    if m % pp == 0:
                        scheds += [("interleaved", v) for v in VIRTUAL_STAGES
                                   if model.layers >= pp * v]
                for schedule, v in scheds:
                    layers = balanced_split(model.layers, pp * v)
                    for zero in (range(4) if dp > 1 else (0,)):
                        for recompute in ("none", "selective", "full"):
                            for sp in ((False, True) if tp > 1 else (False,)):
                                if model.moe and tp > 1 and not sp:
                                    continue     # MoE with TP needs SP (Megatron-Core)
                                for ep in expert_degrees(model, dp * cp):
                                    # The framework and its semantics depend on the
                                    # degrees, ZeRO, schedule and offload, not on the
                                    # micro-batch, recompute or SP (plan.frameworks):
                                    # framed once per key, later plans built with them.
                                    key = (tp, cp, pp, dp, v, schedule, zero, ep)
                                    fields = framing.get(key)
                                    plan = Plan(
                                        tp=tp, pp=pp, dp=dp, virtual_stages=v,
                                        sequence_parallel=sp, zero=zero,
                                        recompute=recompute, schedule=schedule,
                                        micro_batch=mb, global_batch=gb,
                                        stage_layers=layers, collective=spec.collective,
                                        dp_overlap=spec.dp_overlap,
                                        pp_scatter_gather=spec.pp_scatter_gather,
                                        offload=spec.offload, cp=cp, cp_comm=spec.cp_comm,
                                        ep=ep, **(fields or {}))
                                    if fields is None:
                                        plan = framed(plan, spec, reduce_bytes)
                                        framing[key] = {k: getattr(plan, k)
                                                        for k in _FRAMED_FIELDS}
                                    yield plan


#: Frameworks whose searches (``--framework``) also try hybrid sharding: FSDP's
#: HYBRID_SHARD / _HYBRID_SHARD_ZERO2, FSDP2's 2-D mesh, Megatron-Core's partial distributed
#: optimizer (plan.dp_shard). Not tried without a framework: it would add a variant to most
#: ZeRO plans, and the default searches keep their speed.
HYBRID_FRAMEWORKS = ("fsdp", "fsdp2", "megatron")


def _with_hybrid(plans: Iterable[Plan], devices_per_node: int) -> Iterator[Plan]:
    """Each plan, then (ZeRO >= 1, no EP or offload) the same plan sharded inside a node:
    ``dp_shard`` = the DP x CP ranks one node holds, when that splits DP x CP in two or
    more groups (FSDP's HYBRID_SHARD default)."""
    for plan in plans:
        yield plan
        per_node = devices_per_node // plan.tp if devices_per_node % plan.tp == 0 else 0
        if (plan.zero >= 1 and plan.ep == 1 and plan.offload == "none" and per_node >= 2
                and plan.dp_cp > per_node and plan.dp_cp % per_node == 0):
            yield replace(plan, dp_shard=per_node)


def _run_by(workload: Workload, framework: str) -> Workload:
    """``workload`` with its plans costed as ``framework`` runs them: ``plan.framework``
    set to it where the workload leaves it ``auto``. A workload naming a framework of
    another preset is refused: the search would cost one framework's plans as another's."""
    named = workload.plan.framework
    if named == "auto":
        return workload.model_copy(update={
            "plan": workload.plan.model_copy(update={"framework": framework})})
    if preset_for(None, named) != preset_for(None, framework):
        raise ConfigError("--framework", None, f"{framework} conflicts with "
                          f"plan.framework: {named} of {workload.file} (leave it auto, or "
                          f"search --framework {named})")
    return workload


#: The plan fields the search chooses, by the key path that sets each: a ``--set`` of
#: one in ``simwall plan`` fixes that choice (:func:`fixed_fields`).
SEARCHED_KEYS: dict[str, str] = {
    "plan.tp": "tp", "plan.cp": "cp", "plan.pp": "pp", "plan.dp": "dp", "plan.ep": "ep",
    "plan.zero": "zero", "plan.recompute": "recompute", "plan.schedule": "schedule",
    "plan.virtual_stages": "virtual_stages", "plan.sequence_parallel": "sequence_parallel",
    "training.micro_batch": "micro_batch"}


def fixed_fields(workload: Workload, keys: Iterable[str]) -> dict[str, Any]:
    """{plan field: ``workload``'s validated value} of the :data:`SEARCHED_KEYS` among
    ``keys`` (the overridden key paths); ``auto`` fixes nothing."""
    section = {"plan": workload.plan, "training": workload.training}
    out: dict[str, Any] = {}
    for key in keys:
        if key in SEARCHED_KEYS:
            head, name = key.split(".")
            value = getattr(section[head], name)
            if value != "auto":
                out[SEARCHED_KEYS[key]] = value
    return out


def _no_plan_with(fixed: dict[str, Any], seen: dict[str, set]) -> ConfigError:
    """The error of a search whose ``fixed`` fields leave no plan: the first field whose
    value no plan has, with the values the plans have (``seen``), else the combination."""
    key_of = {f: k for k, f in SEARCHED_KEYS.items()}
    for f, v in fixed.items():
        if v not in seen[f]:
            have = ", ".join(str(x) for x in sorted(seen[f], key=str)) or "none"
            return ConfigError("--set", key_of[f], f"no plan of the search has {f} {v} "
                               f"(its plans have {f} {have})")
    both = " and ".join(f"{f} {v}" for f, v in fixed.items())
    return ConfigError("--set", None, f"no plan of the search has {both} together")


#: The plan fields :func:`simwall.plan.framed` sets.
_FRAMED_FIELDS = ("framework", *SEMANTIC_KEYS, "dp_bucket_bytes")


def expert_degrees(model, dp_cp: int) -> list[int]:
    """Expert-parallel degrees to try: the divisors of the DP x CP degree (out of whose
    ranks EP is carved) that divide the expert count (1 for a dense model)."""
    if not model.moe:
        return [1]
    return [e for e in range(1, dp_cp + 1) if dp_cp % e == 0 and model.experts % e == 0]


def plan_overrides(plan: Plan) -> dict[str, Any]:
    """The key-path overrides that make a workload use ``plan``."""
    return {"plan.tp": plan.tp, "plan.cp": plan.cp, "plan.pp": plan.pp, "plan.dp": plan.dp,
            "plan.virtual_stages": plan.virtual_stages,
            "plan.sequence_parallel": plan.sequence_parallel, "plan.zero": plan.zero,
            "plan.recompute": plan.recompute, "plan.schedule": plan.schedule,
            "training.micro_batch": plan.micro_batch, "plan.ep": plan.ep,
            # Set only where the plan uses them, so other plans' overrides read as before.
            **({"plan.dp_shard": plan.dp_shard} if plan.dp_shard else {}),
            **({"plan.ep_overlap": True} if plan.ep_overlap else {})}


def describe_plan(plan: Plan, show_cp: bool = False, show_ep: bool = False) -> str:
    """The plan column: degrees and knobs; ``cp`` and ``ep`` only when > 1 unless
    ``show_cp`` / ``show_ep``."""
    sched = plan.schedule + (f"(v={plan.virtual_stages})" if plan.virtual_stages > 1 else "")
    cp = f"cp={plan.cp} " if plan.cp > 1 or show_cp else ""
    return (f"tp={plan.tp} {cp}pp={plan.pp} dp={plan.dp} mb={plan.micro_batch} zero={plan.zero} "
            f"rc={plan.recompute} sp={'on' if plan.sequence_parallel else 'off'} {sched}"
            + (f" ep={plan.ep}" if plan.ep > 1 or show_ep else "")
            + (" ep_overlap" if plan.ep_overlap else "")
            + (f" dp_shard={plan.dp_shard}" if plan.dp_shard else ""))


def parse_axes(spec: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``--best-by`` axes: comma-separated names of :data:`BEST_BY_AXES`, each once."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for raw in names:
        name = raw.strip()
        if name not in BEST_BY_AXES:
            raise ConfigError("--best-by", None, f"unknown axis {name!r} (choose from "
                              f"{', '.join(BEST_BY_AXES)}, comma-separated)")
        if name in out:
            raise ConfigError("--best-by", None, f"axis {name!r} given twice")
        out.append(name)
    return tuple(out)


def _axis_values(plan: Plan, axes: tuple[str, ...]) -> tuple:
    return tuple(getattr(plan, BEST_BY_AXES[a]) for a in axes)


def describe_axes(axes: tuple[str, ...], values: tuple) -> str:
    """``cp=2 ep=4``: a ``--best-by`` combination."""
    return " ".join(f"{a}={('on' if v else 'off') if isinstance(v, bool) else v}"
                    for a, v in zip(axes, values, strict=True))


@memoized(maxsize=1024)
def _class_counts(stage_layers: tuple[int, ...], pp: int, v: int
                  ) -> tuple[tuple[int, int], ...]:
    """(first stage of a class, how many stages it has), by first stage: the classes of
    :func:`simwall.plan.stage_classes` (same role and chunk split)."""
    counts: dict[int, int] = {}
    for first in stage_classes(stage_layers, pp, v):
        counts[first] = counts.get(first, 0) + 1
    return tuple(sorted(counts.items()))


class Searcher:
    """Everything one search reuses: typed inputs, device, topology (built once), and
    memoised stage costs keyed by plan shape."""

    def __init__(self, workload: Workload, cluster: ClusterSpec,
                 framework: str | None = None, fixed: dict[str, Any] | None = None) -> None:
        """``framework``: consider only the plans that framework runs
        (:mod:`simwall.plan.frameworks`), costed with its semantics; None: every plan.
        ``fixed``: {plan field: value} every plan considered has (:func:`fixed_fields`)."""
        if framework is not None and framework not in framework_names():
            raise ConfigError("--framework", None, f"unknown framework '{framework}' "
                              f"(choose from {', '.join(framework_names())})")
        self.framework = framework
        self.fixed = dict(fixed or {})
        self.workload = workload if framework is None else _run_by(workload, framework)
        world = cluster_devices(cluster, workload)
        if cluster.nodes == "auto":
            cluster = cluster.model_copy(update={"nodes": world // cluster.devices_per_node})
        self.cluster = cluster
        self.world = world
        self.device = resolve_device(cluster.device, "device", cluster.file)
        check_precision(workload, self.device)
        self.topology = topology_for(cluster)
        self.capacity_bytes = self.device.memory_capacity_bytes
        self.memory = MemoryModel(workload.model, workload.training,
                                  *memory_reserve(cluster))
        self._stage_costs = table(self, "search.stage_costs")
        self._op_cache = table(self, "search.op_times")
        self._bounds = table(self, "search.bound_stages")
        self._kinds = table(self, "search.layer_kinds")
        self._stage_parts = table(self, "search.stage_parts")

    # -- memory -------------------------------------------------------------------------
    def peak(self, plan: Plan) -> tuple[float, int]:
        """(closed-form peak bytes, stage at the peak): the largest of
        :func:`simwall.model.memory.device_memory`'s stages, the lowest stage among equal
        peaks (:meth:`simwall.model.memory.MemoryModel.peak`)."""
        return self.memory.peak(plan)

    # -- time ---------------------------------------------------------------------------
    def stage_cost(self, plan: Plan, stage: int):
        """``costing.stage_cost`` memoised; gpipe and 1F1B share a shape (same tasks,
        different order), so the schedule is normalised out of the key."""

        shape = plan if plan.virtual_stages > 1 else replace(plan, schedule="1f1b")
        key = (shape, stage)
        sc = self._stage_costs.get(key)
        if sc is None:
            # Cost as the engine does by default (simwall.api.run_prepared).
            symmetric = costs_symmetrically(self.cluster, self.topology, plan)
            sc = stage_cost(self.workload.model, self.workload.training, shape, self.device,
                             self.topology, stage, symmetric=symmetric)
            self._stage_costs[key] = sc
        return sc

    def _representatives(self, plan: Plan) -> tuple[tuple[int, int], ...]:
        """(stage, how many stages it stands for). Stages with the same chunk split and
        the same role (first / last / middle) have the same durations on a symmetric
        cluster (stages are translations of each other), so one of each is costed."""
        return _class_counts(plan.stage_layers, plan.pp, plan.virtual_stages)

    def estimate(self, plan: Plan) -> tuple[float, float]:
        """(analytic step time, its pipeline-bubble part), seconds: the engine's own step
        assembly fed the closed-form pipeline formula (:func:`simwall.engine.step.
        estimate_step`; see the module doc) on one stage of each class."""
        # Imported here: the CLI builds its parser from this module, and ``simwall --help``
        # must not load the engine (SimPy, networkx).

        stages = [(self.stage_cost(plan, stage), count)
                  for stage, count in self._representatives(plan)]
        timing = estimate_step(plan, stages)
        return timing.step_s, timing.breakdown_s["bubble"]

    def compute_bound(self, plan: Plan) -> float:
        """A lower bound of :meth:`estimate`: the same pipeline formula on compute time
        alone (no TP / PP / DP communication, no optimizer). Compute per layer depends on
        tp, cp, ep, sequence parallelism, micro-batch and recompute only
        (simwall.model.ops), so it is memoised on those; a mixture-of-experts model's MoE
        layers (simwall.model.moe) are counted at their own times."""

        key = (plan.tp, plan.cp, plan.ep, plan.sequence_parallel, plan.micro_batch,
               plan.recompute)
        zero_bubble = plan.schedule == "zero_bubble"
        # The stage-times below depend on the per-layer times and the layer split only;
        # the pipeline formula adds the micro-batch count, chunks and schedule.
        split = (key, plan.stage_layers, plan.pp, zero_bubble)
        found = self._bounds.get(split)
        if found is None:
            found = self._bounds[split] = self._bound_stages(plan, key, zero_bubble)
        if zero_bubble:
            c_max, z_sum, z_max = found
            return plan.micro_batches * c_max + z_sum - z_max
        c_max, c_sum = found
        return plan.micro_batches * c_max + (c_sum - c_max) / plan.virtual_stages

    def _bound_stages(self, plan: Plan, key: tuple, zero_bubble: bool) -> tuple:
        """(max stage-time, sum of stage-times) of :meth:`compute_bound` on compute
        alone; with ``zero_bubble`` (max stage-time, sum and max of ZB-H1's bubble
        stage-times)."""
        t = self._op_cache.get(key)
        if t is None:
            norm = Plan(tp=plan.tp, pp=1, dp=1, virtual_stages=1,
                        sequence_parallel=plan.sequence_parallel, zero=0,
                        recompute=plan.recompute, schedule="1f1b",
                        micro_batch=plan.micro_batch, global_batch=plan.micro_batch,
                        stage_layers=(self.workload.model.layers,), cp=plan.cp,
                        ep=plan.ep)
            t = op_times(self.workload.model, self.workload.training, norm, self.device)
            self._op_cache[key] = t
        # Per stage (dense, MoE) layers: the layer split's and pp's alone (model fixed).
        kinds = self._kinds.get((plan.stage_layers, plan.pp))
        if kinds is None:
            kinds = self._kinds[(plan.stage_layers, plan.pp)] = [
                stage_layer_kinds(self.workload.model, plan, s) for s in range(plan.pp)]

        def layers(s: int, part: str) -> float:
            """Time of stage ``s``'s layers in ``part`` (fwd, bwd, rec, wgrad)."""
            dense, n_moe = kinds[s]
            return dense * t["layer_" + part] + (n_moe * t["moe_layer_" + part] if n_moe
                                                   else 0.0)

        # A stage's times are those of its role (layer kinds, first, last): computed once
        # per role, by the same operations in the same order.
        roles: dict[tuple, tuple[float, float]] = {}
        last = plan.pp - 1
        per_stage, z = [], []
        for s in range(plan.pp):
            role = (kinds[s], s == 0, s == last)
            found = roles.get(role)
            if found is None:
                c = layers(s, "fwd") + layers(s, "bwd") + layers(s, "rec")
                if s == 0:
                    c += t["emb_fwd"] + t["emb_bwd"]
                if s == last:
                    c += t["head_fwd"] + t["head_bwd"]
                zs = 0.0
                if zero_bubble:
                    # ZB-H1's bubble stage-times are F + B - min(W, F, B) (engine.step.
                    # estimate_step), non-decreasing in F and B: the same bound on
                    # compute alone.
                    f = layers(s, "fwd")
                    w = layers(s, "wgrad")
                    if s == 0:
                        f += t["emb_fwd"]
                    if s == last:
                        f += t["head_fwd"]
                        w += t["head_wgrad"]
                    b = c - f - w
                    zs = f + b - min(w, f, b)
                found = roles[role] = (c, zs)
            per_stage.append(found[0])
            z.append(found[1])
        c_max = max(per_stage)
        if zero_bubble:
            return c_max, sum(z), max(z)
        return c_max, sum(per_stage)

    def step_bound(self, plan: Plan) -> float:
        """A lower bound of :meth:`estimate` tighter than :meth:`compute_bound`: the same
        pipeline formula on each stage's compute plus its layers' exposed TP collectives
        (:func:`simwall.costing.tp.tp_cost` after :func:`~simwall.costing.tp.with_overlap`,
        as :func:`simwall.costing.stage_cost` charges them), plus the step's fixed
        remainder (:data:`simwall.engine.OTHER_S`). It leaves out what is not negative
        anyway (the embedding's and LM head's TP, CP's exchange, ZeRO's exposed traffic,
        pipeline sends, the DP tail, the optimizer). Each term enters the formula
        non-decreasing (1F1B / interleaved: ``m * max T + (sum T - max T) / v`` with
        ``m >= 1``; ZB-H1: ``F + B - min(W, F, B)`` grows with ``F`` and ``B``, and ``sum z
        - max z`` with each ``z``), so the bound is at most the estimate. A
        mixture-of-experts model or a cluster costed stage by stage (faults, stragglers)
        gets :meth:`compute_bound` (an MoE layer's exchange replaces part of its TP)."""
        symmetric = costs_symmetrically(self.cluster, self.topology, plan)
        if self.workload.model.moe or plan.tp == 1 or not symmetric:
            return self.compute_bound(plan)
        wl = self.workload
        times = op_times(wl.model, wl.training, plan, self.device)
        tp = with_overlap(tp_cost(wl.model, wl.training, plan, self.topology, 0, True), plan,
                          times["layer_fwd_gemm"], times["layer_bwd_gemm"])
        key = (plan.tp, plan.cp, plan.ep, plan.sequence_parallel, plan.micro_batch,
               plan.recompute, plan.stage_layers, plan.pp)
        parts = self._stage_parts.get(key)
        if parts is None:
            parts = self._stage_parts[key] = self._compute_parts(plan, times)
        zero_bubble = plan.schedule == "zero_bubble"
        t_max = t_sum = z_max = z_sum = 0.0
        for layers, f, b, w in parts:
            f += layers * tp.layer_fwd_s
            b += layers * tp.layer_bwd_s
            t = f + b
            t_max = max(t_max, t)
            t_sum += t
            if zero_bubble:
                z = f + (b - w) - min(w, f, b - w)
                z_max = max(z_max, z)
                z_sum += z
        bubble = (z_sum - z_max) if zero_bubble else (t_sum - t_max) / plan.virtual_stages
        return plan.micro_batches * t_max + bubble + OTHER_S

    def _compute_parts(self, plan: Plan, t: dict[str, float]
                       ) -> tuple[tuple[int, float, float, float], ...]:
        """Per stage of a dense model: (layers, forward, backward with recompute, its
        weight-gradient part) compute seconds of one micro-batch, as
        :func:`simwall.costing.stage_cost` sums them (embedding on stage 0, LM head on the
        last)."""
        out = []
        for s in range(plan.pp):
            layers = plan.layers_on_stage(s)
            f = layers * t["layer_fwd"]
            b = layers * (t["layer_bwd"] + t["layer_rec"])
            w = layers * t["layer_wgrad"]
            if s == 0:
                f += t["emb_fwd"]
                b += t["emb_bwd"]
            if s == plan.pp - 1:
                f += t["head_fwd"]
                b += t["head_bwd"]
                w += t["head_wgrad"]
            out.append((layers, f, b, w))
        return tuple(out)

    def candidates(self, max_tp: int | None = None, need: int | None = None,
                   below_s: float | None = None, least_memory: int | None = None,
                   progress: Progress | None = None) -> tuple[int, int, list[Candidate]]:
        """(plans enumerated, plans that fit, the best fitting ones estimated, best first).

        Branch and bound: fitting plans are visited in order of :meth:`compute_bound`;
        once the bound reaches the ``need``-th best estimate so far (or ``below_s``), no
        later plan can enter the list, so the rest are not costed. ``need=None`` and
        ``below_s=None`` estimate every fitting plan. ``least_memory=K`` estimates only the
        plans whose peak is at most the K-th smallest (for the memory objective).
        ``progress``: hook the enumeration goes through (:mod:`.progress`)."""
        n, fitting = self.fitting(max_tp, progress)
        return n, len(fitting), self.estimated(fitting, need, below_s, least_memory)

    def fitting(self, max_tp: int | None = None, progress: Progress | None = None,
                seen: Callable[[Plan], None] | None = None
                ) -> tuple[int, list[tuple[float, str, Plan, float, int]]]:
        """(plans enumerated, the fitting ones as (compute bound, description, plan, peak
        bytes, peak stage) in order of bound then description). ``seen``: called with
        every plan enumerated (of the framework), fitting or not."""
        n = 0
        fitting: list[tuple[float, str, Plan, float, int]] = []
        plans = enumerate_plans(self.workload, self.cluster, max_tp)
        if self.framework in HYBRID_FRAMEWORKS:
            plans = _with_hybrid(plans, self.cluster.devices_per_node)
        values: dict[str, set] = {f: set() for f in self.fixed}
        for plan in tracked(progress, plans, desc="plans"):
            if self.framework is not None and self.framework not in frameworks_for(plan):
                continue
            if self.fixed:
                for f in self.fixed:
                    values[f].add(getattr(plan, f))
                if any(getattr(plan, f) != v for f, v in self.fixed.items()):
                    continue
            n += 1
            if seen is not None:
                seen(plan)
            peak, stage = self.peak(plan)
            if peak > self.capacity_bytes:
                continue
            fitting.append((self.compute_bound(plan), describe_plan(plan), plan, peak, stage))
        if self.fixed and n == 0:
            raise _no_plan_with(self.fixed, values)
        fitting.sort(key=lambda x: (x[0], x[1]))
        return n, fitting

    def estimated(self, fitting: list[tuple[float, str, Plan, float, int]],
                  need: int | None = None, below_s: float | None = None,
                  least_memory: int | None = None) -> list[Candidate]:
        """The best of ``fitting`` (:meth:`fitting`'s order) estimated, best first, with
        :meth:`candidates`' branch and bound."""
        if least_memory is not None and fitting:
            peaks = sorted(x[3] for x in fitting)
            cutoff = peaks[min(least_memory, len(peaks)) - 1]
            fitting = [x for x in fitting if x[3] <= cutoff]
        out = self._estimated(fitting, need, below_s, prune=True)
        if below_s is not None and not any(c.estimate_s <= below_s for c in out):
            # Every plan estimated lies above ``below_s``: the caller reads the best of
            # them, which a plan skipped by its step bound could be. Estimate them all.
            out = self._estimated(fitting, need, below_s, prune=False)
        return out

    def _estimated(self, fitting: list[tuple[float, str, Plan, float, int]],
                   need: int | None, below_s: float | None, prune: bool
                   ) -> list[Candidate]:
        """:meth:`estimated`'s branch and bound; with ``prune``, a plan whose
        :meth:`step_bound` lies above the limit (``below_s``, or the ``need``-th best
        estimate so far) is skipped without being estimated: its estimate is above the
        limit too, so it could neither rank below ``below_s`` nor enter the best
        ``need``. Candidates are ordered by (estimate, description), descriptions are
        unique, so the candidates at or below the limit are those of a run without
        pruning, in the same order."""
        out: list[Candidate] = []
        for bound, _, plan, peak, stage in fitting:
            limit = below_s
            if need is not None and len(out) >= need:
                if bound >= out[need - 1].estimate_s:
                    break
                limit = out[need - 1].estimate_s if limit is None else \
                    min(limit, out[need - 1].estimate_s)
            if below_s is not None and bound >= below_s:
                break
            # The margin keeps rounding (the bound sums in another order) on the safe
            # side: only a plan clearly above the limit is skipped.
            if prune and limit is not None and \
                    self.step_bound(plan) * (1.0 - BOUND_MARGIN) > limit:
                continue
            est, bubble = self.estimate(plan)
            # Kept sorted as inserted (after equal keys: the order a stable sort gives).
            bisect.insort(out, Candidate(plan=plan, peak_bytes=peak, peak_stage=stage,
                                         estimate_s=est, bubble_s=bubble),
                          key=_candidate_order)
        return out

    # -- engine -------------------------------------------------------------------------
    def prepared(self, plan: Plan):
        """A :class:`~simwall.api.Prepared` for ``plan``: the workload re-validated with the
        plan's overrides and resolved (so an enumerated plan that the engine's own checks
        reject raises), sharing this search's device and topology."""

        over = plan_overrides(plan)
        if self.workload.plan.stage_layers is not None:
            over["plan.stage_layers"] = list(plan.stage_layers)
        wl_over, _ = split_key_overrides(over)
        wl = reoverride(self.workload, wl_over, Workload)
        resolved, cl = resolve_checked(wl, self.cluster)
        return Prepared(workload=wl, cluster=cl, plan=resolved, device=self.device,
                        topology=self.topology)

    def simulate(self, plan: Plan):
        return run_prepared(self.prepared(plan))

    def why(self, cand: Candidate, result) -> str:
        mem = result.memory
        head_gb = (mem["capacity_bytes"] - mem["peak_bytes"]) / GB
        parts = [f"fits with {head_gb:.0f} GB headroom"]
        bubble = result.breakdown_s.get("bubble", 0.0) / result.step_time_s
        if cand.plan.pp > 1:
            parts.append(f"bubble {bubble * 100:.0f}%")
        if cand.plan.tp > 1:
            parts.append("TP inside a node" if cand.plan.tp <= self.cluster.devices_per_node
                         else "TP across nodes")
        if cand.plan.cp > 1:
            parts.append("TP x CP inside a node"
                         if cand.plan.tp * cand.plan.cp <= self.cluster.devices_per_node
                         else "CP across nodes")
        dp_share = result.breakdown_s.get("dp_comm", 0.0) / result.step_time_s
        if cand.plan.dp > 1:
            parts.append(f"DP comm exposed {dp_share * 100:.0f}%")
        if cand.plan.recompute != "none":
            parts.append(f"{cand.plan.recompute} recompute")
        parts.append(f"runs on: {framework_label(cand.plan)}")
        return "; ".join(parts)


def _candidate_order(c: Candidate) -> tuple[float, str]:
    """Candidates' order: estimated step time, then the plan's description."""
    return (c.estimate_s, describe_plan(c.plan))


def search(workload: str | Workload, cluster: str | ClusterSpec | None = None,
           top: int = 5, objective: str = "step_time",
           overrides: dict[str, Any] | None = None, max_tp: int | None = None,
           confirm: int | None = None, progress: Progress | None = None,
           framework: str | None = None,
           best_by: str | tuple[str, ...] | None = None) -> SearchResult:
    """The ``top`` best plans for ``workload`` on ``cluster``.

    ``objective``: ``step_time`` (rank by the analytic estimate, confirm the best
    ``confirm`` = 3 x ``top`` with the engine, order by engine step time) or ``memory``
    (rank by closed-form peak memory, then estimated time; the best ``top`` simulated).
    ``progress``: hook the long loops go through (:mod:`.progress`; None: silent).
    ``framework``: only the plans that framework runs (:mod:`simwall.plan.frameworks`).
    ``best_by``: axes (:data:`BEST_BY_AXES`, e.g. ``"cp,ep"``): instead of the top K, the
    best plan of each combination of their values, each found as a search restricted to
    that combination with ``top`` = 1 (so ``confirm`` = 3 plans simulated per
    combination), listed in order of the values.
    """
    if objective not in ("step_time", "memory"):
        raise ConfigError("--objective", None, f"expected step_time or memory, got "
                          f"{objective!r}")
    for name, value, optional in (("--top", top, False), ("--confirm", confirm, True),
                                  ("--max-tp", max_tp, True)):
        if not (optional and value is None) and not _positive_int(value):
            raise ConfigError(name, None, f"expected an integer >= 1"
                              f"{' or None' if optional else ''}, got {value!r}")
    axes = parse_axes(best_by) if best_by else ()
    wl, cl = load_inputs(workload, cluster, overrides)
    s = Searcher(wl, cl, framework, fixed_fields(wl, overrides or {}))
    show = {"show_cp": len(cp_degrees(wl, s.cluster, s.world)) > 1,
            "show_ep": wl.model.moe, "framework": framework,
            "fixed": tuple(f"{f}={v}" for f, v in s.fixed.items())}
    enumerated: set[tuple] = set()
    n, fitting = s.fitting(max_tp, progress=progress, seen=(
        (lambda p: enumerated.add(_axis_values(p, axes))) if axes else None))
    if not axes:
        pool, ranked = _rank(s, fitting, top, objective, confirm, progress)
        return SearchResult(workload=wl.name, cluster=s.cluster.name, world=s.world,
                            considered=n, fitting=len(fitting), confirmed=len(pool),
                            ranked=tuple(ranked[:top]), **show)
    groups: dict[tuple, list] = {}
    for x in fitting:
        groups.setdefault(_axis_values(x[2], axes), []).append(x)
    best, confirmed = [], 0
    for key in sorted(groups):
        pool, ranked = _rank(s, groups[key], 1, objective, confirm, None)
        confirmed += len(pool)
        best.extend(ranked[:1])
    unfit = tuple(describe_axes(axes, k) for k in sorted(enumerated - {
        _axis_values(r.candidate.plan, axes) for r in best}))
    return SearchResult(workload=wl.name, cluster=s.cluster.name, world=s.world,
                        considered=n, fitting=len(fitting), confirmed=confirmed,
                        ranked=tuple(best), best_by=axes, unfit=unfit, **show)


def _positive_int(value: Any) -> bool:
    """Whether ``value`` is an int >= 1 (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _rank(s: Searcher, fitting: list, top: int, objective: str, confirm: int | None,
          progress: Progress | None) -> tuple[list[Candidate], list[Ranked]]:
    """(the candidates simulated, those that fit ranked best first): :func:`search`'s
    estimate-then-confirm on ``fitting`` (:meth:`Searcher.fitting`'s list)."""
    if objective == "memory":
        cands = s.estimated(fitting, least_memory=top)
        cands.sort(key=lambda c: (c.peak_bytes, c.estimate_s, describe_plan(c.plan)))
        pool = cands[:top]
    else:
        want = confirm or CONFIRM_FACTOR * top
        pool = s.estimated(fitting, need=want)[:want]
    ranked = []
    for cand in tracked(progress, pool, total=len(pool), desc="confirming"):
        try:
            result = s.simulate(cand.plan)
        except SimwallError:  # enumerated but rejected by resolve: a search bug; skip it
            continue
        if not result.memory["fits"]:
            continue
        ranked.append(Ranked(candidate=cand, result=result, why=s.why(cand, result)))
    if objective == "memory":
        ranked.sort(key=lambda r: (r.result.memory["peak_bytes"], r.step_time_s,
                                   describe_plan(r.candidate.plan)))
    else:
        ranked.sort(key=lambda r: (r.step_time_s, describe_plan(r.candidate.plan)))
    return pool, ranked


def render_search(res: SearchResult) -> str:
    plans = [describe_plan(r.candidate.plan, res.show_cp, res.show_ep) for r in res.ranked]
    which = (f" that {res.framework} runs" if res.framework else "") + (
        f" with {' '.join(res.fixed)} (--set)" if res.fixed else "")
    head = (f"simwall plan: {res.workload} on {res.cluster} ({res.world} devices): "
            f"{res.considered} valid plans{which}, {res.fitting} fit, {res.confirmed} "
            f"simulated")
    if res.best_by:
        head += f"; the best plan per {', '.join(res.best_by)}"
    lines = [head, f"{'#':>2}  {'plan':<62} {'step s':>8} {'MFU':>6} {'peak GB':>8}  why"]
    for i, (r, plan) in enumerate(zip(res.ranked, plans, strict=True), 1):
        lines.append(f"{i:>2}  {plan:<62} "
                     f"{r.step_time_s:>8.3f} {r.result.mfu * 100:>5.1f}% "
                     f"{r.result.memory['peak_bytes'] / GB:>8.1f}  {r.why}")
    if res.unfit:
        lines.append(f"no plan fits with {'; '.join(res.unfit)}")
    if not res.ranked:
        lines.append("no plan fits in device memory (try more devices, a smaller "
                     "micro-batch or offload)")
    else:
        lines.append(f"confidence: {res.ranked[0].result.confidence.get('summary', '')}")
    return "\n".join(lines)


def search_records(res: SearchResult) -> list[dict[str, Any]]:
    """One flat record per ranked plan, best first: the columns of a sweep record
    (``sweep.index`` = position in this list, ``sweep.key`` None: not a sweep point;
    :func:`simwall.report.flat_record`) plus ``search.rank``, ``search.estimate_s`` (the
    analytic estimate), ``search.why`` and ``search.framework``; with ``best_by`` also
    ``search.best_by``, the row's combination (``cp=2 ep=4``; ``search.rank`` is then the
    row's position) (``simwall plan --format json|csv``)."""
    out = []
    for i, r in enumerate(res.ranked):
        rec: dict[str, Any] = {"sweep.index": i, "sweep.key": None, "error": None}
        rec.update(r.result.to_record())
        rec.update({"search.rank": i + 1, "search.estimate_s": r.candidate.estimate_s,
                    "search.why": r.why, "search.framework": r.framework})
        if res.best_by:
            rec["search.best_by"] = describe_axes(
                res.best_by, _axis_values(r.candidate.plan, res.best_by))
        out.append(rec)
    return out
