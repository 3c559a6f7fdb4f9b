"""``simwall validate``: simwall's predictions against published runs, and the A100 fit.

A *case file* (YAML) holds published measurements with the configuration that produced
them; simwall simulates each configuration (the published answer is never an input) and
reports the signed error ``predicted / published - 1``, and per source the mean absolute
and the worst error. Bundled case files live in ``simwall/cases/``; ``--cases FILE`` runs a
user's own. Format (every key but ``cases`` optional unless said)::

    source: "Who, where, which table"      # required: shown with the results
    kind: throughput                         # throughput | memory | activation | energy
    workload: megatron-1t                    # base workload (bundled name or path)
    cluster: dgx-a100                        # base cluster (bundled name or path)
    common: {plan.recompute: full}           # overrides applied to every case
    cases:                                   # required, one mapping per measurement
      - name: "1.7B"                         # required
        fit: true                            # a row the efficiency constants were fitted on
        plan.tp: 1                           # any other key: an override (--set syntax;
        cluster.nodes: 4                     #   cluster.* keys go to the cluster)
        published: {hardware_tflops_per_device: 137}   # required: one metric

Metrics per kind (the key under ``published``):

- ``throughput``: ``hardware_tflops_per_device`` (recompute counted, as Narayanan et al.
  2021 count), ``model_tflops_per_device``, ``step_time_s``, ``tokens_per_s``; one
  simulated step. Each throughput case also gets a memory verdict (``fits``: the
  simulated peak per device within the device's capacity): a run that was published
  happened, so it must fit.
- ``memory``: ``model_state_gb`` (weights + gradients + optimizer state per device, 1 GB =
  1e9 B) for ``params`` parameters on ``dp`` ranks at ZeRO stage ``zero`` (keys of the
  case), training settings from ``training.*`` keys.
- ``activation``: ``activation_bytes_per_layer`` (saved activations of one layer, one
  micro-batch, one device) of the resolved workload and plan.
- ``energy``: ``j_per_step`` (joules of one simulated step of the whole cluster),
  ``j_per_token`` (the step's energy over its ``global_batch x seq_len`` tokens) and
  ``w_per_device`` (the step's average power per device), each with the case's
  ``cluster.power_overhead`` and ``cluster.pue`` (docs/energy.md). A published energy
  covers what was metered (GPU only, node, facility): the case sets those two keys to
  match, and says so.

:func:`fit` re-fits the device efficiency constants (``gemm_max``, ``memory_bw``) on the
cases marked ``fit`` by least squares of the relative error over a small grid, and gives
the leave-one-out error of each fit case (refit without it, predict it).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..api import prepare, run_prepared
from ..config import EfficiencySpec, TrainingSpec, load_yaml
from ..engine.confidence import COVERAGE_FILE, links_used
from ..errors import ConfigError, SimwallError
from ..hardware.efficiency import efficiency_of
from ..model.memory import model_state_bytes
from ..model.ops import activation_bytes_per_layer
from .progress import Progress, tracked

__all__ = ["FIT_GRID", "Case", "CaseFile", "CaseResult", "FitResult", "bundled_case_files",
           "coverage", "coverage_path", "coverage_text", "evaluate", "fit", "load_cases", "memory_summary", "predict", "render", "run_cases",
           "summarize"]

KINDS = {
    "throughput": ("hardware_tflops_per_device", "model_tflops_per_device", "step_time_s",
                   "tokens_per_s"),
    "memory": ("model_state_gb",),
    "activation": ("activation_bytes_per_layer",),
    "energy": ("j_per_step", "j_per_token", "w_per_device"),
}
_CASE_KEYS = ("name", "fit", "published", "note")

#: The grid :func:`fit` searches: the two efficiency constants that carry most of the gap
#: between the roofline and measured A100 throughput (docs/validation.md, "Calibration").
#: ``gemm_half_flop`` is not fitted: on Table 1 it only helps at values (>= 1e10 FLOP per
#: GEMM) that would mean ~40 us of fixed cost per kernel, which no GEMM library shows.
FIT_GRID: dict[str, tuple[float, ...]] = {
    "gemm_max": tuple(round(0.60 + 0.02 * i, 2) for i in range(11)),      # 0.60 .. 0.80
    "memory_bw": tuple(round(0.40 + 0.05 * i, 2) for i in range(11)),     # 0.40 .. 0.90
}


@dataclass(frozen=True)
class Case:
    """One published measurement: its configuration (overrides) and answer."""

    name: str
    overrides: dict[str, Any]
    metric: str
    published: float
    fit: bool = False
    note: str = ""


@dataclass(frozen=True)
class CaseFile:
    source: str
    kind: str
    workload: str
    cluster: str
    cases: tuple[Case, ...]
    path: str = ""


@dataclass(frozen=True)
class CaseResult:
    source: str
    kind: str
    name: str
    metric: str
    published: float
    predicted: float
    fit: bool
    #: Memory verdict of a throughput case (the simulated peak within capacity); None for
    #: memory and activation cases, which simulate no step.
    fits: bool | None = None
    peak_bytes: float | None = None        # simulated peak per device (throughput cases)
    capacity_bytes: float | None = None    # the device's usable capacity
    case_file: str = ""                    # the case file's stem (coverage table label)
    device: str | None = None              # the simulated device (throughput cases)
    links: tuple[str, ...] = ()            # link classes the simulated step used

    @property
    def error(self) -> float:
        """Signed relative error, ``predicted / published - 1``."""
        return self.predicted / self.published - 1.0

    def as_dict(self) -> dict:
        return {"source": self.source, "kind": self.kind, "name": self.name,
                "metric": self.metric, "published": self.published,
                "predicted": self.predicted, "error_pct": 100.0 * self.error,
                "fit": self.fit, "fits": self.fits, "peak_bytes": self.peak_bytes,
                "capacity_bytes": self.capacity_bytes}


# ---------------------------------------------------------------------------------------
# Loading


def bundled_case_files() -> list[Path]:
    """The case files shipped in ``simwall/cases/``, sorted by name."""
    folder = resources.files("simwall.cases")
    return sorted(Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml"))


def load_cases(path: str | Path) -> CaseFile:
    """Read and check one case file (see the module docstring for the format)."""

    src = str(path)
    doc = load_yaml(path)
    if not isinstance(doc, dict):
        raise ConfigError(src, None, "a case file is a mapping with 'source' and 'cases'")
    unknown = set(doc) - {"source", "kind", "workload", "cluster", "common", "cases"}
    if unknown:
        raise ConfigError(src, min(unknown), "unknown key (expected source, kind, "
                          "workload, cluster, common, cases)")
    source = doc.get("source")
    if not isinstance(source, str) or not source:
        raise ConfigError(src, "source", "required: who published the numbers, and where")
    kind = doc.get("kind", "throughput")
    if kind not in KINDS:
        raise ConfigError(src, "kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
    common = doc.get("common") or {}
    if not isinstance(common, dict):
        raise ConfigError(src, "common", "expected a mapping of overrides")
    rows = doc.get("cases")
    if not isinstance(rows, list) or not rows:
        raise ConfigError(src, "cases", "required: a non-empty list of cases")
    cases = []
    for i, row in enumerate(rows):
        key = f"cases[{i}]"
        if not isinstance(row, dict):
            raise ConfigError(src, key, "expected a mapping")
        name = row.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(src, f"{key}.name", "required")
        pub = row.get("published")
        if not isinstance(pub, dict) or len(pub) != 1:
            raise ConfigError(src, f"{key}.published",
                              f"expected one metric, e.g. {{{KINDS[kind][0]}: 137}}")
        (metric, value), = pub.items()
        if metric not in KINDS[kind]:
            raise ConfigError(src, f"{key}.published.{metric}", f"unknown metric for kind "
                              f"{kind} (expected one of {', '.join(KINDS[kind])})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            raise ConfigError(src, f"{key}.published.{metric}",
                              f"expected a positive number, got {value!r}")
        fit_flag = row.get("fit", False)
        if not isinstance(fit_flag, bool):
            raise ConfigError(src, f"{key}.fit", "expected true or false")
        overrides = dict(common)
        overrides.update({k: v for k, v in row.items() if k not in _CASE_KEYS})
        cases.append(Case(name=name, overrides=overrides, metric=metric,
                          published=float(value), fit=fit_flag,
                          note=str(row.get("note", ""))))
    return CaseFile(source=source, kind=kind, workload=str(doc.get("workload", "gpt3-175b")),
                    cluster=str(doc.get("cluster", "dgx-a100")), cases=tuple(cases), path=src)


# ---------------------------------------------------------------------------------------
# Running


def _located(cf: CaseFile, case: Case, err: SimwallError) -> SimwallError:
    return SimwallError(f"{cf.path or cf.source}: case {case.name!r}: {err}")


def _with_efficiency(prep, efficiency: dict[str, float] | None):
    """``prep`` with its device's efficiency fields replaced (for the fit)."""
    if not efficiency:
        return prep

    dev = prep.device
    eff = EfficiencySpec(**{**efficiency_of(dev).model_dump(), **efficiency})
    return dataclasses.replace(prep, device=dev.model_copy(update={"efficiency": eff}))


