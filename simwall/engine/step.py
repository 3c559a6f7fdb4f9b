"""One training step: inputs resolved (:func:`prepare`), simulated (:func:`simulate_step`)
and assembled into a :class:`~simwall.report.result.StepResult` (:func:`run_prepared`).

The step time and its breakdown are assembled in one place, :func:`step_timing`, from
the pipeline phase of a *critical* stream (its compute, TP, PP wait and bubble time and
when it ends) and the step's :class:`~simwall.engine.sync.Tail` (DP exposure, tied
embedding reduction, optimizer, ZeRO all-gather; :func:`~simwall.engine.sync.step_tail`).
The engine feeds it what its SimPy processes measured; the plan search's analytic
estimate (:func:`estimate_step`) feeds it the closed-form pipeline formula.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import simpy

from ..config import DeviceSpec
from ..costing import StageCost, busiest_link, costs_symmetrically, stage_cost, step_link_bytes
from ..costing.energy import step_energy
from ..hardware.catalog import resolve_device
from ..model import memory
from ..model import ops as workload_mod
from ..plan import Plan, plan_record
from ..plan.limits import check_engine_tasks
from ..report import StepResult
from .confidence import confidence, links_used
from .finite import check_finite
from .network import ClassDiverged, EngineNetwork
from .pipeline import InputTie, Pipeline, StageStats, StaticPipeline, scaled
from .prepare import Prepared
from .sync import (
    OTHER_S,
    Tail,
    analytic_dp_exposure_s,
    dp_reduction,
    dp_reduction_flows,
    step_tail,
    sync_tail,
)
from .trace import Recorder

__all__ = [
    "OTHER_S",
    "SimulatedStep",
    "StepTiming",
    "check_finite",
    "estimate_step",
    "run_prepared",
    "simulate_step",
    "step_inputs",
    "step_timing",
]

def _speeds(prep: Prepared) -> dict[int, float]:
    return {s.device: s.slowdown for s in prep.cluster.faults.stragglers}


def _node_devices(prep: Prepared) -> dict[int, DeviceSpec]:
    """The device of each node of a mixed cluster that is not the cluster's own
    (``cluster.mixed``), by node index."""
    out: dict[int, DeviceSpec] = {}
    for i, m in enumerate(prep.cluster.mixed):
        spec = resolve_device(m.device, f"mixed[{i}].device", prep.cluster.file)
        out.update({node: spec for node in m.nodes})
    return out


def _compute_s(cost: StageCost) -> float:
    """Compute seconds of one micro-batch through all of a stage's chunks."""
    return sum(c.fwd_compute_s + c.bwd_compute_s for c in cost.chunks)


@dataclass(frozen=True)
class StepTiming:
    """A step's time and its breakdown (seconds), as :func:`step_timing` assembles them."""

    step_s: float
    breakdown_s: dict[str, float]
    tail: Tail


def step_timing(critical: StageStats, tail: Tail) -> StepTiming:
    """THE assembly of a step's time and breakdown: the pipeline phase of the critical
    stream (the one whose compute ends last) followed by the tail. Whatever the critical
    stream did not spend computing or waiting before its compute end, it spent waiting
    for data-parallel communication (the DP tail past its own compute end, ZeRO-3
    gathers, the ZeRO 1/2 parameter all-gather)."""
    breakdown = {
        "compute": critical.compute_s,
        "tp_comm": critical.tp_s,
        "pp_comm": critical.pp_wait_s,
        "bubble": critical.bubble_s,
        "dp_comm": critical.zero3_s + (tail.sync_s - critical.compute_end_s)
        + tail.post_optimizer_s,
        "optimizer": tail.optimizer_s,
        "other": OTHER_S,
    }
    return StepTiming(step_s=tail.step_s, breakdown_s=breakdown, tail=tail)


