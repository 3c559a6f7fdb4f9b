"""StepResult and its views: the JSON contract, a flat record, a text table, a trace.

The library never prints; these functions return strings and dicts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BREAKDOWN_KEYS", "StepResult", "chrome_trace", "render_table"]

#: Components of the step time; they add up to ``step_time_s``.
BREAKDOWN_KEYS = ("compute", "tp_comm", "pp_comm", "dp_comm", "bubble", "optimizer", "other")


@dataclass(frozen=True)
class StepResult:
    """One simulated training step. Times in seconds, memory in bytes, FLOP counts."""

    workload: str
    cluster: str
    device: str
    world: int
    plan: dict
    inputs: dict                      # resolved workload + cluster settings (flat keys)
    step_time_s: float
    tokens_per_s: float
    model_flop: float                 # per step, whole model, no recompute counted
    hardware_flop: float              # per step, recompute counted
    peak_flop_per_s: float            # per device, at the training precision
    breakdown_s: dict                 # BREAKDOWN_KEYS -> seconds
    memory: dict                      # capacity_bytes, peak_bytes, fits, devices[...]
    critical: dict                    # which stage / device / link sets the pace;
    #                                   busiest_link: see simwall.linkload.busiest_link
    engine: dict                      # events, mode, symmetric
    trace_events: tuple = field(default=(), repr=False, compare=False)
    bounds: dict = field(default_factory=dict)  # lower bounds on the step time

    @property
    def model_tflops_per_device(self) -> float:
        return self.model_flop / (self.step_time_s * self.world) / 1e12

    @property
    def hardware_tflops_per_device(self) -> float:
        return self.hardware_flop / (self.step_time_s * self.world) / 1e12

    @property
    def mfu(self) -> float:
        return self.model_tflops_per_device * 1e12 / self.peak_flop_per_s

    @property
    def hfu(self) -> float:
        return self.hardware_tflops_per_device * 1e12 / self.peak_flop_per_s

    @property
    def fits(self) -> bool:
        return bool(self.memory["fits"])

    def to_dict(self) -> dict:
        """The JSON contract of ``simwall run --format json``."""
        return {
            "workload": self.workload,
            "cluster": self.cluster,
            "device": self.device,
            "world": self.world,
            "step_time_s": self.step_time_s,
            "tokens_per_s": self.tokens_per_s,
            "model_tflops_per_device": self.model_tflops_per_device,
            "hardware_tflops_per_device": self.hardware_tflops_per_device,
            "mfu": self.mfu,
            "hfu": self.hfu,
            "model_flop_per_step": self.model_flop,
            "hardware_flop_per_step": self.hardware_flop,
            "breakdown_s": dict(self.breakdown_s),
            "memory": self.memory,
            "plan": dict(self.plan),
            "critical": dict(self.critical),
            "engine": dict(self.engine),
            "bounds": dict(self.bounds),
        }

    def to_json(self) -> str:
        """Deterministic JSON text (sorted keys)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_record(self) -> dict[str, Any]:
        """One flat dict of inputs and outputs (for pandas / CSV)."""
        rec: dict[str, Any] = {"workload": self.workload, "cluster": self.cluster,
                               "device": self.device, "world": self.world}
        rec.update({f"plan.{k}": (v if not isinstance(v, list) else json.dumps(v))
                    for k, v in self.plan.items()})
        rec.update(self.inputs)
        rec.update({
            "step_time_s": self.step_time_s, "tokens_per_s": self.tokens_per_s,
            "model_tflops_per_device": self.model_tflops_per_device,
            "hardware_tflops_per_device": self.hardware_tflops_per_device,
            "mfu": self.mfu, "hfu": self.hfu,
        })
        rec.update({f"breakdown.{k}_s": v for k, v in self.breakdown_s.items()})
        rec.update({
            "memory.capacity_bytes": self.memory["capacity_bytes"],
            "memory.peak_bytes": self.memory["peak_bytes"],
            "memory.fits": self.memory["fits"],
            "critical.stage": self.critical.get("stage"),
        })
        return rec