def _prepare(cf: CaseFile, case: Case):
    return prepare(cf.workload, cf.cluster, dict(case.overrides))


#: Energy metric -> key of a step's ``energy`` figures (simwall.costing.energy.step_energy).
_ENERGY_KEYS = {"j_per_step": "energy_j", "j_per_token": "j_per_token",
                "w_per_device": "power_w_per_device"}


def _metric_of(r, metric: str) -> float:
    """``metric`` of one simulated step ``r`` (a StepResult)."""
    if metric in _ENERGY_KEYS:
        value = r.energy[_ENERGY_KEYS[metric]]
        if value is None:
            raise SimwallError(f"no energy figures: the device has no power entry in the "
                               f"catalog (metric {metric})")
        return float(value)
    if metric == "step_time_s":
        return r.step_time_s
    if metric == "tokens_per_s":
        return r.tokens_per_s
    flop = r.hardware_flop if metric == "hardware_tflops_per_device" else r.model_flop
    return flop / r.step_time_s / r.world / 1e12


def _throughput(prep, metric: str) -> float:
    return _metric_of(run_prepared(prep), metric)


def _memory(cf: CaseFile, case: Case) -> float:


    ov = case.overrides
    for key in ("params", "dp", "zero"):
        if key not in ov:
            raise ConfigError(cf.path or cf.source, f"{case.name}.{key}",
                              "required for a memory case")
    training = {k[len("training."):]: v for k, v in ov.items() if k.startswith("training.")}
    training.setdefault("global_batch", 1)
    try:
        spec = TrainingSpec.model_validate(training)
    except ValidationError as err:  # pydantic's message, one line
        raise ConfigError(cf.path or cf.source, f"{case.name}.training",
                          " ".join(str(err).split())) from None
    parts = model_state_bytes(float(ov["params"]), spec, int(ov["zero"]), int(ov["dp"]))
    return sum(parts) / 1e9


