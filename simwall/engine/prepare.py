"""The inputs of one run resolved: workload and cluster loaded with their overrides,
the plan resolved and checked, the device and the topology (built once per cluster)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from typing import Any

from ..config import (
    ClusterSpec,
    DeviceSpec,
    Workload,
    load_cluster,
    load_workload,
    reoverride,
    split_key_overrides,
)
from ..errors import ConfigError
from ..hardware.catalog import resolve_device
from ..hardware.efficiency import check_precision
from ..memo import memoized
from ..model.limits import resolve_checked
from ..net import Topology, build_topology
from ..plan import Plan

__all__ = ["Prepared", "load_default_cluster", "load_inputs", "prepare", "topology_for"]


@dataclass(frozen=True)
class Prepared:
    """Everything resolved for one run: typed inputs, plan, device, topology."""

    workload: Workload
    cluster: ClusterSpec
    plan: Plan
    device: DeviceSpec
    topology: Topology


@memoized(maxsize=64)
def _topology_cached(cluster_json: str):
    cluster = ClusterSpec.model_validate_json(cluster_json)
    return build_topology(cluster)


def topology_for(cluster: ClusterSpec) -> Topology:
    """The topology of ``cluster`` (``nodes`` resolved), built once per distinct cluster;
    a ConfigError is located in the cluster's file."""
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


def _check_kind(what: str, value: Any, typed: type) -> None:
    """Refuse a ``workload`` / ``cluster`` argument that is no name, path or typed config,
    naming what was expected (a dict of overrides in its place is the likely slip)."""
    if isinstance(value, (str, PathLike, typed)):
        return
    hint = (" (overrides go as keyword arguments: simulate('gpt2', **{'plan.tp': 2}))"
            if isinstance(value, Mapping) else "")
    raise ConfigError(what, None, f"expected a bundled name, a YAML path or a "
                      f"{typed.__name__}, got {type(value).__name__}{hint}")


def load_inputs(workload: str | Workload, cluster: str | ClusterSpec | None = None,
                overrides: dict[str, Any] | None = None) -> tuple[Workload, ClusterSpec]:
    """The workload and cluster (names, paths or typed configs; ``cluster=None``: the
    workload's ``defaults.cluster``) with the key-path ``overrides`` applied and
    validated."""
    _check_kind("workload", workload, Workload)
    if cluster is not None:
        _check_kind("cluster", cluster, ClusterSpec)
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ConfigError("overrides", None, f"expected a mapping of key paths to values, "
                          f"e.g. {{'plan.tp': 2}}, got {type(overrides).__name__}")
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
    return wl, cl


def prepare(workload: str | Workload = "gpt3-175b", cluster: str | ClusterSpec | None = None,
            overrides: dict[str, Any] | None = None) -> Prepared:
    """Load, override, validate and resolve a workload on a cluster."""
    wl, cl = load_inputs(workload, cluster, overrides)
    plan, cl = resolve_checked(wl, cl)
    device = resolve_device(cl.device, "device", cl.file)
    check_precision(wl, device)
    topo = topology_for(cl)
    return Prepared(workload=wl, cluster=cl, plan=plan, device=device, topology=topo)
