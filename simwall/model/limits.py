"""Size limits that need the model's parameter counts (the rest: :mod:`simwall.plan.limits`).

:data:`~simwall.plan.limits.MAX_DP_BUCKETS` bounds the data-parallel gradient buckets of a
step; counting them needs the parameters per pipeline stage (:mod:`simwall.model.memory`),
which the plan layer below cannot see. :func:`resolve_checked` is
:func:`simwall.plan.resolve` followed by these checks: every resolution of user input
goes through it.
"""

from __future__ import annotations

import math

from ..config import PRECISION_BYTES, ClusterSpec, Workload
from ..errors import ConfigError
from ..plan import Plan, resolve
from ..plan.limits import MAX_DP_BUCKETS
from . import memory

__all__ = ["check_dp_buckets", "min_bucket_bytes", "resolve_checked", "round_up"]


def round_up(value: float, digits: int = 2) -> float:
    """``value`` (> 0) rounded up to ``digits`` significant digits: 3.01e9 -> 3.1e9."""
    scale = 10.0 ** (math.floor(math.log10(value)) - digits + 1)
    return math.ceil(value / scale * (1 - 1e-12)) * scale


def min_bucket_bytes(grad_bytes: float, limit: int = MAX_DP_BUCKETS) -> float:
    """The smallest round bucket size (bytes, two significant digits) that cuts
    ``grad_bytes`` into at most ``limit`` buckets."""
    need = round_up(grad_bytes / limit)
    while math.ceil(grad_bytes / need) > limit:  # rounding error of the division
        need = round_up(need * (1 + 1e-9))
    return need


def check_dp_buckets(workload: Workload, plan: Plan) -> None:
    """Refuse a ``plan.dp_bucket_bytes`` that cuts the largest stage's gradients into more
    than :data:`~simwall.plan.limits.MAX_DP_BUCKETS` buckets (only with DP and ZeRO < 3);
    a :class:`ConfigError` names ``plan.dp_bucket_bytes`` (its line, if the file sets it),
    the stage's gradient bytes that the model's size gives, and a bucket size that would
    do (:func:`min_bucket_bytes`)."""
    if plan.dp_cp > 1 and plan.zero < 3:
        grad_b = PRECISION_BYTES[workload.training.grad_precision_]
        params = max(memory.stage_params(workload.model, plan, s) for s in range(plan.pp))
        grad_bytes = params * grad_b
        n = math.ceil(grad_bytes / plan.dp_bucket_bytes)
        if n > MAX_DP_BUCKETS:
            key = "plan.dp_bucket_bytes"
            origin = workload.origin(key)
            given = (f"{plan.dp_bucket_bytes:g} bytes" if origin != "default" else
                     f"not set, so {plan.framework}'s default of {plan.dp_bucket_bytes:g} "
                     f"bytes")
            raise ConfigError(workload.file, key,
                              f"{given} cuts the largest pipeline stage's gradients "
                              f"({params:.3g} parameters x {grad_b} bytes = "
                              f"{grad_bytes:.3g} bytes, from the model's size) into {n:,} "
                              f"buckets per step, more than simwall's limit of "
                              f"{MAX_DP_BUCKETS:,}; set {key} to "
                              f"{min_bucket_bytes(grad_bytes):g} or more, or use more "
                              f"pipeline stages or a smaller model (see "
                              f"simwall/plan/limits.py)"
                              + (" (from --set)" if origin == "--set" else ""),
                              line=workload.line(key))


def resolve_checked(workload: Workload, cluster: ClusterSpec) -> tuple[Plan, ClusterSpec]:
    """:func:`simwall.plan.resolve`, then the limits that need the model
    (:func:`check_dp_buckets`): the resolved plan and the cluster with ``nodes`` fixed."""
    plan, cluster = resolve(workload, cluster)
    check_dp_buckets(workload, plan)
    return plan, cluster
