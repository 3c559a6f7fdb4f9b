"""Cluster design (``simwall design``): several clusters against one or more workloads,
each pair with the best plan the plan search finds for it.

For every (cluster, workload) pair :func:`design` runs :func:`simwall.studies.search.
search` (the plan search of ``simwall plan``), keeps the fastest plan that fits, and
reports its step time, MFU, memory verdict, energy per token and cost per million tokens
(:mod:`simwall.costing.energy`; cost only when the cluster sets
``price_per_device_hour``), and the binding resource: the resource whose growth shortens
that plan's step most, by the elasticities of ``simwall whatif``
(:func:`simwall.studies.whatif.elasticities`, six more simulations of the best plan per
pair). Comparing designs by their own best plans, not by one fixed plan, is the point:
a fabric that forces a different plan is judged on that plan.

The library never prints; ``simwall design`` is :mod:`simwall.cli.design`.
"""

from __future__ import annotations

from typing import Any

from ..config import ClusterSpec, Workload
from ..engine.prepare import load_inputs
from ..errors import ConfigError
from .progress import Progress, tracked
from .search import describe_plan, plan_overrides, search
from .whatif import elasticities

__all__ = ["DESIGN_COLUMNS", "binding_resource", "design", "design_records", "render_design"]

#: Columns of one design row (``--format json|csv``), in order; ``elasticity.<axis>``
#: columns follow, one per resource of :data:`simwall.studies.whatif.AXES` measured.
DESIGN_COLUMNS = (
    "workload", "cluster", "inter_topology", "devices", "plan", "step_time_s",
    "tokens_per_s", "mfu", "fits", "peak_bytes", "capacity_bytes", "j_per_token",
    "w_per_device", "cost_per_million_tokens", "binding", "plans_considered",
    "plans_fit", "plans_simulated",
)

#: Bytes per GB in the table (SI, as device datasheets use).
GB = 1e9


def binding_resource(el: dict[str, float]) -> str | None:
    """The resource with the most negative elasticity (ties broken by name), as
    ``simwall whatif`` names it; None when no resource shortens the step."""
    if not el:
        return None
    bind = min(el, key=lambda k: (el[k], k))
    return bind if el[bind] < 0 else None


def _labels(names: list[str]) -> list[str]:
    """``names`` (of the clusters, or of the workloads), made unique with ``#i`` where two
    share one."""
    return [n if names.count(n) == 1 else f"{n}#{i + 1}" for i, n in enumerate(names)]


def design(workloads: list[str | Workload], clusters: list[str | ClusterSpec],
           overrides: dict[str, Any] | None = None, top_plans: int = 1,
           with_binding: bool = True, progress: Progress | None = None
           ) -> list[dict[str, Any]]:
    """One row per (cluster, workload) pair, clusters outer, in the order given.

    ``overrides`` (key paths, ``cluster.`` for cluster keys) apply to every pair.
    ``top_plans``: the search's ``top`` (it confirms ``3 x top_plans`` plans with the
    engine; the row takes the fastest that fits). ``with_binding``: measure the
    elasticities of the best plan (6 simulations) and name the binding resource.
    Keys of a row: :data:`DESIGN_COLUMNS` plus ``elasticities`` (axis -> value).
    """
    for name, given in (("workloads", workloads), ("clusters", clusters)):
        if isinstance(given, (str, Workload, ClusterSpec)):
            raise ConfigError("design", name, f"expected a list (e.g. [{given!r}]), got "
                              f"one {type(given).__name__}")
    if not workloads:
        raise ConfigError("design", "workloads", "give at least one workload")
    if not clusters:
        raise ConfigError("design", "--cluster", "give at least one cluster")
    if not isinstance(top_plans, int) or isinstance(top_plans, bool) or top_plans < 1:
        raise ConfigError("--top-plans", None, f"expected an integer >= 1, got {top_plans!r}")
    overrides = dict(overrides or {})
    # Load (and validate) everything first: a bad input fails before any long search.
    loaded = [[load_inputs(w, c, overrides) for w in workloads] for c in clusters]
    labels = _labels([pairs[0][1].name for pairs in loaded])
    names = _labels([wl.name for wl, _ in loaded[0]])
    pairs = [(label, name, wl, cl) for label, row in zip(labels, loaded)
             for name, (wl, cl) in zip(names, row)]
    rows = []
    for label, name, wl, cl in tracked(progress, pairs, total=len(pairs), desc="pairs"):
        rows.append(_row(label, name, wl, cl, top_plans, with_binding, progress))
    return rows


