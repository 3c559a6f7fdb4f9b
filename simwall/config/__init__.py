"""Typed, validated inputs: YAML in, frozen objects out (the only package that sees raw
YAML). See :mod:`simwall.config.core`."""

from .core import (
    PRECISION_BYTES,
    ClusterSpec,
    DegradedLink,
    DeviceRef,
    DeviceSpec,
    EfficiencySpec,
    FaultSpec,
    HostSpec,
    InterSpec,
    IntraSpec,
    LinkRef,
    LinkSpec,
    ModelSpec,
    PlanSpec,
    Straggler,
    Strict,
    TrainingSpec,
    Workload,
    bundled_dir,
    apply_overrides,
    bundled_names,
    display_path,
    find_file,
    key_path,
    line_of,
    load_cluster,
    load_workload,
    load_yaml,
    parse_set,
    parse_yaml,
    split_overrides,
    validate,
)
from .keys import CLUSTER_PREFIX, cluster_overrides, set_overrides, split_key_overrides

__all__ = [
    "PRECISION_BYTES", "ClusterSpec", "DegradedLink", "DeviceRef", "DeviceSpec",
    "EfficiencySpec", "FaultSpec", "HostSpec", "InterSpec", "IntraSpec", "LinkRef", "LinkSpec",
    "ModelSpec", "PlanSpec", "Straggler", "Strict", "TrainingSpec", "Workload",
    "apply_overrides", "bundled_dir", "bundled_names", "display_path", "find_file", "key_path", "line_of",
    "load_cluster", "load_workload", "load_yaml", "parse_set", "parse_yaml",
    "split_overrides", "validate",
    "CLUSTER_PREFIX", "cluster_overrides", "set_overrides", "split_key_overrides",
]