def _activation(prep) -> float:

    wl = prep.workload
    return float(activation_bytes_per_layer(wl.model, wl.training, prep.plan))


def predict(cf: CaseFile, case: Case, efficiency: dict[str, float] | None = None,
            prepared=None) -> float:
    """simwall's value of ``case.metric`` for ``case`` (``efficiency`` replaces device
    efficiency fields, for the fit)."""
    try:
        if cf.kind == "memory":
            return _memory(cf, case)
        prep = prepared if prepared is not None else _prepare(cf, case)
        if cf.kind == "activation":
            return _activation(prep)
        return _throughput(_with_efficiency(prep, efficiency), case.metric)
    except ConfigError as err:
        raise _located(cf, case, err) from None


def evaluate(cf: CaseFile, case: Case) -> CaseResult:
    """``case`` predicted with the catalog constants, with its memory verdict (throughput
    cases: the simulated step's peak per device against the capacity)."""
    base = dict(source=cf.source, kind=cf.kind, name=case.name, metric=case.metric,
                published=case.published, fit=case.fit,
                case_file=Path(cf.path).stem if cf.path else cf.source)
    if cf.kind not in ("throughput", "energy"):
        return CaseResult(**base, predicted=predict(cf, case))
    try:
        prep = _prepare(cf, case)
        r = run_prepared(prep)
        predicted = _metric_of(r, case.metric)
    except (ConfigError, SimwallError) as err:
        raise _located(cf, case, err) from None
    if cf.kind == "energy":     # a power figure, not a step-time or memory verdict
        return CaseResult(**base, predicted=predicted, device=prep.device.name,
                          links=links_used(prep.cluster, prep.plan))
    return CaseResult(**base, predicted=predicted, fits=r.fits,
                      peak_bytes=float(r.memory["peak_bytes"]),
                      capacity_bytes=float(r.memory["capacity_bytes"]),
                      device=prep.device.name,
                      links=links_used(prep.cluster, prep.plan))


def run_cases(case_files: Sequence[CaseFile], progress: Progress | None = None
              ) -> list[CaseResult]:
    """Predict every case of every file (catalog constants, no refitting), with memory
    verdicts for the throughput cases. ``progress``: hook the cases go through
    (:mod:`.progress`; None: silent)."""
    cases = [(cf, case) for cf in case_files for case in cf.cases]
    return [evaluate(cf, case)
            for cf, case in tracked(progress, cases, total=len(cases), desc="cases")]


