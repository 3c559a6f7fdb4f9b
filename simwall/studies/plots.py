"""Plots of simwall's results (matplotlib, an optional extra: ``pip install simwall[plot]``).

Every plot function returns ``(figure, data)``: a ``matplotlib.figure.Figure`` built
without pyplot (no global state; rendered with the Agg canvas) and the list of dicts
drawn, so the CLI can print the numbers behind every picture. :func:`save` writes a
figure as PNG or SVG by the file's suffix. ``simwall plot`` is :mod:`simwall.cli.plot`.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SimwallError
from ..hardware.efficiency import efficiency_of
from ..report import records as record_files
from ..report.outputs import check_output_path, output_error
from .pareto import pareto_front
from .where import compile_where

__all__ = [
    "HUE_CATEGORIES",
    "SUFFIXES",
    "breakdown_plot",
    "check_plot_path",
    "columns_plot",
    "design_plot",
    "generations_plot",
    "memory_plot",
    "memory_timeline_plot",
    "plot_for_roofline",
    "read_records",
    "render_rows",
    "roofline_plot",
    "run_plot",
    "save",
]

SUFFIXES = (".png", ".svg")
_BREAKDOWN = ("compute", "tp_comm", "pp_comm", "dp_comm", "bubble", "optimizer", "other")
_MEMORY = ("params_bytes", "grads_bytes", "optimizer_bytes", "activations_bytes",
           "other_bytes", "reserved_bytes")


def _figure(width_in: float = 7.0, height_in: float = 4.5):
    """A new Figure on the Agg canvas (no pyplot), or a clear error without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise SimwallError("plotting needs matplotlib: install simwall[plot] "
                           "(pip install 'simwall[plot]')") from None
    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def check_plot_path(path: str | Path, flag: str = "--plot") -> Path:
    """``path`` if its suffix is one we write (.png, .svg) and it can be written there
    (:func:`~simwall.report.outputs.check_output_path`), else a ConfigError."""
    p = Path(path)
    if p.suffix.lower() not in SUFFIXES:
        raise ConfigError(flag, None, f"expected a file ending in .png or .svg, got '{path}'")
    return check_output_path(p, flag)


def save(fig: Any, path: str | Path, flag: str = "--plot") -> Path:
    """Write ``fig`` to ``path`` (PNG or SVG by suffix); returns the path."""
    p = check_plot_path(path, flag)
    try:
        fig.savefig(p, format=p.suffix.lower()[1:], bbox_inches="tight",
                    metadata={"Date": None} if p.suffix.lower() == ".svg" else None)
    except OSError as err:
        raise output_error(flag, path, err) from None
    return p


# ---------------------------------------------------------------------------------------
# Step time


def _stacked(ax: Any, labels: list[str], series: dict[str, list[float]]) -> None:
    bottom = [0.0] * len(labels)
    for name, values in series.items():
        if not any(v > 0 for v in values):
            continue
        ax.bar(labels, values, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, values)]


def breakdown_plot(rows: list[dict[str, Any]], title: str = "step time breakdown",
                   keys: tuple[str, ...] = _BREAKDOWN) -> tuple[Any, list[dict]]:
    """Stacked bars of step-time components, one bar per row.

    ``rows``: dicts with ``label`` and seconds under ``keys`` (a StepResult's
    ``breakdown_s`` plus a label). Returns (figure, rows as drawn).
    """
    data = [{"label": str(r["label"]), **{k: float(r.get(k, 0.0)) for k in keys}}
            for r in rows]
    fig = _figure()
    ax = fig.add_subplot()
    _stacked(ax, [d["label"] for d in data], {k: [d[k] for d in data] for k in keys})
    ax.set_ylabel("seconds per step")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return fig, data


