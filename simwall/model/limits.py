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

__all__ = ["check_dp_buckets", "resolve_checked"]


def check_dp_buckets(workload: Workload, plan: Plan) -> None:
    """Refuse a ``plan.dp_bucket_bytes`` that cuts the largest stage's gradients into more
    than :data:`~simwall.plan.limits.MAX_DP_BUCKETS` buckets (only with DP and ZeRO < 3);
    a :class:`ConfigError` names ``plan.dp_bucket_bytes`` and its line."""
    if plan.dp_cp > 1 and plan.zero < 3:
        src = workload.file
        grad_b = PRECISION_BYTES[workload.training.grad_precision_]
        biggest = max(memory.stage_params(workload.model, plan, s) for s in range(plan.pp))
        n = math.ceil(biggest * grad_b / plan.dp_bucket_bytes)
        if n > MAX_DP_BUCKETS:
            raise ConfigError(src, "plan.dp_bucket_bytes",
                              f"{plan.dp_bucket_bytes:g} bytes cuts the gradients into "
                              f"{n:,} buckets per step, more than simwall's limit of "
                              f"{MAX_DP_BUCKETS:,} (use larger buckets, e.g. 25e6; see "
                              f"simwall/plan/limits.py)", line=workload.line("plan.dp_bucket_bytes"))


def resolve_checked(workload: Workload, cluster: ClusterSpec) -> tuple[Plan, ClusterSpec]:
    """:func:`simwall.plan.resolve`, then the limits that need the model
    (:func:`check_dp_buckets`): the resolved plan and the cluster with ``nodes`` fixed."""
    plan, cluster = resolve(workload, cluster)
    check_dp_buckets(workload, plan)
    return plan, cluster
