"""One training step: inputs resolved (:func:`prepare`), then simulated and assembled into
a :class:`~simwall.report.result.StepResult` (:func:`run_prepared`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..model import memory
from ..model import ops as workload_mod
from ..config import (
    ClusterSpec,
    Workload,
    apply_overrides,
    load_cluster,
    load_workload,
    validate,
)
from .pipeline import bucket_ready_times, dp_stream, run_pipeline, scaled
from ..errors import ConfigError
from ..hardware.catalog import resolve_device
from ..costing import step_busiest_link
from ..plan import Plan, resolve
from ..model.limits import check_dp_buckets
from ..report import StepResult
from ..costing import StageCost, costs_symmetrically, stage_cost

__all__ = ["Prepared", "prepare", "run_prepared"]

#: Fixed per-step time outside the model (data loading, logging), seconds. Zero by
#: default: the engine models only what it can cite; see docs/validation.md.
OTHER_S = 0.0


@dataclass(frozen=True)
class Prepared:
    """Everything resolved for one run: typed inputs, plan, device, topology."""

    workload: Workload
    cluster: ClusterSpec
    plan: Plan
    device: Any
    topology: Any


def split_key_overrides(overrides: dict[str, Any]) -> tuple[list, list]:
    wl, cl = [], []
    for key, value in overrides.items():
        if key.startswith("cluster."):
            cl.append((key[len("cluster."):], value))
        else:
            wl.append((key, value))
    return wl, cl


def reoverride(obj, overrides: list, model_cls):
    """Re-validate an already loaded typed config with overrides applied to its document."""
    if not overrides:
        return obj
    doc = obj.model_dump(by_alias=True, exclude_none=True)
    out = validate(model_cls, apply_overrides(doc, overrides, obj.file), obj.file)
    return out


@lru_cache(maxsize=64)
def _topology_cached(cluster_json: str):
    from ..net.build import build_topology
    cluster = ClusterSpec.model_validate_json(cluster_json)
    return build_topology(cluster)


def topology_for(cluster: ClusterSpec):
    try:
        return _topology_cached(cluster.model_dump_json(by_alias=True))
    except ConfigError as err:
        # The cached build sees a copy made from JSON, which has no file name: locate the
        # error in the cluster's file (and line) instead of "<cluster NAME>".
        if err.source and not err.source.startswith("<cluster "):
            raise
        line = cluster.line(err.key) if err.key else None
        raise ConfigError(cluster.file, err.key, err.message, line=line) from None


def load_default_cluster(wl: Workload, overrides: list) -> ClusterSpec:
    """The cluster named by ``wl.defaults.cluster``; a bad name is located in the workload."""
    try:
        return load_cluster(wl.defaults.cluster, overrides)
    except ConfigError as err:  # the workload's defaults.cluster names no cluster
        if err.source:
            raise
        raise ConfigError(wl.file, "defaults.cluster", err.message,
                          line=wl.line("defaults.cluster")) from None


def prepare(workload: str | Workload = "gpt3-175b", cluster: str | ClusterSpec | None = None,
            overrides: dict[str, Any] | None = None) -> Prepared:
    """Load, override, validate and resolve a workload on a cluster."""
    wl_over, cl_over = split_key_overrides(overrides or {})
    if isinstance(workload, Workload):
        wl = reoverride(workload, wl_over, Workload)
    else:
        wl = load_workload(workload, wl_over)
    if isinstance(cluster, ClusterSpec):
        cl = reoverride(cluster, cl_over, ClusterSpec)
    elif cluster is not None:
        cl = load_cluster(cluster, cl_over)
    else:
        cl = load_default_cluster(wl, cl_over)
    plan, cl = resolve(wl, cl)
    check_dp_buckets(wl, plan)
    device = resolve_device(cl.device, "device", cl.file)
    topo = topology_for(cl)
    return Prepared(workload=wl, cluster=cl, plan=plan, device=device, topology=topo)


def _speeds(prep: Prepared) -> dict[int, float]:
    return {s.device: s.slowdown for s in prep.cluster.faults.stragglers}


def run_prepared(prep: Prepared, per_device: bool = False, trace: bool = False) -> StepResult:
    """Simulate one step of a prepared run."""
    wl, plan = prep.workload, prep.plan
    model, training = wl.model, wl.training
    speeds = _speeds(prep)
    per_device = per_device or bool(speeds)
    replicas = plan.dp if per_device else 1

    symmetric = not per_device and costs_symmetrically(prep.cluster, prep.topology, plan)
    base: dict[int, StageCost] = {}
    for stage in range(plan.pp):
        base[stage] = stage_cost(model, training, plan, prep.device, prep.topology, stage,
                                  symmetric=symmetric)
    costs: dict[tuple[int, int], StageCost] = {}
    for stage in range(plan.pp):
        for r in range(replicas):
            devs = [plan.device_of(stage, r, t) for t in range(plan.tp)]
            speed = min([speeds.get(d, 1.0) for d in devs])
            costs[(stage, r)] = scaled(base[stage], speed)

    run = run_pipeline(plan, costs, replicas=replicas, trace=trace)
    trace_events = list(run.trace)

    # Data-parallel reduction: bucket i starts when every replica has it ready.
    dp_end: dict[int, float] = {}
    compute_end: dict[int, float] = {}
    for stage in range(plan.pp):
        sc = base[stage]
        compute_end[stage] = max(run.stats[(stage, r)].compute_end_s for r in range(replicas))
        ready = None
        for r in range(replicas):
            rr = bucket_ready_times(run.stats[(stage, r)].grad_segments, sc.bucket_bytes,
                                    plan.dp_overlap)
            ready = rr if ready is None else [max(a, b) for a, b in zip(ready, rr)]
        end = 0.0
        for i, (start, end) in enumerate(dp_stream(ready or [], sc.bucket_s)):
            if trace and end > start:
                trace_events.append({"name": f"dp bucket {i}", "ph": "X", "ts": start * 1e6,
                                     "dur": (end - start) * 1e6, "pid": stage * replicas,
                                     "tid": 4, "cat": "dp"})
        dp_end[stage] = max(end, compute_end[stage])
    # Tied embedding gradients: all-reduce between first and last stage after their DP.
    tied_end = 0.0
    if plan.pp > 1 and base[0].tied_embedding_s > 0:
        tied_end = max(dp_end[0], dp_end[plan.pp - 1]) + base[0].tied_embedding_s
    t_sync = max(max(dp_end.values()), tied_end)
    # Optimizer step (after the global gradient-norm reduction) and ZeRO 1/2 all-gather.
    slow_stage = max(range(plan.pp), key=lambda s: (max(costs[(s, r)].optimizer_s
                                                        for r in range(replicas))
                                                    + base[s].post_optimizer_s, -s))
    opt_s = max(costs[(slow_stage, r)].optimizer_s for r in range(replicas))
    post_s = base[slow_stage].post_optimizer_s
    step = t_sync + opt_s + post_s + OTHER_S
    if trace:
        for s in range(plan.pp):
            trace_events.append({"name": "optimizer", "ph": "X", "ts": t_sync * 1e6,
                                 "dur": base[s].optimizer_s * 1e6, "pid": s * replicas,
                                 "tid": 5, "cat": "optimizer"})

    # Breakdown on the critical stream: the one whose compute stream ends last.
    crit = max(run.stats, key=lambda k: (run.stats[k].compute_end_s, -k[0], -k[1]))
    st = run.stats[crit]
    breakdown = {
        "compute": st.compute_s,
        "tp_comm": st.tp_s,
        "pp_comm": st.pp_wait_s,
        "bubble": st.bubble_s,
        "dp_comm": st.zero3_s + (t_sync - st.compute_end_s) + post_s,
        "optimizer": opt_s,
        "other": OTHER_S,
    }

    # Memory: closed-form states and buffers; activations from the engine's timeline.
    closed = memory.device_memory(model, training, plan)
    devices = []
    for sm in closed:
        act = max(run.stats[(sm.stage, r)].activation_peak_bytes for r in range(replicas))
        static = sm.params_bytes + sm.grads_bytes + sm.optimizer_bytes + sm.other_bytes
        d = sm.as_dict()
        d.update({"activations_bytes": act, "peak_bytes": static + act,
                  "closed_form_peak_bytes": sm.peak_bytes,
                  "peak_at_s": run.stats[(sm.stage, 0)].activation_peak_at_s})
        devices.append(d)
    capacity = prep.device.memory_capacity_bytes
    peak = max(d["peak_bytes"] for d in devices)
    mem = {"capacity_bytes": capacity, "peak_bytes": peak, "fits": peak <= capacity,
           "devices": devices,
           "headroom_bytes": capacity - peak}

    model_flop = workload_mod.model_flop_per_step(model, training)
    hw_flop = workload_mod.hardware_flop_per_step(model, training, plan)
    critical = {"stage": crit[0], "replica": crit[1],
                "device": plan.device_of(crit[0], crit[1], 0)}
    if speeds:
        slowest = min(speeds, key=lambda d: (speeds[d], d))
        critical["slowest_device"] = slowest
        critical["slowest_speed"] = speeds[slowest]
    # The link that carries the most bytes for its bandwidth (a lower bound on the step).
    critical["busiest_link"] = step_busiest_link(model, training, plan, prep.topology, base,
                                                 symmetric)
    # The ideal step: each stage's compute for all micro-batches, no communication, no
    # bubble, then the optimizer; no schedule can beat it.
    compute_only = max(plan.micro_batches * sum(c.fwd_compute_s + c.bwd_compute_s
                                                for c in costs[(s, r)].chunks)
                       for s in range(plan.pp) for r in range(replicas)) + opt_s
    inputs = _inputs(prep)
    return StepResult(
        workload=wl.name, cluster=prep.cluster.name, device=prep.device.name,
        world=plan.world, plan=plan.as_dict(), inputs=inputs, step_time_s=step,
        tokens_per_s=plan.global_batch * model.seq_len / step,
        model_flop=model_flop, hardware_flop=hw_flop,
        peak_flop_per_s=prep.device.peak(training.precision),
        breakdown_s=breakdown, memory=mem, critical=critical,
        engine={"events": run.events, "mode": "per-device" if per_device else "symmetric",
                "streams": len(run.stats)},
        trace_events=tuple(trace_events),
        bounds={"compute_only_s": compute_only})


def _inputs(prep: Prepared) -> dict:
    m, t = prep.workload.model, prep.workload.training
    out = {f"model.{k}": v for k, v in m.model_dump().items()}
    out.update({f"training.{k}": v for k, v in t.model_dump().items()})
    out.update({"cluster.nodes": prep.cluster.nodes,
                "cluster.devices_per_node": prep.cluster.devices_per_node,
                "device.memory_bandwidth": prep.device.memory_bandwidth_bytes_per_s,
                "device.memory_capacity": prep.device.memory_capacity_bytes,
                "device.peak_flops": prep.device.peak(t.precision)})
    return out