def _stats(errors: list[float]) -> dict:
    if not errors:
        return {"n": 0, "mean_abs_pct": None, "worst_pct": None}
    worst = max(errors, key=abs)
    return {"n": len(errors), "mean_abs_pct": 100.0 * sum(abs(e) for e in errors) / len(errors),
            "worst_pct": 100.0 * worst}


def _memory_verdicts(rows: Sequence[CaseResult]) -> dict | None:
    """How many of ``rows`` (throughput cases) fit in memory, and which do not; None when
    no row has a verdict."""
    judged = [r for r in rows if r.fits is not None]
    if not judged:
        return None
    return {"n": len(judged), "fit": sum(r.fits for r in judged),
            "do_not_fit": [r.name for r in judged if not r.fits]}


def summarize(results: Sequence[CaseResult]) -> list[dict]:
    """Per source: all cases, fit cases, held-out cases (n, mean |error| %, worst %), and
    for throughput sources the memory verdicts (``memory``: n, fit, do_not_fit)."""
    out = []
    for source in dict.fromkeys(r.source for r in results):
        rows = [r for r in results if r.source == source]
        out.append({"source": source, "kind": rows[0].kind, "metric": rows[0].metric,
                    "all": _stats([r.error for r in rows]),
                    "fit": _stats([r.error for r in rows if r.fit]),
                    "held_out": _stats([r.error for r in rows if not r.fit]),
                    "memory": _memory_verdicts(rows)})
    return out


# ---------------------------------------------------------------------------------------
# Coverage: what the confidence statement of every run reads (simwall.engine.confidence)


def _group(rows: Sequence[CaseResult]) -> dict:
    """One coverage group: the rows of one case file (on one device or link)."""
    st = _stats([r.error for r in rows])
    return {"source": rows[0].source, "case_file": rows[0].case_file, "kind": rows[0].kind,
            "metric": rows[0].metric, "cases": st["n"],
            "mean_abs_error_pct": round(st["mean_abs_pct"], 2),
            "worst_error_pct": round(st["worst_pct"], 2)}


def _groups(rows: Sequence[CaseResult]) -> list[dict]:
    by_file = {}
    for r in rows:
        by_file.setdefault(r.case_file, []).append(r)
    return [_group(g) for g in by_file.values()]


def coverage(results: Sequence[CaseResult]) -> dict:
    """The coverage table of ``results`` (bundled cases: ``simwall/cases/coverage.json``):
    per device and per link class, the whole-step (throughput) cases that ran on it,
    grouped by case file (cases, mean |error| %, worst signed error %, rounded to 0.01);
    ``formulas``: the device-independent memory and activation groups; ``energy``: the
    energy groups (one per case file), apart from the step-time groups."""
    steps = [r for r in results if r.kind == "throughput" and r.device]
    devices = sorted({r.device for r in steps})
    links = sorted({name for r in steps for name in r.links})
    return {
        "generated_by": "simwall validate --write-coverage (from the bundled case files)",
        "devices": {d: _groups([r for r in steps if r.device == d]) for d in devices},
        "links": {k: _groups([r for r in steps if k in r.links]) for k in links},
        "formulas": _groups([r for r in results if r.kind in ("memory", "activation")]),
        "energy": _groups([r for r in results if r.kind == "energy"]),
    }


def coverage_text(results: Sequence[CaseResult]) -> str:
    """:func:`coverage` as the stored file's text (sorted keys, indent 2, final newline)."""
    return json.dumps(coverage(results), indent=2, sort_keys=True) + "\n"


def coverage_path() -> Path:
    """Where the bundled coverage table lives (``simwall/cases/coverage.json``)."""
    return Path(str(resources.files("simwall.cases").joinpath(COVERAGE_FILE)))


# ---------------------------------------------------------------------------------------
# Fitting