def estimate_step(plan: Plan, stages: Sequence[tuple[StageCost, int]]) -> StepTiming:
    """The analytic step time of ``plan`` from representative stage costs: ``stages``
    holds (cost of a stage, how many stages it stands for), the first and the last stage
    among them. With ``T_s`` the forward + backward time of one micro-batch on stage ``s``
    (all its chunks), ``m`` micro-batches and ``v`` chunks per stage (Narayanan et al.
    2021, SC21, Sec. 2.2: the 1F1B bubble is ``(p - 1)`` stage-times, divided by ``v``
    when interleaved)::

        pipe = m * max_s T_s + (sum_s T_s - max_s T_s) / v + (p - 1) * (t_pp_fwd + t_pp_bwd)

    Under ZB-H1 (``plan.schedule: zero_bubble``) each stage-time of the bubble is
    ``F_s + B_s - min(W_s, F_s, B_s)`` instead, ``W_s`` the weight-gradient part of the
    backward and ``B_s`` the rest (``F_s + B_s + W_s = T_s``): Qi et al. 2024 (ICLR,
    Sec. 2.1) give the bubble ``(p - 1)(T_F + T_B - T_W)`` against 1F1B's
    ``(p - 1)(T_F + T_B + T_W)``, which holds while ``T_W <= min(T_F, T_B)`` (a W then
    fits the gap it fills); past that the engine's bubble is ``(p - 1)(T_F + T_B -
    min(T_F, T_B))`` (tests/test_zero_bubble.py). The DP reduction overlaps the last W
    only (the chunk's gradients are complete after it).

    Every stage ends its compute at ``pipe``; its DP reduction is exposed beyond its last
    backward (:func:`~simwall.engine.sync.analytic_dp_exposure_s`); the rest of the step
    is the engine's own :func:`~simwall.engine.sync.step_tail`."""
    m, v, p = plan.micro_batches, plan.virtual_stages, plan.pp
    split = plan.schedule == "zero_bubble"
    t_max = t_sum = 0.0
    z_max = z_sum = 0.0
    pp_comm = 0.0
    crit = stages[0][0]
    backward: dict[int, float] = {}
    for sc, count in stages:
        f = sum(c.fwd_s for c in sc.chunks)
        b = sum(c.bwd_s for c in sc.chunks)
        backward[sc.stage] = b
        t = f + b
        if split:
            w = sum(c.bwd_weight_s for c in sc.chunks)
            backward[sc.stage] = w
            z = f + (b - w) - min(w, f, b - w)
            z_max = max(z_max, z)
            z_sum += z * count
        if t > t_max:
            crit = sc
        t_max = max(t_max, t)
        t_sum += t * count
        pp_comm = max(pp_comm, sc.pp_fwd_s + sc.pp_bwd_s)
    bubble = (z_sum - z_max) if split else (t_sum - t_max) / v
    pipe = m * t_max + bubble + (p - 1) * pp_comm
    by_stage = {sc.stage: sc for sc, _ in stages}
    dp_end = {s: pipe + analytic_dp_exposure_s(sc, plan.dp_overlap, backward[s])
              for s, sc in by_stage.items()}
    finish = {s: (sc.optimizer_s, sc.post_optimizer_s) for s, sc in by_stage.items()}
    tail = step_tail(dp_end, p - 1, by_stage[0].tied_embedding_s, finish)
    critical = StageStats(
        stage=crit.stage, replica=0,
        compute_s=m * sum(c.fwd_compute_s + c.bwd_compute_s for c in crit.chunks),
        tp_s=m * sum(c.fwd_tp_s + c.bwd_tp_s for c in crit.chunks),
        zero3_s=m * sum(c.zero3_fwd_exposed_s + c.zero3_bwd_exposed_s for c in crit.chunks),
        pp_wait_s=(p - 1) * pp_comm, bubble_s=bubble, compute_end_s=pipe)
    return step_timing(critical, tail)


@dataclass
class SimulatedStep:
    """What :func:`simulate_step` measured: per-stream stats, the tail, trace, events."""

    stats: dict[tuple[int, int], StageStats]
    tail: Tail
    trace_events: list[dict]
    events: int
    network: dict | None = None       # shared-network figures (per-device runs)


