"""What-if studies: scale one hardware resource, or project hardware generations forward.

``whatif`` re-simulates a run with some resources of the cluster scaled (peak FLOP/s,
memory bandwidth or capacity, NVLink, NIC, link latency, PCIe) and reports old vs new
step time, breakdown and memory verdict. ``elasticities`` tells which resource binds: the
relative change of step time per relative change of each resource (a forward finite
difference). ``generations`` applies the growth rates of Gholami et al., "AI and Memory
Wall", IEEE Micro 2024 (:data:`GROWTH_PER_GENERATION`, or one's own rates) generation
after generation, with today's plan or (``replan``) the best plan the search finds for
each generation's hardware.

The library never prints; ``simwall whatif`` is :mod:`simwall.cli.whatif`.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from .. import api
from ..api import Prepared
from ..config import ClusterSpec, LinkSpec, Workload
from ..errors import ConfigError
from ..hardware.catalog import link_base, resolve_link
from ..model import ops as wl_mod
from ..model import optime as cost
from ..report import BREAKDOWN_KEYS, StepResult
from .progress import Progress, tracked
from .search import describe_plan, plan_overrides, search

#: A workload or cluster as the API takes it: a bundled name, a path or a typed config.
WorkloadArg = str | Workload
ClusterArg = str | ClusterSpec | None

__all__ = [
    "AXES",
    "ELASTICITY_STEP",
    "GROWTH_PER_GENERATION",
    "MAX_FACTOR",
    "MIN_FACTOR",
    "YEARS_PER_GENERATION",
    "change_text",
    "check_factor",
    "elasticities",
    "generations",
    "parse_rates",
    "parse_scales",
    "render_generations",
    "render_whatif",
    "scale_overrides",
    "wall_shares",
    "whatif",
]

#: Resources ``--scale`` knows, and what each scales.
AXES: dict[str, str] = {
    "peak_flops": "device peak FLOP/s (every precision)",
    "memory_bandwidth": "device memory (HBM) bandwidth",
    "memory_capacity": "device memory capacity",
    "nvlink": "intra-node link bandwidth",
    "nic": "inter-node link bandwidth",
    "latency": "latency of the intra- and inter-node links",
    "pcie": "host link (PCIe) bandwidth",
}

#: Growth per generation of two years, from Gholami et al., "AI and Memory Wall", IEEE
#: Micro 2024 (arXiv 2403.14123), Fig. 1 and abstract: peak server hardware FLOPS 3.0x /
#: 2 years, DRAM bandwidth 1.6x / 2 years, interconnect bandwidth 1.4x / 2 years (1996 to
#: 2023); and the text with Fig. 2: AI accelerator memory capacity 2x / 2 years. The
#: interconnect rate is applied to every link class (NVLink, NIC, PCIe); latency is kept.
GROWTH_PER_GENERATION: dict[str, float] = {
    "peak_flops": 3.0, "memory_bandwidth": 1.6, "memory_capacity": 2.0,
    "nvlink": 1.4, "nic": 1.4, "pcie": 1.4,
}
YEARS_PER_GENERATION = 2

#: Bounds of one ``--scale`` or ``--rates`` factor: a thousandfold either way holds any
#: hardware what-if (a generation grows a resource 1.4-3x, :data:`GROWTH_PER_GENERATION`)
#: and keeps times and sizes printable (1e-300 of a bandwidth gives a 300-digit time).
MIN_FACTOR, MAX_FACTOR = 1e-3, 1e3

#: Relative step of the finite difference behind :func:`elasticities` (+10 %).
ELASTICITY_STEP = 0.10

_COMM_KEYS = ("tp_comm", "pp_comm", "dp_comm")


# ---------------------------------------------------------------------------------------
# Overrides


def parse_scales(items: list[str] | None, flag: str = "--scale") -> dict[str, float]:
    """``["memory_bandwidth=2", "nic=0.5"]`` -> ``{"memory_bandwidth": 2.0, "nic": 0.5}``."""
    out: dict[str, float] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(flag, item, "expected KEY=FACTOR, e.g. memory_bandwidth=2")
        _check_axis(key, flag)
        try:
            factor = float(raw)
        except ValueError:
            factor = math.nan
        out[key] = check_factor(key, factor, flag, raw.strip())
    return out


def check_factor(key: str, factor: Any, flag: str = "--scale", given: str | None = None
                 ) -> float:
    """``factor`` when it is a number from :data:`MIN_FACTOR` to :data:`MAX_FACTOR`; else a
    ConfigError naming ``flag`` and ``key`` (``given``: the text the user wrote)."""
    ok = (isinstance(factor, (int, float)) and not isinstance(factor, bool)
          and MIN_FACTOR <= factor <= MAX_FACTOR)  # nan fails the comparison
    if not ok:
        raise ConfigError(flag, key, f"expected a positive factor from {MIN_FACTOR:g} to "
                          f"{MAX_FACTOR:g}, got '{factor if given is None else given}'")
    return float(factor)


def parse_rates(text: str | None, flag: str = "--rates") -> dict[str, float]:
    """Growth per generation for :func:`generations`: ``"peak_flops=2,nic=1.2"`` ->
    :data:`GROWTH_PER_GENERATION` with those resources replaced (a resource not named
    keeps its published rate; give ``KEY=1`` to hold one fixed). None: the defaults."""
    items = [i for i in (text or "").split(",") if i.strip()]
    if text is not None and not items:
        raise ConfigError(flag, None, "expected KEY=FACTOR,..., e.g. peak_flops=2,nic=1.2")
    return {**GROWTH_PER_GENERATION, **parse_scales(items, flag)}


def _check_axis(key: str, flag: str = "--scale") -> None:
    if key not in AXES:

        near = difflib.get_close_matches(key, list(AXES), n=1, cutoff=0.5)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise ConfigError(flag, key, f"unknown resource{hint} (expected one of "
                          f"{', '.join(AXES)})")


def scale_overrides(prep: Prepared, scales: dict[str, float],
                    flag: str = "--scale") -> dict[str, Any]:
    """Override keys that scale the resolved resources of ``prep`` by ``scales``; values
    are the new absolute numbers. A factor that is not a positive number, or a value it
    scales past the floats, is a ConfigError naming ``flag``, the option it came from."""

    cl, dev = prep.cluster, prep.device
    out: dict[str, Any] = {}
    links = {name: _level_link(prep, name) for name in ("intra", "inter", "host")}
    changed: dict[str, dict[str, float]] = {}   # level -> the link keys its factors set
    for key, factor in sorted(scales.items()):
        _check_axis(key)
        if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
            raise ConfigError(flag, key, f"expected a positive number, got {factor!r}")
        if key == "peak_flops":
            out["cluster.device.peak_flops"] = {p: v * factor for p, v in
                                                sorted(dev.peak_flop_per_s.items())}
        elif key == "memory_bandwidth":
            out["cluster.device.memory_bandwidth"] = dev.memory_bandwidth_bytes_per_s * factor
        elif key == "memory_capacity":
            out["cluster.device.memory_capacity"] = dev.memory_capacity_bytes * factor
        elif key in ("nvlink", "nic", "pcie"):
            level = {"nvlink": "intra", "nic": "inter", "pcie": "host"}[key]
            changed.setdefault(level, {})["bandwidth"] = (
                links[level].bandwidth_bytes_per_s * factor)
        elif key == "latency":
            for level in ("intra", "inter"):
                changed.setdefault(level, {})["latency"] = links[level].latency_s * factor
    for level, keys in sorted(changed.items()):
        out[f"cluster.{level}.link"] = _link_mapping(cl, level, links[level], keys)
    return _finite(out, flag)


def _level_link(prep: Prepared, level: str) -> LinkSpec:
    """The link class ``level`` runs on, as the topology was built with it: the cluster's
    ``{level}.link``, or for an explicit graph the class its links have
    (:func:`simwall.net.build.build_topology`)."""
    ctx = getattr(prep.topology, "context", None)
    if ctx is not None:
        return getattr(ctx, f"{level}_link")
    cl = prep.cluster
    return resolve_link(getattr(cl, level).link, f"{level}.link", cl.file)


def _link_mapping(cl: ClusterSpec, level: str, spec: LinkSpec, keys: dict[str, float]
                  ) -> dict[str, Any]:
    """``{level}.link`` as a what-if mapping on the class it runs on (``spec``), with
    ``keys`` set and the cluster's own changes to that class kept; a whole mapping, so
    it also applies where the file leaves the link at its default."""
    ref = getattr(cl, level).link
    if isinstance(ref, str) or link_base(ref) != spec.name:
        start: dict[str, Any] = {"base": spec.name}
    else:
        start = ref.model_dump(by_alias=True, exclude_none=True)
    return {**start, **keys}


def _finite(overrides: dict[str, Any], flag: str) -> dict[str, Any]:
    """``overrides`` when every value (a number, or a mapping of numbers) is finite; else
    a ConfigError naming ``flag`` and the key its factor scaled past the floats."""
    for key, value in overrides.items():
        items = ({f"{key}.{k}": v for k, v in value.items() if not isinstance(v, str)}
                 if isinstance(value, dict) else {key: value})
        for name, v in items.items():
            if not math.isfinite(v):
                raise ConfigError(flag, name, f"scaled to {v}, not a finite number; use a "
                                  f"smaller factor")
    return overrides


# ---------------------------------------------------------------------------------------
# Simulation helpers


def _summary(result: StepResult) -> dict[str, Any]:
    mem = result.memory
    return {"device": result.device, "step_time_s": result.step_time_s,
            "breakdown_s": dict(result.breakdown_s),
            "memory": {"capacity_bytes": mem["capacity_bytes"], "peak_bytes": mem["peak_bytes"],
                       "fits": bool(mem["fits"])},
            "confidence": result.confidence.get("summary", ""),
            "energy": _energy_summary(result.energy)}


def _energy_summary(e: dict) -> dict[str, Any]:
    """Joules per token, power per device and (when priced) cost per million tokens of a
    step (None where not known: a device without power figures, no price)."""
    cost = e.get("cost") or {}
    return {"j_per_token": e.get("j_per_token"), "j_per_step": e.get("energy_j"),
            "w_per_device": e.get("power_w_per_device"),
            "cost_per_million_tokens": cost.get("cost_per_million_tokens")}


def _run(workload: WorkloadArg, cluster: ClusterArg, overrides: dict[str, Any]
         ) -> tuple[Prepared, StepResult]:
    prep = api.prepare(workload, cluster, overrides)
    return prep, api.run_prepared(prep)


def elasticities(workload: WorkloadArg = "gpt3-175b", cluster: ClusterArg = None,
                 overrides: dict[str, Any] | None = None,
                 axes: tuple[str, ...] | None = None,
                 step: float = ELASTICITY_STEP) -> dict[str, float]:
    """Elasticity of step time to each resource: ``(dT / T) / (dx / x)`` for ``x`` grown by
    ``step`` (default +10 %). -1 means the step time falls as fast as the resource grows
    (it binds alone); 0 means it does not matter. Default axes: all but
    ``memory_capacity``, which changes the memory verdict, not the time."""
    overrides = dict(overrides or {})
    prep, base = _run(workload, cluster, overrides)
    t0 = base.step_time_s
    out: dict[str, float] = {}
    for axis in axes or tuple(a for a in AXES if a != "memory_capacity"):
        _check_axis(axis)
        over = {**overrides, **scale_overrides(prep, {axis: 1.0 + step})}
        _, r = _run(workload, cluster, over)
        out[axis] = (r.step_time_s - t0) / t0 / step if t0 > 0 else 0.0
    return out


def whatif(workload: WorkloadArg = "gpt3-175b", cluster: ClusterArg = None,
           scales: dict[str, float] | None = None, overrides: dict[str, Any] | None = None,
           with_elasticities: bool = True) -> dict[str, Any]:
    """Re-simulate with ``scales`` (resource -> factor) applied on top of ``overrides``.

    Returns ``{workload, cluster, scales, overrides, baseline, scaled, speedup,
    elasticities, scaled_elasticities}``; ``baseline`` / ``scaled`` hold step time,
    breakdown and memory verdict; ``elasticities`` (at the baseline) and
    ``scaled_elasticities`` (at the scaled design; only when something is scaled) are
    omitted unless ``with_elasticities``.
    """
    overrides = dict(overrides or {})
    scales = {key: check_factor(key, f) for key, f in (scales or {}).items()}
    prep, base = _run(workload, cluster, overrides)
    new_over = scale_overrides(prep, scales)
    _, new = _run(workload, cluster, {**overrides, **new_over})
    out = {"workload": base.workload, "cluster": base.cluster, "scales": scales,
           "overrides": new_over, "baseline": _summary(base), "scaled": _summary(new),
           "speedup": base.step_time_s / new.step_time_s if new.step_time_s > 0 else math.inf}
    if with_elasticities:
        out["elasticities"] = elasticities(workload, cluster, overrides)
        if scales:  # the binding resource may move once one is scaled
            out["scaled_elasticities"] = elasticities(workload, cluster,
                                                      {**overrides, **new_over})
    return out


# ---------------------------------------------------------------------------------------
# Generations


def _memory_bound_fraction(prep: Prepared, stage: int) -> float:
    """Share of ``stage``'s compute time (fwd + bwd of one micro-batch) spent in ops whose
    roofline bound is memory bandwidth (``simwall.model.optime.bound``)."""

    model, training, plan = prep.workload.model, prep.workload.training, prep.plan
    ops = wl_mod.stage_ops(model, training, plan, stage)
    total = mem = 0.0
    for op in tuple(ops.fwd) + tuple(ops.bwd):
        t = cost.op_time_s(op, prep.device, training.precision)
        total += t
        if str(cost.bound(op, prep.device, training.precision)).startswith("memory"):
            mem += t
    return mem / total if total > 0 else 0.0


def wall_shares(prep: Prepared, result: StepResult) -> dict[str, float]:
    """The step time split into the parts the memory wall is about, seconds and shares.

    ``comm_s`` = tp_comm + pp_comm + dp_comm (communication the critical stream waits
    for); ``memory_bound_s`` = compute x (memory-bound fraction of that stage's op time by
    the roofline classification) + optimizer (Adam is an elementwise, memory-bound
    update); ``compute_bound_s`` = the rest of compute; ``bubble_s`` / ``other_s`` as in
    the breakdown. ``wall_share`` = (comm_s + memory_bound_s) / step time.
    """
    b = result.breakdown_s
    frac = _memory_bound_fraction(prep, int(result.critical.get("stage", 0)))
    comm = sum(b[k] for k in _COMM_KEYS)
    mem_bound = b["compute"] * frac + b["optimizer"]
    step = result.step_time_s
    return {"comm_s": comm, "memory_bound_s": mem_bound,
            "compute_bound_s": b["compute"] * (1.0 - frac), "bubble_s": b["bubble"],
            "other_s": b["other"], "memory_bound_compute_fraction": frac,
            "comm_share": comm / step if step > 0 else 0.0,
            "memory_bound_share": mem_bound / step if step > 0 else 0.0,
            "wall_share": (comm + mem_bound) / step if step > 0 else 0.0}


def _scaled_model(prep: Prepared, flop_factor: float) -> dict[str, Any]:
    """Model overrides that grow per-step FLOPs by about ``flop_factor``.

    Dense transformer FLOPs per token ~ 6 N with N ~ 12 L h^2 (Kaplan et al. 2020, Sec.
    2.1; Narayanan et al. 2021, Sec. 5.1), so at fixed layers, batch and sequence the
    FLOPs grow ~ h^2: hidden grows by sqrt(flop_factor), keeping the number of heads (so
    head_dim grows and every TP degree that divided heads still does); ffn_hidden keeps its
    ratio to hidden, rounded to a multiple of ``heads``."""
    m = prep.workload.model
    grow = math.sqrt(flop_factor)
    head_dim = max(1, round(m.head_dim * grow))
    hidden = head_dim * m.heads
    out: dict[str, Any] = {"model.hidden": hidden}
    if m.ffn_hidden is not None:
        ffn = max(m.heads, round(m.ffn_hidden * hidden / m.hidden / m.heads) * m.heads)
        out["model.ffn_hidden"] = ffn
    return out


def generations(workload: WorkloadArg = "gpt3-175b", cluster: ClusterArg = None, count: int = 4,
                overrides: dict[str, Any] | None = None,
                growth: dict[str, float] | None = None,
                progress: Progress | None = None,
                replan: bool = False) -> list[dict[str, Any]]:
    """Project the cluster ``count`` generations forward (generation 0 = as given).

    Generation ``g`` scales every resource by ``growth[axis] ** g``
    (:data:`GROWTH_PER_GENERATION` by default). Two models per generation: ``fixed`` (the
    workload as is) and ``scaled`` (hidden grown so per-step FLOPs grow with peak FLOP/s,
    see :func:`_scaled_model`). One row per (generation, model) with step time, the
    breakdown, :func:`wall_shares`, the memory verdict and the plan run
    (:func:`~simwall.studies.search.describe_plan`). ``growth``: resource -> factor per
    generation (:func:`parse_rates`); resources not named are not grown. ``replan``: run
    each (generation, model) with the best plan :func:`~simwall.studies.search.search`
    finds for it (top 1; generation 0 included) instead of the workload's plan; when no
    plan fits, the workload's plan is kept and ``replanned`` is False. ``progress``: hook
    the generations go through (:mod:`.progress`; None: silent).
    """
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 20:
        raise ConfigError("--generations", None, f"expected an integer 0 to 20, got {count!r}")
    growth = dict(GROWTH_PER_GENERATION if growth is None else growth)
    for axis, factor in growth.items():
        _check_axis(axis, "growth")
        check_factor(axis, factor, "growth")
    overrides = dict(overrides or {})
    prep0, _ = _run(workload, cluster, overrides)
    rows: list[dict[str, Any]] = []
    base_flop = None
    for g in tracked(progress, range(count + 1), total=count + 1, desc="generations"):
        hw = (scale_overrides(prep0, {a: f ** g for a, f in growth.items()}, "--rates")
              if g else {})
        for kind in ("fixed", "scaled"):
            model_over = (_scaled_model(prep0, growth.get("peak_flops", 1.0) ** g)
                          if (kind == "scaled" and g) else {})
            over = {**overrides, **hw, **model_over}
            replanned = False
            try:
                if replan:
                    best = search(workload, cluster, top=1, overrides=over).ranked
                    if best:
                        over.update(plan_overrides(best[0].candidate.plan))
                        replanned = True
                prep, r = _run(workload, cluster, over)
            except ConfigError as err:
                # The projected hardware or grown model is what fails, not the input.
                grown = f", hidden {model_over['model.hidden']}" if model_over else ""
                raise ConfigError("--generations", None, f"generation {g} ({kind} "
                                  f"model{grown}) cannot run: {err}") from None
            if base_flop is None:
                base_flop = r.model_flop
            shares = wall_shares(prep, r)
            rows.append({
                "generation": g, "year": g * YEARS_PER_GENERATION, "model": kind,
                "hidden": prep.workload.model.hidden,
                "plan": describe_plan(prep.plan), "replanned": replanned,
                "model_flop_growth": r.model_flop / base_flop,
                "step_time_s": r.step_time_s,
                **{f"{k}_s": v for k, v in r.breakdown_s.items()},
                **shares,
                "peak_bytes": r.memory["peak_bytes"],
                "capacity_bytes": r.memory["capacity_bytes"],
                "fits": bool(r.memory["fits"]),
                "confidence": r.confidence.get("summary", ""),
            })
    return rows


# ---------------------------------------------------------------------------------------
# Text


def change_text(old: float, new: float, unit: str = "s") -> str:
    """The change from ``old`` to ``new``: a percentage, or, from zero (where a percentage
    means nothing), the absolute change in ``unit`` (``+0.570 s``)."""
    if old:
        return f"{(new - old) / old * 100:.1f}%"
    if new:
        return f"{new - old:+.3f} {unit}"
    return "0.0%"


def _elasticity_lines(columns: dict[str, dict[str, float]]) -> list[str]:
    """The elasticity table, one column per design (baseline, scaled), sorted by the first."""
    names = list(columns)
    first = columns[names[0]]
    lines = ["", (f"elasticity of step time (% change per +1% of the resource, finite "
                  f"difference at +{ELASTICITY_STEP:.0%}):")]
    if len(names) > 1:
        lines.append(f"  {'':<17}" + "".join(f" {n:>8}" for n in names))
    for k in sorted(first, key=lambda k: (first[k], k)):
        lines.append(f"  {k:<17}" + "".join(f" {columns[n].get(k, math.nan):+8.3f}"
                                            for n in names))
    for n in names:
        el = columns[n]
        bind = min(el, key=lambda k: (el[k], k))
        if el[bind] < 0:
            at = f" ({n})" if len(names) > 1 else ""
            lines.append(f"binding resource{at}: {bind}")
    return lines


def render_whatif(data: dict[str, Any]) -> str:
    """Old vs new step time, breakdown and memory verdict, then elasticities (at the
    baseline and, when present, at the scaled design)."""

    b, s = data["baseline"], data["scaled"]
    scales = ", ".join(f"{k} x{v:g}" for k, v in sorted(data["scales"].items())) or "nothing"
    lines = [f"whatif: {data['workload']} on {data['cluster']}, scaled {scales}",
             f"device: {b['device']} -> {s['device']}", "",
             f"{'':<14} {'baseline':>12} {'scaled':>12} {'change':>9}"]

    def row(name: str, old: float, new: float, unit: str = "s") -> str:
        return (f"{name:<14} {old:>11.4f}{unit} {new:>11.4f}{unit} "
                f"{change_text(old, new, unit):>9}")

    lines.append(row("step time", b["step_time_s"], s["step_time_s"]))
    for k in BREAKDOWN_KEYS:
        lines.append(row(f"  {k}", b["breakdown_s"][k], s["breakdown_s"][k]))
    lines.append(f"speedup        {data['speedup']:>12.3f}x")
    lines += _energy_rows(b.get("energy") or {}, s.get("energy") or {})
    for name, m in (("baseline", b["memory"]), ("scaled", s["memory"])):
        lines.append(f"memory {name:<8} peak {m['peak_bytes'] / 1e9:,.1f} GB of "
                     f"{m['capacity_bytes'] / 1e9:,.1f} GB: "
                     f"{'fits' if m['fits'] else 'DOES NOT FIT'}")
    if data.get("elasticities"):
        cols = {"baseline": data["elasticities"]}
        if data.get("scaled_elasticities"):
            cols["scaled"] = data["scaled_elasticities"]
        lines += _elasticity_lines(cols)
    for name, summary in (("baseline", b.get("confidence")), ("scaled", s.get("confidence"))):
        if summary:
            lines.append(f"confidence ({name}): {summary}")
    return "\n".join(lines)


def _energy_rows(b: dict, s: dict) -> list[str]:
    """Energy per token (and cost per million tokens when priced) of both sides, in the
    columns of the step-time rows; none where neither side has the figure."""
    rows = []
    for key, name, unit, fmt in (("j_per_token", "energy/token", "J", ".4f"),
                                 ("cost_per_million_tokens", "cost/M tokens", "", ".4f")):
        old, new = b.get(key), s.get(key)
        if old is None and new is None:
            continue
        text = [f"{v:>11{fmt}}{unit or ' '}" if v is not None else f"{'n/a':>12}"
                for v in (old, new)]
        change = change_text(old, new, unit) if old is not None and new is not None else ""
        rows.append(f"{name:<14} {text[0]} {text[1]} {change:>9}")
    return rows


def render_generations(rows: list[dict[str, Any]],
                       growth: dict[str, float] | None = None) -> str:
    """One line per generation and model: step time, shares, memory verdict, and the plan
    when the rows were re-planned. ``growth``: the rates the rows were made with (default
    :data:`GROWTH_PER_GENERATION`)."""
    head = (f"{'gen':>3} {'year':>4} {'model':<6} {'hidden':>6} {'flop x':>7} {'step s':>10} "
            f"{'comm%':>6} {'membnd%':>7} {'wall%':>6} {'bubble%':>7} {'peak GB':>8} "
            f"{'cap GB':>7} fits")
    replan = any(r.get("replanned") for r in rows)
    if replan:
        head += " plan (best per generation)"
    g = GROWTH_PER_GENERATION if growth is None else growth
    if g == GROWTH_PER_GENERATION:
        lines = [(f"growth per {YEARS_PER_GENERATION}-year generation (Gholami et al., IEEE "
                  f"Micro 2024): FLOPS x{g['peak_flops']}, DRAM bw x{g['memory_bandwidth']}, "
                  f"interconnect x{g['nic']}, memory capacity x{g['memory_capacity']}")]
    else:
        named = ", ".join(f"{k} x{v:g}" for k, v in g.items()) or "nothing"
        lines = [f"growth per {YEARS_PER_GENERATION}-year generation (--rates): {named}"]
    lines += ["wall% = (tp+pp+dp comm + memory-bound compute + optimizer) / step time", head]
    for r in rows:
        st = r["step_time_s"]
        lines.append(
            f"{r['generation']:>3} {r['year']:>4} {r['model']:<6} {r['hidden']:>6} "
            f"{r['model_flop_growth']:>7.2f} {st:>10.4f} {r['comm_share'] * 100:>6.1f} "
            f"{r['memory_bound_share'] * 100:>7.1f} {r['wall_share'] * 100:>6.1f} "
            f"{r['bubble_s'] / st * 100 if st else 0:>7.1f} {r['peak_bytes'] / 1e9:>8.1f} "
            f"{r['capacity_bytes'] / 1e9:>7.1f} "
            f"{('yes' if r['fits'] else 'NO').ljust(4 if replan else 0)}"
            + (f" {r['plan']}{'' if r['replanned'] else ' (none fits; as given)'}"
               if replan else ""))
    if rows and rows[0].get("confidence"):
        lines.append(f"confidence (generation 0): {rows[0]['confidence']}; later generations "
                     f"are projected devices, not validated")
    return "\n".join(lines)