def generations_plot(rows: list[dict[str, Any]]) -> tuple[Any, list[dict]]:
    """Share of step time per generation (``simwall.studies.whatif.generations`` rows): stacked
    bars of communication, memory-bound work, compute-bound work, bubble and other; one
    panel per model (fixed, scaled)."""
    parts = ("comm_s", "memory_bound_s", "compute_bound_s", "bubble_s", "other_s")
    models = sorted({r["model"] for r in rows}, key=lambda m: (m != "fixed", m))
    fig = _figure(4.5 * max(1, len(models)), 5.0)
    axes = fig.subplots(1, max(1, len(models)), squeeze=False)[0]
    data: list[dict] = []
    for ax, model in zip(axes, models):
        rs = sorted((r for r in rows if r["model"] == model), key=lambda r: r["generation"])
        labels = [f"g{r['generation']}\n+{r['year']} y" for r in rs]
        shares = {p: [r[p] / r["step_time_s"] * 100 if r["step_time_s"] else 0.0 for r in rs]
                  for p in parts}
        _stacked(ax, labels, {p[:-2].replace("_", " "): v for p, v in shares.items()})
        ax.set_ylim(0, 100)
        ax.set_ylabel("% of step time")
        ax.set_title(f"{model} model")
        ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.16),
                  ncol=3)
        for r, lab in zip(rs, labels):
            data.append({"model": model, "generation": r["generation"],
                         "label": lab.replace("\n", " "),
                         "step_time_s": r["step_time_s"],
                         **{f"{p[:-2]}_pct": shares[p][rs.index(r)] for p in parts},
                         "wall_pct": r["wall_share"] * 100})
    fig.suptitle("memory wall: share of step time per hardware generation")
    return fig, data


# ---------------------------------------------------------------------------------------
# Memory


def memory_plot(result: Any) -> tuple[Any, list[dict]]:
    """Per-device (per-stage) memory stacked by kind against the device capacity line."""
    mem = result.memory
    data = [{"stage": d["stage"], **{k: float(d.get(k, 0.0)) for k in _MEMORY},
             "peak_bytes": float(d["peak_bytes"]), "capacity_bytes": float(mem["capacity_bytes"])}
            for d in mem["devices"]]
    fig = _figure()
    ax = fig.add_subplot()
    labels = [f"stage {d['stage']}" for d in data]
    _stacked(ax, labels, {k[:-6]: [d[k] / 1e9 for d in data] for k in _MEMORY})
    ax.axhline(mem["capacity_bytes"] / 1e9, color="black", linestyle="--",
               label=f"capacity {mem['capacity_bytes'] / 1e9:.0f} GB")
    ax.set_ylabel("GB per device")
    ax.set_title(f"memory per device: {result.workload} on {result.cluster}")
    ax.legend(fontsize="small")
    return fig, data


