"""How far to trust a result: which of its device and link models were validated against
published runs (``simwall validate``), and the error seen there.

The coverage table, ``simwall/cases/coverage.json``, is generated from the bundled case
files by ``simwall validate --write-coverage`` (:func:`simwall.studies.validate.coverage`);
tests/test_validate.py recomputes it and fails when the stored table is stale, so it cannot
drift from what ``simwall validate`` measures. Running the validation on every run would
cost seconds; reading the table costs nothing. docs/validation.md, "Confidence statement".

A device is *validated* when whole-step throughput cases ran on it (the same catalog name:
a what-if device, renamed after what it changes, is not); a link class when whole-step
cases ran on clusters that use it (intra-node always, inter-node with more than one node,
the host link only with offload). Memory and activation formulas are device-independent
and are listed apart.
"""

from __future__ import annotations

import json
from importlib import resources

from ..config import ClusterSpec, LinkRef
from ..hardware.catalog import link_base
from ..memo import memoized
from ..plan import Plan

__all__ = ["COVERAGE_FILE", "confidence", "coverage_table", "link_name", "links_used"]

#: The generated coverage table, in the ``simwall.cases`` package.
COVERAGE_FILE = "coverage.json"


def link_name(link: str | LinkRef) -> str:
    """The catalog name of a link choice; a changed catalog link (bandwidth, latency or
    efficiency replaced) is ``"<base> (changed)"``, which no validation covers."""
    if isinstance(link, str):
        return link
    changed = any(v is not None for v in (link.bandwidth_bytes_per_s, link.latency_s,
                                          link.efficiency))
    return f"{link.base} (changed)" if changed else link.base


def links_used(cluster: ClusterSpec, plan: Plan, context=None) -> tuple[str, ...]:
    """The link classes a step of ``plan`` on ``cluster`` uses: intra-node, inter-node
    (more than one node), host (offload only); in that order, without repeats.
    ``context``: the topology's build context, whose level links an explicit graph sets
    from its own links (:func:`simwall.net.build.build_topology`)."""
    def level(name: str) -> str:
        ref = getattr(cluster, name).link
        spec = getattr(context, f"{name}_link", None) if cluster.graph is not None else None
        return (spec.name if spec is not None and spec.name != link_base(ref)
                else link_name(ref))

    names = [level("intra")]
    if cluster.nodes != 1:
        names.append(level("inter"))
    if plan.offload != "none":
        names.append(link_name(cluster.host.link))
    return tuple(dict.fromkeys(names))


@memoized(maxsize=1)
def _coverage_text() -> str:
    path = resources.files("simwall.cases").joinpath(COVERAGE_FILE)
    return path.read_text(encoding="utf-8") if path.is_file() else "{}"


def coverage_table() -> dict:
    """The stored coverage table (a fresh copy): ``devices`` and ``links`` map a name to
    its validation groups, ``formulas`` lists the device-independent ones; each group is
    ``{source, case_file, kind, metric, cases, mean_abs_error_pct, worst_error_pct}``."""
    return json.loads(_coverage_text())


def _pooled(groups: list[dict]) -> tuple[int, float, float]:
    """(cases, mean |error| % over all of them, worst signed error %) of ``groups``."""
    n = sum(g["cases"] for g in groups)
    mean = sum(g["mean_abs_error_pct"] * g["cases"] for g in groups) / n
    worst = max((g["worst_error_pct"] for g in groups), key=abs)
    return n, mean, worst


def _stated(groups: list[dict]) -> str:
    n, mean, worst = _pooled(groups)
    files = ", ".join(dict.fromkeys(g["case_file"] for g in groups))
    return (f"validated against {files} ({n} published runs, mean |error| {mean:.1f}%, "
            f"worst {worst:+.1f}%)")


def confidence(device: str, links: tuple[str, ...]) -> dict:
    """The confidence statement of a run on ``device`` over the link classes ``links``:
    ``{device, device_validated, validated_against: [group...], links: [{link, validated,
    validated_against}], formulas: [group...], summary}``; ``summary`` is one line."""
    table = coverage_table()
    dev_groups = table.get("devices", {}).get(device, [])
    link_rows = [{"link": name, "validated": bool(table.get("links", {}).get(name)),
                  "validated_against": table.get("links", {}).get(name, [])}
                 for name in links]
    text = f"{device} " + (_stated(dev_groups) if dev_groups
                           else "not validated (no published run on this device)")
    ok = [r["link"] for r in link_rows if r["validated"]]
    missing = [r["link"] for r in link_rows if not r["validated"]]
    if ok:
        counts = ", ".join(f"{r['link']} ({_pooled(r['validated_against'])[0]} runs)"
                           for r in link_rows if r["validated"])
        text += f"; links validated in whole-step runs: {counts}"
    if missing:
        text += f"; links {', '.join(missing)} not validated"
    return {"device": device, "device_validated": bool(dev_groups),
            "validated_against": dev_groups, "links": link_rows,
            "formulas": table.get("formulas", []), "summary": text}
