"""Parallelism plans: resolution of a workload on a cluster (:mod:`.resolution`), the
resolved plan and its rank placement (:mod:`.layout`), size limits (:mod:`.limits`),
pipeline schedules (:mod:`.schedules`) and the frameworks that run a plan (:mod:`.frameworks`)."""

from .frameworks import (
    FRAMEWORKS,
    NONE_KNOWN,
    SEMANTIC_KEYS,
    dp_bucket_bytes_for,
    framed,
    framework_label,
    framework_names,
    frameworks_for,
    plan_record,
    preset_for,
    runs_plan,
    with_framework,
)
from .layout import BEST_BY_AXES, Plan, balanced_split, stage_classes
from .resolution import cluster_devices, resolve

__all__ = ["BEST_BY_AXES", "FRAMEWORKS", "NONE_KNOWN", "SEMANTIC_KEYS", "Plan", "balanced_split",
           "cluster_devices", "dp_bucket_bytes_for", "framed", "framework_label", "framework_names", "frameworks_for",
           "plan_record", "preset_for", "resolve", "runs_plan", "stage_classes", "with_framework"]