def _timeline_points(result: Any, pid: int | None = None) -> tuple[int, float, list[dict]]:
    """(stage, static bytes, points) of one trace process's ``activations`` counter."""
    counters = [e for e in result.trace_events
                if e.get("ph") == "C" and e.get("name") == "activations"]
    if not counters:
        raise SimwallError("no 'activations' counter events: simulate with trace=True")
    pids = sorted({e["pid"] for e in counters})
    pid = pids[0] if pid is None else pid
    if pid not in pids:
        raise ConfigError("--pid", None, f"expected one of {pids}, got {pid}")
    events = sorted((e for e in counters if e["pid"] == pid), key=lambda e: e["ts"])
    # Trace processes are numbered stage * replicas + replica (simwall.api.run_prepared).
    replicas = max(1, len(pids) // max(1, len(result.memory["devices"])))
    stage = min(pid // replicas, len(result.memory["devices"]) - 1)
    dev = result.memory["devices"][stage]
    states = sum(float(dev[k]) for k in ("params_bytes", "grads_bytes", "optimizer_bytes"))
    other = float(dev["other_bytes"])
    static = states + other
    recycled = float(dev.get("recycled_bytes", 0.0))
    # The reserve (simwall.model.memory.memory_reserve): fixed bytes plus a fraction of the
    # transient bytes (buffers less ZeRO-3's recycled gathered layers, and activations;
    # not the model states) at each instant.
    reserve = result.memory.get("reserve", {})
    fixed = float(reserve.get("fixed_bytes", 0.0))
    frag = float(reserve.get("fragmentation", 0.0))
    data = []
    for e in events:
        act = float(sum(v for v in e.get("args", {}).values() if isinstance(v, (int, float))))
        data.append({"time_s": e["ts"] / 1e6, "activations_bytes": act,
                     "total_bytes": (states + recycled + (other - recycled + act)
                                     * (1 + frag) + fixed)})
    return stage, static, data


def _timeline(result: Any, ax: Any, pid: int | None = None) -> list[dict]:
    stage, static, data = _timeline_points(result, pid)
    ax.step([d["time_s"] for d in data], [d["total_bytes"] / 1e9 for d in data],
            where="post", label="static + activations")
    ax.axhline(static / 1e9, color="gray", linestyle=":", label="static (states, buffers)")
    ax.axhline(result.memory["capacity_bytes"] / 1e9, color="black", linestyle="--",
               label="capacity")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("time in step (s)")
    ax.set_ylabel("GB")
    ax.set_title(f"memory over the step, stage {stage}")
    ax.legend(fontsize="small")
    return data


def memory_timeline_plot(result: Any, pid: int | None = None) -> tuple[Any, list[dict]]:
    """Device memory over the step for one stage (trace process ``pid``; default the
    first): the static bytes (params, grads, optimizer, other) plus the ``activations``
    counter events of a run with ``trace=True``."""
    _timeline_points(result, pid)  # fail before building a figure
    fig = _figure()
    data = _timeline(result, fig.add_subplot(), pid)
    return fig, data


# ---------------------------------------------------------------------------------------
# Roofline


def _field(row: Any, *names: str) -> Any:
    for n in names:
        if isinstance(row, dict) and n in row:
            return row[n]
        if hasattr(row, n):
            return getattr(row, n)
    return None


def roofline_plot(rows: list[Any], device: Any, precision: str = "bf16"
                  ) -> tuple[Any, list[dict]]:
    """Log-log roofline of ``device`` (peak x gemm_max, bandwidth x memory_bw) with the
    workload's ops as points at (intensity FLOP/byte, achieved FLOP/s = flop / time).

    ``rows``: :func:`simwall.model.roofline.roofline_rows` output (dicts or objects with the op
    name, ``flop``, intensity and time)."""

    eff = efficiency_of(device)
    peak = device.peak(precision) * eff.gemm_max
    bw = device.memory_bandwidth_bytes_per_s * eff.memory_bw
    data = []
    for r in rows:
        flop = _field(r, "flop", "flop_")
        t = _field(r, "time_s", "op_time_s")
        ai = _field(r, "intensity", "intensity_flop_per_byte")
        if not flop or not t or not ai:
            continue
        data.append({"op": str(_field(r, "name", "op")), "intensity_flop_per_byte": float(ai),
                     "achieved_flop_per_s": float(flop) / float(t),
                     "bound": str(_field(r, "bound") or "")})
    fig = _figure()
    ax = fig.add_subplot()
    lo = min([d["intensity_flop_per_byte"] for d in data] + [0.1]) / 2
    hi = max([d["intensity_flop_per_byte"] for d in data] + [peak / bw]) * 4
    xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.loglog(xs, [min(peak, bw * x) for x in xs], color="black",
              label=f"roof: {peak / 1e12:.0f} TFLOP/s, {bw / 1e12:.2f} TB/s")
    for kind in sorted({d["bound"] for d in data}):
        pts = [d for d in data if d["bound"] == kind]
        ax.scatter([d["intensity_flop_per_byte"] for d in pts],
                   [d["achieved_flop_per_s"] for d in pts], s=14, label=kind or "ops")
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("FLOP/s")
    ax.set_title(f"roofline: {device.name}")
    ax.legend(fontsize="small")
    return fig, data


# ---------------------------------------------------------------------------------------
# Sweep columns


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a CSV, JSONL or Parquet file written by ``simwall sweep`` (by suffix):
    the one record reader, :func:`simwall.report.read_records`, in its strict mode (a
    missing file or a bad JSONL line is an error; any JSON object per line is a row)."""
    return record_files.read_records(path, strict=True)


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _check_column(records: list[dict[str, Any]], col: str, flag: str, source: str) -> None:
    if col not in records[0]:
        near = difflib.get_close_matches(col, list(records[0]), n=1, cutoff=0.5)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise ConfigError(source, flag, f"no column '{col}'{hint}")


#: Most distinct numeric --hue values still drawn as categories (a legend entry each);
#: more are drawn on a colour scale with a colour bar.
HUE_CATEGORIES = 8


def columns_plot(records: list[dict[str, Any]], x: str, y: str, hue: str | None = None,
                 source: str = "records", where: str | None = None, pareto: bool = False,
                 maximize_x: bool = False, maximize_y: bool = False
                 ) -> tuple[Any, list[dict]]:
    """A scatter of ``y`` against ``x`` from sweep records, one point per row (in file
    order; rows without a numeric ``y`` are left out).

    ``hue``: colour by that column: one colour and legend entry per value, or a colour
    scale when it holds more than :data:`HUE_CATEGORIES` distinct numbers. ``where``: keep
    only the rows the filter accepts (:func:`simwall.studies.where.compile_where`).
    ``pareto``: mark the Pareto front (:func:`simwall.studies.pareto.pareto_front`; lower
    is better on both axes unless ``maximize_x`` / ``maximize_y``) and add a ``pareto``
    column to the rows. Returns (figure, rows drawn: ``x``, ``y``[, ``hue``][, ``pareto``]).
    """
    if not records:
        raise ConfigError(source, None, "no records to plot")
    for flag, col in (("--x", x), ("--y", y), ("--hue", hue)):
        if col is not None:
            _check_column(records, col, flag, source)
    if (maximize_x or maximize_y) and not pareto:
        raise ConfigError("--maximize-x" if maximize_x else "--maximize-y", None,
                          "needs --pareto")
    keep = compile_where(where, records[0]) if where else (lambda row: True)
    data = []
    for r in records:
        yv = _num(r.get(y))
        if yv is None or not keep(r):
            continue  # e.g. an infeasible plan with no step time
        data.append({x: r.get(x), y: yv, **({hue: r.get(hue)} if hue else {})})
    if not data:
        raise ConfigError(source, "--where" if where else "--y",
                          "no rows left to plot" + (f" after '{where}'" if where else ""))
    numeric_x = all(_num(d[x]) is not None for d in data)
    if pareto:
        if not numeric_x:
            raise ConfigError(source, "--pareto", f"column '{x}' is not numeric")
        front = pareto_front([_num(d[x]) for d in data], [d[y] for d in data],
                             maximize_x, maximize_y)
        for d, on in zip(data, front):
            d["pareto"] = on
    xs_of = (lambda pts: [_num(d[x]) for d in pts]) if numeric_x else (
        lambda pts: [str(d[x]) for d in pts])
    fig = _figure()
    ax = fig.add_subplot()
    hue_values = [_num(d[hue]) for d in data] if hue else []
    scale = (hue is not None and all(v is not None for v in hue_values)
             and len(set(hue_values)) > HUE_CATEGORIES)
    if scale:
        sc = ax.scatter(xs_of(data), [d[y] for d in data], c=hue_values, cmap="viridis",
                        s=18)
        fig.colorbar(sc, ax=ax, label=hue)
    else:
        groups = sorted({str(d[hue]) for d in data},
                        key=lambda g: (_num(g) is None, _num(g) or 0.0, g)) if hue else [None]
        for g in groups:
            pts = [d for d in data if hue is None or str(d[hue]) == g]
            ax.scatter(xs_of(pts), [d[y] for d in pts], s=18,
                       label=f"{hue}={g}" if hue else None)
    if pareto:
        pts = sorted((d for d in data if d["pareto"]), key=lambda d: (_num(d[x]), d[y]))
        ax.scatter(xs_of(pts), [d[y] for d in pts], s=80, facecolors="none",
                   edgecolors="black", linewidths=1.2, zorder=3,
                   label=f"Pareto front ({len(pts)})")
        ax.plot(xs_of(pts), [d[y] for d in pts], color="black", linewidth=0.8,
                drawstyle="steps-post", zorder=2)
    ax.set_xlabel(x + (" (higher is better)" if maximize_x else ""))
    ax.set_ylabel(y + (" (higher is better)" if maximize_y else ""))
    if where:
        ax.set_title(f"where {where}", fontsize="small")
    if (hue and not scale) or pareto:
        ax.legend(fontsize="small")
    return fig, data


# ---------------------------------------------------------------------------------------
# One run


def run_plot(result: Any) -> tuple[Any, list[dict]]:
    """``simwall run --plot``: the step-time breakdown, per-stage memory against capacity
    and, when ``result`` carries trace events, memory over the step of stage 0."""
    timeline = any(e.get("ph") == "C" for e in result.trace_events)
    fig = _figure(15 if timeline else 10, 4.5)
    axes = fig.subplots(1, 3 if timeline else 2)
    ax1, ax2 = axes[0], axes[1]
    b = {k: float(result.breakdown_s[k]) for k in _BREAKDOWN}
    _stacked(ax1, ["step"], {k: [v] for k, v in b.items()})
    ax1.set_ylabel("seconds")
    ax1.set_title(f"step {result.step_time_s:.3f} s")
    ax1.legend(fontsize="x-small")
    mem = result.memory
    labels = [f"s{d['stage']}" for d in mem["devices"]]
    _stacked(ax2, labels, {k[:-6]: [d.get(k, 0.0) / 1e9 for d in mem["devices"]] for k in _MEMORY})
    ax2.axhline(mem["capacity_bytes"] / 1e9, color="black", linestyle="--", label="capacity")
    ax2.set_ylabel("GB per device")
    ax2.set_title("memory per stage")
    ax2.legend(fontsize="x-small")
    data = [{"kind": "breakdown", "label": k, "value": v} for k, v in b.items()]
    data += [{"kind": "memory", "label": f"stage {d['stage']}",
              "value": float(d["peak_bytes"])} for d in mem["devices"]]
    if timeline:
        points = _timeline(result, axes[2])
        data += [{"kind": "timeline", "label": f"{p['time_s']:.6g} s",
                  "value": p["total_bytes"]} for p in points]
    fig.suptitle(f"{result.workload} on {result.cluster} ({result.world} x {result.device})")
    return fig, data


def plot_for_roofline(path: str, rows: list[dict], device: Any) -> list[dict]:
    """What ``simwall roofline --plot FILE`` draws (see :func:`roofline_plot`)."""
    precision = rows[0]["precision"] if rows and "precision" in rows[0] else "bf16"
    fig, data = roofline_plot(rows, device, precision)
    save(fig, path)
    return data


# ---------------------------------------------------------------------------------------
# Text


def render_rows(rows: list[dict[str, Any]]) -> str:
    """A plain text table of ``rows`` (columns of the first row)."""
    if not rows:
        return "(no data)"
    cols = list(rows[0])

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.6g}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    width = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, width))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, width)) for row in cells]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Cluster design


def design_plot(rows: list[dict[str, Any]]) -> tuple[Any, list[dict]]:
    """Throughput per GPU against energy per token, one marker per (cluster, workload)
    row of :func:`simwall.studies.design.design` (one panel per workload, since their
    scales differ); rows without a fitting plan or without energy figures are left out."""
    data = [{"workload": r["workload"], "cluster": r["cluster"],
             "tokens_per_s_per_device": r["tokens_per_s"] / r["devices"],
             "j_per_token": r["j_per_token"], "step_time_s": r["step_time_s"]}
            for r in rows if r.get("step_time_s") is not None
            and r.get("j_per_token") is not None]
    workloads = list(dict.fromkeys(d["workload"] for d in data)) or ["(none)"]
    clusters = list(dict.fromkeys(d["cluster"] for d in data))
    fig = _figure(4.8 * len(workloads), 4.2)
    axes = fig.subplots(1, len(workloads), squeeze=False)[0]
    markers = "osD^v<>p*h"
    for ax, w in zip(axes, workloads):
        for d in (d for d in data if d["workload"] == w):
            i = clusters.index(d["cluster"])
            # Shrinking markers: designs that tie (same plan, same time) stay visible.
            ax.scatter([d["j_per_token"]], [d["tokens_per_s_per_device"]],
                       marker=markers[i % len(markers)], s=max(20, 140 - 40 * i),
                       label=d["cluster"], color=f"C{i}", edgecolors="black",
                       linewidths=0.5, zorder=2 + i)
        ax.set_xlabel("energy per token (J)")
        ax.set_ylabel("tokens/s per GPU")
        ax.set_title(w)
        ax.ticklabel_format(useOffset=False, style="plain")
        ax.legend(fontsize="x-small")
    fig.suptitle("simwall design: each cluster with its best plan")
    fig.subplots_adjust(wspace=0.4)
    return fig, data