def simulate_step(plan: Plan, costs: dict[tuple[int, int], StageCost], replicas: int,
                  trace: bool = False, topology=None) -> SimulatedStep:
    """Run one step in SimPy: the pipeline streams (:class:`~simwall.engine.pipeline.
    Pipeline`), each stage's DP reduction and the synchronisation tail
    (:mod:`simwall.engine.sync`), all in one environment. ``costs[(stage, replica)]``
    gives each stream's durations for ``replicas`` simulated DP replicas. With a
    ``topology`` (per-device runs), pipeline sends and DP buckets run as flows on one
    network of its links (:mod:`simwall.engine.network`) instead of timed waits, and
    replicas that are copies of each other are simulated as classes
    (:data:`REPLICA_CLASSES`; not with a trace), with the same result."""
    if topology is None and not trace:
        try:
            return _simulate(plan, costs, replicas, False, None, static=True)
        except InputTie:
            pass       # SimPy's order of simultaneous events decides: run it event by event
    caches = None
    if topology is not None and not trace and REPLICA_CLASSES and replicas > 1:
        caches = {}        # what the runs of this step work out once (EngineNetwork)
        classes = _cost_classes(costs, plan.pp, replicas)
        probe = PROBE_PASSES * plan.pp
        if plan.micro_batches > 2 * probe:
            # Where classes split, they mostly do at the end of the step (DP buckets
            # meeting the last sends): find them on a step of fewer micro-batches first.
            short = replace(plan, global_batch=probe * plan.dp * plan.micro_batch)
            classes, run = _classed(short, costs, replicas, topology, classes, caches)
            if run is None:
                classes = []       # no classes to be had: one by one
        if classes:
            run = _classed(plan, costs, replicas, topology, classes, caches)[1]
            if run is not None:
                return run
    return _simulate(plan, costs, replicas, trace, topology, static=False, caches=caches)


def _classed(plan: Plan, costs: dict[tuple[int, int], StageCost], replicas: int,
             topology, classes: list[tuple[int, ...]], caches: dict
             ) -> tuple[list[tuple[int, ...]], SimulatedStep | None]:
    """Up to :data:`CLASS_ATTEMPTS` classed runs (:func:`_simulate_class`) from
    ``classes``, each that diverges splitting a class: the classes reached and the run,
    or None where none went through (every replica a class of its own, nothing telling
    how to split, or splits past the bound)."""
    for _ in range(CLASS_ATTEMPTS):
        if len(classes) == replicas:
            break                  # every replica a class of its own: nothing to share
        try:
            return classes, _simulate_class(plan, costs, classes, topology, caches)
        except ClassDiverged as diverged:
            if diverged.split is None:
                break              # nothing tells how to split: one by one
            classes = _refined(classes, diverged.split)
    return classes, None


#: A step of more than twice this many micro-batches per pipeline stage first finds its
#: replica classes on a step of this many per stage (its result is not kept): a bound on
#: the work of finding them, not tuned.
PROBE_PASSES = 1


#: Classed runs tried before a step is simulated replica by replica: each that diverges
#: (:class:`~simwall.engine.network.ClassDiverged`) splits a class where its members'
#: sends finished apart, and the step is run again. A bound on the work, not tuned
#: (replicas on a fat-tree's DP ring come in two or three classes).
CLASS_ATTEMPTS = 4


def _cost_classes(costs: dict[tuple[int, int], StageCost], stages: int, replicas: int
                  ) -> list[tuple[int, ...]]:
    """The DP replicas grouped by their stage costs (the same object at every stage),
    each class in replica order, classes by their first replica."""
    by: dict[tuple[int, ...], list[int]] = {}
    for r in range(replicas):
        by.setdefault(tuple(id(costs[(s, r)]) for s in range(stages)), []).append(r)
    return sorted((tuple(c) for c in by.values()), key=lambda c: c[0])


def _refined(classes: list[tuple[int, ...]], split: list[list[int]]
             ) -> list[tuple[int, ...]]:
    """``classes`` with the class holding ``split``'s replicas cut into its groups."""
    cut = {r for group in split for r in group}
    out = [c for c in classes if not cut.intersection(c)]
    out += [tuple(sorted(group)) for group in split]
    return sorted(out, key=lambda c: c[0])