def _gb(x: float) -> str:
    return f"{x / 1e9:8.2f}"


def render_table(r: StepResult) -> str:
    """A readable multi-line summary of one step."""
    p = r.plan
    lines = [
        f"simwall: {r.workload} on {r.cluster} ({r.world} x {r.device})",
        (f"plan: tp={p['tp']} pp={p['pp']} dp={p['dp']} vp={p['virtual_stages']} "
         f"sp={p['sequence_parallel']} zero={p['zero']} recompute={p['recompute']} "
         f"schedule={p['schedule']} micro_batch={p['micro_batch']} "
         f"micro_batches={p['micro_batches']} global_batch={p['global_batch']}"),
        "",
        f"step time            {r.step_time_s:12.4f} s",
        f"tokens/s             {r.tokens_per_s:12.1f}",
        f"model TFLOP/s/device {r.model_tflops_per_device:12.1f}   MFU {r.mfu * 100:5.1f}%",
        f"hw TFLOP/s/device    {r.hardware_tflops_per_device:12.1f}   HFU {r.hfu * 100:5.1f}%",
        "",
        (f"ideal step (compute only: no communication, no bubble; a lower bound) "
         f"{r.bounds.get('compute_only_s', float('nan')):.4f} s"),
        "",
        f"breakdown (critical stage {r.critical.get('stage')}):",
    ]
    for k in BREAKDOWN_KEYS:
        v = r.breakdown_s[k]
        share = v / r.step_time_s * 100 if r.step_time_s > 0 else 0.0
        lines.append(f"  {k:<10} {v:12.4f} s  {share:5.1f}%")
    mem = r.memory
    lines += [
        "",
        (f"memory per device (GB; capacity {mem['capacity_bytes'] / 1e9:.1f}, "
         f"fits: {'yes' if mem['fits'] else 'NO'})"),
        "  stage    params    grads  optim  activ    other     peak",
    ]
    for d in mem["devices"]:
        lines.append(f"  {d['stage']:>5} {_gb(d['params_bytes'])} {_gb(d['grads_bytes'])}"
                     f"{_gb(d['optimizer_bytes'])}{_gb(d['activations_bytes'])}"
                     f" {_gb(d['other_bytes'])} {_gb(d['peak_bytes'])}")
    link = r.critical.get("busiest_link")
    if link:
        share = link["busy_s"] / r.step_time_s * 100 if r.step_time_s > 0 else 0.0
        text = (f"busiest link: {link['link']} ({link['kind']}, {link['link_class']}) "
                f"{link['bytes'] / 1e9:.3f} GB at {link['capacity_bytes_per_s'] / 1e9:.1f} "
                f"GB/s = {link['busy_s']:.4f} s busy ({share:.1f}% of the step)")
        lines += ["", text]
    elif "busiest_link" in r.critical:
        lines += ["", "busiest link: none (no traffic between devices or to the host)"]
    return "\n".join(lines)


def chrome_trace(r: StepResult) -> dict:
    """Chrome trace / Perfetto JSON of the step: a process per stage, a thread per stream."""
    events: list[dict] = []
    pids = sorted({e["pid"] for e in r.trace_events})
    names = {1: "compute", 2: "tp comm", 3: "pp send", 4: "dp comm", 5: "optimizer"}
    for p in pids:
        events.append({"name": "process_name", "ph": "M", "pid": p, "tid": 0,
                       "args": {"name": f"stage/replica {p}"}})
        for tid, name in names.items():
            events.append({"name": "thread_name", "ph": "M", "pid": p, "tid": tid,
                           "args": {"name": name}})
    events.extend(sorted(r.trace_events, key=lambda e: (e["pid"], e.get("tid", 0), e["ts"],
                                                          e["name"])))
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"workload": r.workload, "cluster": r.cluster,
                          "step_time_s": r.step_time_s}}
