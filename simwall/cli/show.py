"""``simwall show``: a resolved workload, cluster or device as YAML."""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path

from ..config import (
    DeviceSpec,
    apply_overrides,
    bundled_dir,
    bundled_names,
    cluster_overrides,
    load_cluster,
    load_yaml,
    set_overrides,
    validate,
)
from ..errors import ConfigError
from ..hardware.catalog import devices, get_device, resolve_device, resolve_link
from ..model.limits import resolve_checked
from ..plan.limits import check_cluster
from .common import add_set_option, to_yaml, workload_and_cluster

DESCRIPTION = ("Print a workload, cluster or device as YAML with defaults and --set "
               "applied. What simwall derives (a workload's resolved plan on its cluster, a "
               "cluster's resolved device) follows as YAML comments, so the output loads "
               "again as a workload or cluster file, e.g. 'simwall show llama3-405b > "
               "w.yaml; simwall run w.yaml'.")

#: The heading of the derived part, printed as comments (:func:`derived_comment`).
DERIVED_NOTE = "derived by simwall, not read back (YAML comments):"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="workload, cluster or device name (looked up in that order) "
                   "or a YAML path")
    p.add_argument("--cluster", help="for a workload: resolve the plan on this cluster")
    add_set_option(p)


def run(args: argparse.Namespace) -> int:
    kind = kind_of(args.name)
    if kind == "workload":
        workload, cluster = workload_and_cluster(args.name, args.cluster, args.set_items)
        plan, cluster = resolve_checked(workload, cluster)
        device = resolve_device(cluster.device, "device", cluster.file)
        doc = workload.model_dump(mode="json", by_alias=True)
        resolved = {
            "cluster": cluster.name, "device": device.name, "nodes": cluster.nodes,
            "devices": plan.world,
            "dp": plan.dp, "micro_batches": plan.micro_batches,
            "stage_layers": list(plan.stage_layers),
        }
        print(f"# {workload.file}\n" + to_yaml(doc) + derived_comment("resolved", resolved),
              end="")
    elif kind == "cluster":
        cluster = load_cluster(args.name, cluster_overrides(set_overrides(args.set_items)))
        check_cluster(cluster)
        for part in ("intra", "inter", "host"):  # unknown link names: say so here too
            resolve_link(getattr(cluster, part).link, f"{part}.link", cluster.file)
        doc = cluster.model_dump(mode="json", by_alias=True, exclude_none=True)
        device = resolve_device(cluster.device, "device", cluster.file)
        print(f"# {cluster.file}\n" + to_yaml(doc) + derived_comment(
            "resolved_device", device.model_dump(mode="json", by_alias=True)), end="")
    else:
        source = "catalog/devices.yaml"
        device = get_device(args.name)
        if args.set_items:
            raw = device.model_dump(mode="json", by_alias=True)
            device = validate(DeviceSpec, apply_overrides(
                raw, cluster_overrides(set_overrides(args.set_items)), source), source)
        print(f"# {source}\n" + to_yaml(device.model_dump(mode="json", by_alias=True)), end="")
    return 0


def derived_comment(key: str, value: dict) -> str:
    """``{key: value}`` as YAML, every line a comment under :data:`DERIVED_NOTE`: shown to
    the reader, ignored by the loader, which stays strict (an unknown key is refused)."""
    text = to_yaml({key: value})
    return f"# {DERIVED_NOTE}\n" + "".join(f"# {line}\n" for line in text.splitlines())


def kind_of(name: str) -> str:
    """'workload', 'cluster' or 'device' for ``simwall show NAME``."""
    if Path(name).suffix in (".yaml", ".yml") or "/" in name:
        doc = load_yaml(name)
        return "cluster" if isinstance(doc, dict) and "model" not in doc and (
            {"device", "devices_per_node", "intra", "inter", "nodes"} & set(doc)) \
            else "workload"
    for kind in ("workload", "cluster"):
        if (bundled_dir(kind) / f"{name}.yaml").is_file():
            return kind
    try:
        get_device(name)
        return "device"
    except ConfigError:
        names = bundled_names("workload") + bundled_names("cluster") + sorted(devices())
        near = difflib.get_close_matches(name, names, n=1, cutoff=0.4)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise ConfigError(None, None, f"no workload, cluster or device named '{name}'{hint} "
                          f"(see 'simwall list workloads|topologies|devices')") from None