def _simulate_class(plan: Plan, costs: dict[tuple[int, int], StageCost],
                    classes: Sequence[tuple[int, ...]], topology,
                    caches: dict | None = None) -> SimulatedStep:
    """:func:`_simulate` with each of ``classes`` (DP replicas alike) simulated once:
    the streams and DP segments of its first replica, every member's flows on the
    network (:class:`~simwall.engine.network.EngineNetwork` ``classed``), then the
    streams' stats copied to every member (replica by replica, stage by stage, as the
    one-by-one run makes them), engine events counted once per member. Raises
    :class:`~simwall.engine.network.ClassDiverged` where that would not be the
    one-by-one run (the network checks as it goes)."""
    own = {(s, i): costs[(s, c[0])] for i, c in enumerate(classes) for s in range(plan.pp)}
    run = _simulate(plan, own, len(classes), False, topology, static=False, caches=caches,
                    classes=tuple(classes))
    of = {r: i for i, c in enumerate(classes) for r in c}
    stats = {}
    for r in sorted(of):
        for s in range(plan.pp):
            st = run.stats[(s, of[r])]
            stats[(s, r)] = replace(st, replica=r, grad_segments=list(st.grad_segments))
    return replace(run, stats=stats)


#: Simulate the DP replicas of a per-device step by classes of replicas that are copies
#: of each other (every stage's cost the same object: stragglers and other device kinds
#: make classes of their own): one set of pipeline streams per class, each send putting
#: every member's flows on the network (:class:`~simwall.engine.network.EngineNetwork`
#: ``classed``), stats copied to every member. Where members would not behave alike on
#: the network the classed run stops (:class:`~simwall.engine.network.ClassDiverged`) and
#: is run again with that class split, or replica by replica; either way the same
#: result, bit for bit (tests/test_replica_classes.py runs the engine both ways).
REPLICA_CLASSES = True


#: Allocations between young-generation garbage collections while a step runs (CPython's
#: default is 700, ``gc.get_threshold()``). A per-device step creates millions of
#: short-lived flow and event objects; at the default, collections that find nothing to
#: free took about a fifth of a 1,536-GPU per-device run (3.75 -> 3.08 s CPU measured with
#: benchmarks/bench_per_device.py's case). Collection never changes a simulated number.
GC_YOUNG_THRESHOLD = 100_000


