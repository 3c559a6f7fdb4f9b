"""The text view of a step: what ``simwall run`` prints by default.

Registered as the ``table`` output format (:data:`simwall.registry.OUTPUT_FORMATS`);
public as ``simwall.report.render_table``.
"""

from __future__ import annotations

from ..plan import NONE_KNOWN
from .result import BREAKDOWN_KEYS, StepResult

__all__ = ["energy_lines", "render"]


def _gb(x: float) -> str:
    return f"{x / 1e9:8.2f}"


def _framework_line(p: dict) -> list[str]:
    """The framework semantics that decide what communication is exposed (issue 15), and
    the frameworks that run the plan (the preset may stand in for none of them)."""
    if "framework" not in p:
        return []
    on = {True: "on", False: "off"}
    runs_on = p.get("runs_on")
    if runs_on == NONE_KNOWN:
        runs_on += f"; {p['framework']}'s semantics stand in"
    return [(f"framework: {p['framework']} (tp_comm_overlap={on[p['tp_comm_overlap']]} "
             f"overlap_param_gather={on[p['overlap_param_gather']]} "
             f"zero_grad_reduce={p['zero_grad_reduce']} "
             f"zero3_gather_unit={p['zero3_gather_unit']} "
             f"zero3_prefetch={p['zero3_prefetch']} "
             f"reshard_after_forward={on[p['reshard_after_forward']]})"
             + (f"; runs on: {runs_on}" if runs_on else ""))]


def render(r: StepResult) -> str:
    """A readable multi-line summary of one step (no final newline)."""
    p = r.plan
    lines = [
        f"simwall: {r.workload} on {r.cluster} ({r.world} x {r.device})",
        (f"plan: tp={p['tp']} "
         + (f"cp={p['cp']} ({p['cp_comm']}) " if p.get("cp", 1) > 1 else "")
         + f"pp={p['pp']} dp={p['dp']} "
         + (f"ep={p['ep']} " if p.get("ep", 1) > 1 else "")
         + ("ep_overlap=on " if p.get("ep_overlap") else "")
         + f"vp={p['virtual_stages']} "
         f"sp={p['sequence_parallel']} zero={p['zero']} "
         + (f"dp_shard={p['dp_shard']} " if p.get("dp_shard", p["dp"]) < p["dp"] * p.get("cp", 1)
            else "")
         + f"recompute={p['recompute']} "
         f"schedule={p['schedule']} micro_batch={p['micro_batch']} "
         f"micro_batches={p['micro_batches']} global_batch={p['global_batch']}"),
        *_framework_line(p),
        "",
        f"step time            {r.step_time_s:12.4f} s",
        f"tokens/s             {r.tokens_per_s:12.1f}",
        f"model TFLOP/s/device {r.model_tflops_per_device:12.1f}   MFU {r.mfu * 100:5.1f}%",
        f"hw TFLOP/s/device    {r.hardware_tflops_per_device:12.1f}   HFU {r.hfu * 100:5.1f}%",
        "",
        (f"ideal step (compute only: no communication, no bubble; a lower bound) "
         f"{r.bounds.get('compute_only_s', float('nan')):.4f} s"),
        "",
        f"breakdown (critical stage {r.critical.get('stage')}"
        + (f", replica {r.critical.get('replica')} paced by node(s) "
           f"{', '.join(map(str, r.critical['nodes']))} of {r.critical['device_kind']}"
           if "device_kind" in r.critical else "") + "):",
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
        "  stage    params    grads  optim  activ    other reserved     peak",
    ]
    for d in mem["devices"]:
        lines.append(f"  {d['stage']:>5} {_gb(d['params_bytes'])} {_gb(d['grads_bytes'])}"
                     f"{_gb(d['optimizer_bytes'])}{_gb(d['activations_bytes'])}"
                     f" {_gb(d['other_bytes'])} {_gb(d.get('reserved_bytes', 0.0))}"
                     f" {_gb(d['peak_bytes'])}")
    link = r.critical.get("busiest_link")
    if link:
        share = link["busy_s"] / r.step_time_s * 100 if r.step_time_s > 0 else 0.0
        text = (f"busiest link: {link['link']} ({link['kind']}, {link['link_class']}) "
                f"{link['bytes'] / 1e9:.3f} GB at {link['capacity_bytes_per_s'] / 1e9:.1f} "
                f"GB/s = {link['busy_s']:.4f} s busy ({share:.1f}% of the step)")
        lines += ["", text]
    elif "busiest_link" in r.critical:
        lines += ["", "busiest link: none (no traffic between devices or to the host)"]
    lines += energy_lines(r.energy)
    if r.confidence.get("summary"):
        lines += ["", f"confidence: {r.confidence['summary']}"]
    return "\n".join(lines)


def energy_lines(e: dict) -> list[str]:
    """The energy line (and the cost line when priced) of a step, each after a blank
    line; none for a device without power figures and no price."""
    out: list[str] = []
    if e.get("energy_j") is not None:
        out += ["", (f"energy: {e['energy_j'] / 1e3:,.1f} kJ per step, "
                     f"{e['j_per_token']:.3f} J per token, {e['power_w_per_device']:,.0f} W "
                     f"per device (node overhead x{e['power_overhead']:g}, PUE "
                     f"{e['pue']:g})")]
    cost = e.get("cost")
    if cost:
        if not out:
            out.append("")
        out.append(f"cost: {cost['cost_per_step']:.4f} per step, "
                   f"{cost['cost_per_million_tokens']:.4f} per million tokens (at "
                   f"{cost['price_per_device_hour']:g} per device-hour)")
    return out