@dataclass(frozen=True)
class FitResult:
    """Least-squares grid fit of efficiency constants on the ``fit`` cases of one file."""

    source: str
    grid: dict[str, tuple[float, ...]]
    best: dict[str, float]                 # fitted on all fit cases
    fit_errors: dict[str, float]           # name -> relative error at ``best``
    loo: dict[str, dict]                   # name -> {"params": ..., "error": ...}
    held_out: dict[str, float] = field(default_factory=dict)   # name -> error at ``best``

    def as_dict(self) -> dict:
        return {"source": self.source, "grid": {k: list(v) for k, v in self.grid.items()},
                "best": self.best,
                "fit_error_pct": {k: 100 * v for k, v in self.fit_errors.items()},
                "held_out_error_pct": {k: 100 * v for k, v in self.held_out.items()},
                "loo": {k: {"params": v["params"], "error_pct": 100 * v["error"]}
                        for k, v in self.loo.items()},
                "loo_summary": _stats([v["error"] for v in self.loo.values()]),
                "out_of_sample_summary": self.out_of_sample()}

    def out_of_sample(self) -> dict:
        """Every case predicted without itself in the fit: held-out cases at the fitted
        point, fit cases by leave-one-out."""
        return _stats(list(self.held_out.values()) + [v["error"] for v in self.loo.values()])


def fit(cf: CaseFile, grid: dict[str, tuple[float, ...]] | None = None,
        held_out: bool = True, progress: Progress | None = None) -> FitResult:
    """Fit the device efficiency fields in ``grid`` on ``cf``'s ``fit`` cases.

    Objective: the sum of squared relative errors over the fit cases; ties go to the
    first grid point (grid order is deterministic). Leave-one-out: for each fit case,
    the grid point best on the other fit cases, and that point's error on the case.
    ``held_out``: also predict the other cases at the best point. ``progress``: hook
    the grid evaluations go through (:mod:`.progress`; None: silent).
    """
    if cf.kind != "throughput":
        raise SimwallError(f"{cf.source}: only throughput cases can be fitted")
    grid = dict(grid or FIT_GRID)
    rows = [c for c in cf.cases if c.fit]
    if len(rows) < 2:
        raise SimwallError(f"{cf.source}: at least two cases need 'fit: true' to fit")
    names = list(grid)
    points = [dict(zip(names, values)) for values in _product([grid[n] for n in names])]
    preps = {}
    for c in rows:
        try:
            preps[c.name] = _prepare(cf, c)
        except ConfigError as err:
            raise _located(cf, c, err) from None
    evals = [(c, i, p) for c in rows for i, p in enumerate(points)]
    err = {(c.name, i): predict(cf, c, p, preps[c.name]) / c.published - 1.0
           for c, i, p in tracked(progress, evals, total=len(evals),
                                  desc=f"fitting {Path(cf.source).name}")}

    def best_on(subset: list[Case]) -> int:
        return min(range(len(points)),
                   key=lambda i: (sum(err[(c.name, i)] ** 2 for c in subset), i))

    b = best_on(rows)
    loo = {}
    for c in rows:
        i = best_on([o for o in rows if o is not c])
        loo[c.name] = {"params": points[i], "error": err[(c.name, i)]}
    others = {}
    if held_out:
        for c in cf.cases:
            if not c.fit:
                others[c.name] = predict(cf, c, points[b]) / c.published - 1.0
    return FitResult(source=cf.source, grid=grid, best=points[b],
                     fit_errors={c.name: err[(c.name, b)] for c in rows}, loo=loo,
                     held_out=others)


def _product(lists: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
    out: list[tuple[float, ...]] = [()]
    for values in lists:
        out = [prev + (v,) for prev in out for v in values]
    return out


# ---------------------------------------------------------------------------------------
# Rendering


def _num(x: float) -> str:
    if x < 1:                      # joules per token
        return f"{x:.4f}"
    if x >= 1e6:
        return f"{x:.4g}"
    return f"{x:.2f}" if x < 100 else f"{x:.1f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1f}%"


def _abs_pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}%"


def _summary_line(s: dict) -> str:
    a, f, h = s["all"], s["fit"], s["held_out"]
    text = f"mean |error| {_abs_pct(a['mean_abs_pct'])}, worst {_pct(a['worst_pct'])} " \
           f"({a['n']} cases)"
    if f["n"]:
        text += f"; fit cases {_abs_pct(f['mean_abs_pct'])} / {_pct(f['worst_pct'])}, " \
                f"held out {_abs_pct(h['mean_abs_pct'])} / {_pct(h['worst_pct'])}"
    m = s.get("memory")
    if m:
        text += f"; {m['fit']} of {m['n']} fit in memory"
    return text


def _fits(r: CaseResult) -> str:
    return "yes" if r.fits else "NO"


def memory_summary(results: Sequence[CaseResult]) -> dict | None:
    """Memory verdicts over every throughput case (n, fit, do_not_fit); None if none."""
    return _memory_verdicts(results)