@contextmanager
def _fewer_collections():
    """Run the block with the young generation collected every :data:`GC_YOUNG_THRESHOLD`
    allocations (or the caller's setting, if larger), then restore the caller's thresholds."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], GC_YOUNG_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _simulate(plan: Plan, costs: dict[tuple[int, int], StageCost], replicas: int,
              trace: bool, topology, static: bool, caches: dict | None = None,
              classes: tuple[tuple[int, ...], ...] | None = None) -> SimulatedStep:
    """:func:`simulate_step` with the streams of :class:`~simwall.engine.pipeline.
    StaticPipeline` (``static``: fixed durations, no trace) or of
    :class:`~simwall.engine.pipeline.Pipeline` (its network sharing ``caches`` with the
    step's classed runs, :class:`~simwall.engine.network.EngineNetwork`); with
    ``classes``, stream ``r`` stands for the replicas of ``classes[r]``
    (:func:`_simulate_class`)."""
    env = simpy.Environment()
    rec = Recorder(trace, replicas)
    grads = {s: simpy.Store(env) for s in range(plan.pp)}
    network = EngineNetwork(env, topology, plan, classed=classes is not None,
                            caches=caches) if topology is not None else None
    if static:
        pipe = StaticPipeline(env, plan, costs, replicas, grads)
    else:
        pipe = Pipeline(env, plan, costs, replicas, rec, grads, network, classes=classes)
    dp = {}
    for s in range(plan.pp):
        streams = [pipe.processes[(s, r)] for r in range(replicas)]

        def compute_end(s=s):
            return max(pipe.stats[(s, r)].compute_end_s for r in range(replicas))

        if network is not None:
            dp[s] = env.process(dp_reduction_flows(env, costs[(s, 0)], replicas,
                                                   plan.dp_overlap, grads[s], streams,
                                                   compute_end, rec, network))
        else:
            dp[s] = env.process(dp_reduction(env, costs[(s, 0)], replicas, plan.dp_overlap,
                                             grads[s], streams, compute_end, rec))
    optimizer = {k: sc.optimizer_s for k, sc in costs.items()}
    post = {s: costs[(s, 0)].post_optimizer_s for s in range(plan.pp)}
    tied_s = costs[(0, 0)].tied_embedding_s if plan.pp > 1 else 0.0
    end = env.process(sync_tail(env, dp, tied_s, optimizer, post, replicas, rec))
    with _fewer_collections():
        env.run()
    stalled = pipe.stalled()
    if stalled or not end.processed:  # pragma: no cover - a schedule bug, not user input
        raise RuntimeError(f"pipeline deadlock: streams {stalled} never got their input")
    return SimulatedStep(stats=pipe.stats, tail=end.value, trace_events=rec.events,
                         events=pipe.events,
                         network=None if network is None else network.summary())


def run_prepared(prep: Prepared, per_device: bool = False, trace: bool = False) -> StepResult:
    """Simulate one step of a prepared run."""
    wl, plan = prep.workload, prep.plan
    model, training = wl.model, wl.training
    speeds = _speeds(prep)
    kinds = _node_devices(prep)
    per_device = per_device or bool(speeds) or bool(kinds)
    replicas = plan.dp if per_device else 1
    check_engine_tasks(wl, plan, per_device)

    symmetric = not per_device and costs_symmetrically(prep.cluster, prep.topology, plan)
    base: dict[int, StageCost] = {}
    for stage in range(plan.pp):
        base[stage] = stage_cost(model, training, plan, prep.device, prep.topology, stage,
                                  symmetric=symmetric)
    costs: dict[tuple[int, int], StageCost] = {}
    # A mixed cluster's streams paced by another device kind: (that kind, its nodes).
    pace: dict[tuple[int, int], tuple[DeviceSpec, list[int]]] = {}
    per_node = prep.cluster.devices_per_node
    for stage in range(plan.pp):
        for r in range(replicas):
            # A replica's stream runs its CP ranks in lockstep (the K/V ring) and its TP
            # ranks collective by collective: the slowest of its cp x tp devices sets its
            # pace, by straggler slowdown and, in a mixed cluster, by device kind.
            devs = [plan.device_of(stage, r * plan.cp + c, t) for c in range(plan.cp)
                    for t in range(plan.tp)]
            speed = min([speeds.get(d, 1.0) for d in devs])
            own = base[stage]
            nodes = sorted({d // per_node for d in devs if d // per_node in kinds})
            for spec in {kinds[n].name: kinds[n] for n in nodes}.values():
                cost = stage_cost(model, training, plan, spec, prep.topology, stage,
                                  symmetric=False)
                if _compute_s(cost) > _compute_s(own):
                    own = cost
                    pace[(stage, r)] = (spec, [n for n in nodes
                                               if kinds[n].name == spec.name])
            costs[(stage, r)] = scaled(own, speed)

    run = simulate_step(plan, costs, replicas, trace,
                        topology=prep.topology if per_device else None)
    # Breakdown on the critical stream: the one whose compute stream ends last.
    crit = max(run.stats, key=lambda k: (run.stats[k].compute_end_s, -k[0], -k[1]))
    timing = step_timing(run.stats[crit], run.tail)
    step = timing.step_s

    # Memory: closed-form states and buffers; activations from the engine's timeline.
    reserve = memory.memory_reserve(prep.cluster)
    closed = memory.device_memory(model, training, plan, *reserve)
    devices = []
    for sm in closed:
        act = max(run.stats[(sm.stage, r)].activation_peak_bytes for r in range(replicas))
        d = sm.with_activations(act).as_dict()
        d.update({"closed_form_peak_bytes": sm.peak_bytes,
                  "peak_at_s": run.stats[(sm.stage, 0)].activation_peak_at_s})
        devices.append(d)
    # A mixed cluster fits when its smallest device holds the largest peak (each stage
    # has devices on every kind of node a DP replica may land on).
    capacity = min([prep.device.memory_capacity_bytes]
                   + [k.memory_capacity_bytes for k in kinds.values()])
    peak = max(d["peak_bytes"] for d in devices)
    mem = {"capacity_bytes": capacity, "peak_bytes": peak, "fits": peak <= capacity,
           "devices": devices,
           "headroom_bytes": capacity - peak,
           "reserve": {"fixed_bytes": reserve[0], "fragmentation": reserve[1]}}

    model_flop = workload_mod.model_flop_per_step(model, training)
    hw_flop = workload_mod.hardware_flop_per_step(model, training, plan)
    critical = {"stage": crit[0], "replica": crit[1],
                "device": plan.device_of(crit[0], crit[1] * plan.cp, 0)}
    if speeds:
        slowest = min(speeds, key=lambda d: (speeds[d], d))
        critical["slowest_device"] = slowest
        critical["slowest_speed"] = speeds[slowest]
    if crit in pace:
        # The critical stream runs at the pace of another device kind (mixed cluster).
        critical["device_kind"] = pace[crit][0].name
        critical["nodes"] = pace[crit][1]
    # The link that carries the most bytes for its bandwidth (a lower bound on the step).
    loads = step_link_bytes(model, training, plan, prep.topology, base, symmetric)
    critical["busiest_link"] = busiest_link(prep.topology, loads)
    # The ideal step: each stage's compute for all micro-batches, no communication, no
    # bubble, then the optimizer; no schedule can beat it.
    compute_only = max(plan.micro_batches * sum(c.fwd_compute_s + c.bwd_compute_s
                                                for c in costs[(s, r)].chunks)
                       for s in range(plan.pp) for r in range(replicas)) + run.tail.optimizer_s
    inputs = step_inputs(prep)
    result = StepResult(
        workload=wl.name, cluster=prep.cluster.name, device=prep.device.name,
        world=plan.world, plan=plan_record(plan), inputs=inputs, step_time_s=step,
        tokens_per_s=plan.global_batch * model.seq_len / step,
        model_flop=model_flop, hardware_flop=hw_flop,
        # MFU against the 16-bit peak also for fp8 runs (only their linear GEMMs run in
        # FP8; TrainingSpec.compute_precision), the convention of published FP8 MFUs.
        peak_flop_per_s=prep.device.peak(training.compute_precision),
        breakdown_s=timing.breakdown_s, memory=mem, critical=critical,
        engine={"events": run.events, "mode": "per-device" if per_device else "symmetric",
                "streams": len(run.stats),
                **({} if run.network is None else {"network": run.network})},
        trace_events=tuple(run.trace_events),
        bounds={"compute_only_s": compute_only},
        confidence=confidence(prep.device.name, links_used(prep.cluster, plan,
                                                         prep.topology.context)),
        # Joules per step and per token, power, cost (docs/energy.md).
        energy=step_energy(model, training, plan, prep.device, prep.cluster, prep.topology,
                           costs, step, loads, symmetric))
    check_finite(prep, result)
    return result


def step_inputs(prep: Prepared) -> dict:
    """The resolved workload and cluster settings of a step, flat keys (``model.*``,
    ``training.*``, ``cluster.*``, ``device.*``): :attr:`StepResult.inputs`."""
    m, t = prep.workload.model, prep.workload.training
    out = {f"model.{k}": v for k, v in m.model_dump().items()}
    out.update({f"training.{k}": v for k, v in t.model_dump().items()})
    out.update({"cluster.nodes": prep.cluster.nodes,
                "cluster.devices_per_node": prep.cluster.devices_per_node,
                "device.memory_bandwidth": prep.device.memory_bandwidth_bytes_per_s,
                "device.memory_capacity": prep.device.memory_capacity_bytes,
                "device.peak_flops": prep.device.peak(t.compute_precision)})
    return out
