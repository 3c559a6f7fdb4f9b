"""Typed, validated inputs: YAML in, frozen objects out (the only package that sees raw
YAML).

- :mod:`.yamlio`: the safe YAML loader (line numbers, duplicate keys, ``3e12`` as a float);
- :mod:`.schema`: the schemas of workloads, clusters and the hardware catalog;
- :mod:`.validation`: pydantic failures turned into a located :class:`~simwall.errors.ConfigError`;
- :mod:`.overrides`: key-path overrides (``--set KEY=VALUE``), applied to the raw document;
- :mod:`.files`: bundled files by name, and loading a workload or cluster.
"""

from .files import bundled_dir, bundled_names, display_path, find_file, load_cluster, load_workload
from .overrides import (
    CLUSTER_PREFIX,
    apply_overrides,
    cluster_overrides,
    parse_set,
    reoverride,
    set_overrides,
    split_key_overrides,
)
from .schema import (
    FP8_WEIGHT_CACHE_BYTES,
    FRAMEWORK_PRESETS,
    MIXED_PRECISION_PRESETS,
    PRECISION_BYTES,
    ClusterSpec,
    DegradedLink,
    DeviceRef,
    DeviceSpec,
    EfficiencySpec,
    FaultSpec,
    GraphSpec,
    HostSpec,
    InterSpec,
    IntraSpec,
    LinkRef,
    LinkSpec,
    ModelSpec,
    PlanSpec,
    PowerSpec,
    Straggler,
    Strict,
    TrainingSpec,
    Workload,
)
from .validation import key_path_problem, validate
from .yamlio import key_path, line_of, load_yaml, parse_yaml

__all__ = [
    "CLUSTER_PREFIX", "FP8_WEIGHT_CACHE_BYTES", "FRAMEWORK_PRESETS", "MIXED_PRECISION_PRESETS", "PRECISION_BYTES", "ClusterSpec", "DegradedLink", "DeviceRef",
    "DeviceSpec", "EfficiencySpec", "FaultSpec", "GraphSpec", "HostSpec", "InterSpec", "IntraSpec",
    "LinkRef", "LinkSpec", "ModelSpec", "PlanSpec", "PowerSpec", "Straggler", "Strict", "TrainingSpec",
    "Workload", "apply_overrides", "bundled_dir", "bundled_names", "cluster_overrides",
    "display_path", "find_file", "key_path", "key_path_problem", "line_of", "load_cluster", "load_workload",
    "load_yaml", "parse_set", "parse_yaml", "reoverride", "set_overrides",
    "split_key_overrides", "validate",
]
