"""Parallelism plans: resolution of a workload on a cluster (:mod:`.resolution`), the
resolved plan and its rank placement (:mod:`.layout`), size limits (:mod:`.limits`) and
pipeline schedules (:mod:`.schedules`)."""

from .layout import Plan, balanced_split
from .resolution import cluster_devices, resolve

__all__ = ["Plan", "balanced_split", "cluster_devices", "resolve"]