def _row(label: str, name: str, wl: Workload, cl: ClusterSpec, top_plans: int,
         with_binding: bool, progress: Progress | None) -> dict[str, Any]:
    """The row of workload ``wl`` (labelled ``name``) on cluster ``cl`` (``label``)."""
    res = search(wl, cl, top=top_plans, progress=progress)
    row: dict[str, Any] = {k: None for k in DESIGN_COLUMNS}
    row.update({"workload": name, "cluster": label,
                "inter_topology": cl.inter.topology, "devices": res.world, "fits": False,
                "plans_considered": res.considered, "plans_fit": res.fitting,
                "plans_simulated": res.confirmed, "elasticities": {}})
    if not res.ranked:
        return row
    best = res.ranked[0]
    r, plan = best.result, best.candidate.plan
    energy = r.energy or {}
    cost = energy.get("cost") or {}
    row.update({"plan": describe_plan(plan), "step_time_s": r.step_time_s,
                "tokens_per_s": r.tokens_per_s, "mfu": r.mfu, "fits": r.fits,
                "peak_bytes": r.memory["peak_bytes"],
                "capacity_bytes": r.memory["capacity_bytes"],
                "j_per_token": energy.get("j_per_token"),
                "w_per_device": energy.get("power_w_per_device"),
                "cost_per_million_tokens": cost.get("cost_per_million_tokens")})
    if with_binding:
        over = plan_overrides(plan)
        if wl.plan.stage_layers is not None:   # as Searcher.prepared does
            over["plan.stage_layers"] = list(plan.stage_layers)
        # The search sized ``nodes: auto``; the elasticity runs use the same devices.
        if cl.nodes == "auto":
            over["cluster.nodes"] = res.world // cl.devices_per_node
        el = elasticities(wl, cl, over)
        row["elasticities"] = el
        row["binding"] = binding_resource(el)
    return row


def design_records(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat records (``--format json|csv``): :data:`DESIGN_COLUMNS`, then
    ``elasticity.<axis>`` for every axis measured in any row (None where not)."""
    axes = sorted({a for r in rows for a in r.get("elasticities", {})})
    return [{**{k: r.get(k) for k in DESIGN_COLUMNS},
             **{f"elasticity.{a}": r.get("elasticities", {}).get(a) for a in axes}}
            for r in rows]


def _fmt(value: Any, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def render_design(rows: list[dict[str, Any]], top_plans: int = 1) -> str:
    """The design table: one line per (cluster, workload) pair; ``vs best`` is the step
    time against the fastest cluster for that workload, ``NIC el.`` the elasticity of the
    step time to the inter-node link bandwidth (``simwall whatif``)."""
    lines = [(f"simwall design: {len({r['workload'] for r in rows})} workload(s) x "
              f"{len({r['cluster'] for r in rows})} cluster(s); per pair the fastest fitting "
              f"plan of the {3 * top_plans} the search simulates"),
             (f"{'workload':<12} {'cluster':<22} {'GPUs':>5}  {'best plan':<56} {'step s':>8} "
              f"{'vs best':>9} {'MFU':>6} {'fits':>4} {'peak GB':>7} {'J/token':>8} {'$/Mtok':>7} "
              f"{'NIC el.':>7}  binding")]
    best_s = {w: min(r["step_time_s"] for r in rows
                     if r["workload"] == w and r["step_time_s"] is not None)
              for w in {r["workload"] for r in rows if r["step_time_s"] is not None}}
    for r in rows:
        if r["plan"] is None:
            lines.append(f"{r['workload']:<12} {r['cluster']:<22} {r['devices']:>5}  "
                         f"{'no plan fits':<56} {'-':>8} {'-':>6} {'no':>4}")
            continue
        lines.append(
            f"{r['workload']:<12} {r['cluster']:<22} {r['devices']:>5}  {r['plan']:<56} "
            f"{r['step_time_s']:>8.4f} "
            f"{(r['step_time_s'] / best_s[r['workload']] - 1) * 100:>+8.3f}% "
            f"{r['mfu'] * 100:>5.1f}% "
            f"{'yes' if r['fits'] else 'no':>4} {r['peak_bytes'] / GB:>7.1f} "
            f"{_fmt(r['j_per_token'], '.4f'):>8} {_fmt(r['cost_per_million_tokens'], '.4f'):>7} "
            f"{_fmt(r['elasticities'].get('nic'), '+.4f'):>7}  {r['binding'] or '-'}")
    for w in sorted({r["workload"] for r in rows}):
        done = [r for r in rows if r["workload"] == w and r["step_time_s"] is not None]
        if len(done) > 1:
            tied = [r["cluster"] for r in done if r["step_time_s"] == best_s[w]]
            lines.append(f"fastest for {w} ({best_s[w]:.4f} s): {', '.join(tied)}"
                         + (" (tied exactly)" if len(tied) > 1 else ""))
    return "\n".join(lines)