def _memory_line(m: dict) -> str:
    """The closing line: how many published runs simwall says do not fit."""
    if m["n"] == 1:
        return ("memory: the published run fits" if not m["do_not_fit"] else
                f"memory: the published run does NOT fit: {m['do_not_fit'][0]}")
    if not m["do_not_fit"]:
        return f"memory: all {m['n']} published runs fit"
    return (f"memory: {len(m['do_not_fit'])} of {m['n']} published runs do NOT fit: "
            + ", ".join(m["do_not_fit"]))


def render(results: Sequence[CaseResult], fits: Sequence[FitResult] = (),
           fmt: str = "table") -> str:
    """Results (and leave-one-out fits) as ``table``, ``json`` or ``markdown``."""
    summary = summarize(results)
    memory = memory_summary(results)
    if fmt == "json":
        return json.dumps({"cases": [r.as_dict() for r in results], "summary": summary,
                           "memory": memory, "fits": [f.as_dict() for f in fits]}, indent=2)
    md = fmt == "markdown"
    lines: list[str] = []
    for s in summary:
        rows = [r for r in results if r.source == s["source"]]
        judged = s["memory"] is not None      # a fits column for throughput sources
        if md:
            lines += [f"### {s['source']}", "",
                      f"Kind `{s['kind']}`, metric `{s['metric']}`.", "",
                      "| case | fit | published | simwall | error |" + (" fits |" if judged else ""),
                      "| --- | --- | ---: | ---: | ---: |" + (" --- |" if judged else "")]
            lines += [f"| {r.name} | {'fit' if r.fit else ''} | {_num(r.published)} | "
                      f"{_num(r.predicted)} | {_pct(100 * r.error)} |"
                      + (f" {_fits(r)} |" if judged else "") for r in rows]
            lines += ["", f"**{_summary_line(s)}.**", ""]
        else:
            lines += [f"{s['source']}  [{s['kind']}: {s['metric']}]"]
            width = max(len(r.name) for r in rows)
            lines += [(f"  {'case':<{width}}  fit  {'published':>10}  {'simwall':>10}  "
                       f"{'error':>7}" + ("  fits" if judged else ""))]
            lines += [f"  {r.name:<{width}}  {'fit' if r.fit else '   '}  "
                      f"{_num(r.published):>10}  {_num(r.predicted):>10}  "
                      f"{_pct(100 * r.error):>7}" + (f"  {_fits(r):>4}" if judged else "")
                      for r in rows]
            lines += [f"  {_summary_line(s)}", ""]
    if memory is not None:
        lines += [f"**{_cap(_memory_line(memory))}.**" if md else _memory_line(memory), ""]
    for f in fits:
        lines += _render_fit(f, md)
    return "\n".join(lines).rstrip() + "\n"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _render_fit(f: FitResult, md: bool) -> list[str]:
    d = f.as_dict()
    loo, oos = d["loo_summary"], d["out_of_sample_summary"]
    best = ", ".join(f"{k} {v:g}" for k, v in f.best.items())
    grid = "; ".join(f"{k} {min(v):g}..{max(v):g} ({len(v)} values)"
                     for k, v in f.grid.items())
    folds = [(name, ", ".join(f"{k} {v:g}" for k, v in e["params"].items()),
              _pct(e["error_pct"])) for name, e in d["loo"].items()]
    loo_text = (f"leave-one-out: mean |error| {_abs_pct(loo['mean_abs_pct'])}, worst "
                f"{_pct(loo['worst_pct'])} ({loo['n']} folds)")
    oos_text = ("out of sample (held-out cases at the fit, fit cases by leave-one-out): "
                f"mean |error| {_abs_pct(oos['mean_abs_pct'])}, worst "
                f"{_pct(oos['worst_pct'])} ({oos['n']} cases)")
    if md:
        lines = [f"### Leave-one-out: {f.source}", "",
                 f"Grid: {grid}. Fitted on all fit cases: {best}.", "",
                 "| left-out case | refit on the others | error on the left-out case |",
                 "| --- | --- | ---: |"]
        lines += [f"| {name} | {params} | {err} |" for name, params, err in folds]
        return [*lines, "", f"**{_cap(loo_text)}. {_cap(oos_text)}.**", ""]
    lines = [f"leave-one-out: {f.source}", f"  grid: {grid}",
             f"  fitted on all fit cases: {best}"]
    lines += [f"  without {name}: {params} -> error {err}" for name, params, err in folds]
    return [*lines, f"  {loo_text}", f"  {oos_text}", ""]
