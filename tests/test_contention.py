"""Compute slowed by communication beside it (simwall.costing.contention): the closed form
against a direct integration, the physics as properties, the catalog value, and what it
does to whole steps."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall import simulate
from simwall.config import DeviceSpec
from simwall.costing.contention import beside_s, overlap_loss
from simwall.costing.dp import micro_batch_exposed_s
from simwall.costing.optimizer import gather_exposed_s
from simwall.costing.zero import pass_exposed_s
from simwall.hardware import get_device
from simwall.hardware.efficiency import FALLBACK
from simwall.plan import Plan

secs = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)
losses = st.floats(min_value=0.0, max_value=0.9, allow_nan=False)


def _integrated_s(comm_s: float, compute_s: float, slowdown: float) -> float:
    """When compute and communication that start together are both done, worked out
    piece by piece: compute runs at 1 / (1 + slowdown) of its rate while the
    communication lasts, then at full rate."""
    rate = 1.0 / (1.0 + slowdown)
    if compute_s <= comm_s * rate:            # compute done under the communication
        return comm_s
    return comm_s + (compute_s - comm_s * rate)


@settings(max_examples=300, deadline=None)
@given(secs, secs, st.floats(min_value=0.0, max_value=3.0, allow_nan=False))
def test_closed_form_matches_the_integration(comm, compute, slowdown):
    loss = slowdown / (1.0 + slowdown)
    want = _integrated_s(comm, compute, slowdown) - compute if comm > 0 else 0.0
    assert beside_s(comm, compute, loss) == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_hand_values():
    assert beside_s(1.0, 4.0, 0.2) == pytest.approx(0.2)    # hidden: slows compute by 0.2 s
    assert beside_s(3.0, 1.0, 0.2) == pytest.approx(2.0)    # communication-bound
    assert beside_s(0.0, 5.0, 0.5) == 0.0
    assert beside_s(2.0, 5.0, 0.0) == 0.0                   # no contention: fully hidden


@settings(max_examples=300, deadline=None)
@given(secs, secs, secs, losses, losses)
def test_physics(comm, more_comm, compute, loss, more_loss):
    here = beside_s(comm, compute, loss)
    assert 0.0 <= here <= comm + 1e-12                   # never worse than not overlapping
    # faster communication (less of it) is never slower; more contention never faster;
    # more compute to hide under never exposes more
    assert beside_s(comm + more_comm, compute, loss) >= here - 1e-12
    assert beside_s(comm, compute, min(0.99, loss + more_loss)) >= here - 1e-12
    assert beside_s(comm, compute + more_comm, loss) <= here + 1e-12


def test_loss_from_the_catalog():
    assert FALLBACK["gpu"].overlap_slowdown == 0.189        # Lee et al. 2025, cited there
    assert overlap_loss(get_device("A100-SXM4-80GB")) == pytest.approx(0.189 / 1.189)
    assert overlap_loss(get_device("H100-SXM5-80GB")) == pytest.approx(0.189 / 1.189)
    cpu = DeviceSpec(name="c", kind="cpu", peak_flops={"fp32": 1e12}, memory_capacity=1e9,
                     memory_bandwidth=1e11)
    assert overlap_loss(cpu) == 0.0


def test_the_exposure_rules_charge_hidden_communication():
    """Each overlap rule adds the compute its hidden communication slows."""
    loss = 0.25
    # ZeRO-3 prefetch: 10 units of 1 s gathers under 2 s of compute each
    assert pass_exposed_s(10, 1.0, 2.0, 1, loss=loss) == pytest.approx(1.0 + 9 * 0.25)
    assert pass_exposed_s(10, 1.0, 2.0, 1) == pytest.approx(1.0)
    plan = Plan(tp=1, pp=1, dp=8, virtual_stages=1, sequence_parallel=False, zero=2,
                recompute="none", schedule="1f1b", micro_batch=1, global_batch=64,
                stage_layers=(8,), zero_grad_reduce="micro_batch", overlap_param_gather=True)
    # ZeRO-2 per micro-batch: 7 earlier reductions of 0.4 s under 1 s backwards
    assert micro_batch_exposed_s(plan, 0.4, 1.0, loss) == pytest.approx(7 * 0.1)
    # ZeRO-1/2 parameter gather of 0.8 s over 8 layers under a 2 s forward
    assert gather_exposed_s(plan, 0.8, 8, 2.0, loss) == pytest.approx(0.1 + 0.7 * loss)


_FSDP = {"cluster.nodes": 2, "plan.tp": 1, "plan.pp": 1, "plan.dp": 16, "plan.zero": 3,
         "plan.framework": "fsdp", "training.global_batch": 32, "training.micro_batch": 2}


def _with_slowdown(slowdown: float) -> dict:
    return {"cluster.device": {"base": "A100-SXM4-80GB",
                               "efficiency": {"overlap_slowdown": slowdown}}}


@pytest.mark.parametrize("over", [_FSDP, {**_FSDP, "plan.zero": 1, "plan.framework": "megatron"}])
def test_whole_steps_slow_with_contention(over):
    """An FSDP step (gathers prefetched under every layer) and a ZeRO-1 step (DP buckets
    under the backward, the parameter gather under the forward) take longer the more a
    collective slows the compute beside it, and only their communication part grows."""
    steps = [simulate("llama2-7b", **over, **_with_slowdown(s)) for s in (0.0, 0.189, 0.5)]
    times = [r.step_time_s for r in steps]
    assert times[0] < times[1] < times[2]
    for r in steps[1:]:
        assert r.breakdown_s["compute"] == steps[0].breakdown_s["compute"]
    assert simulate("llama2-7b", **over).step_time_s == times[1]     # the catalog default


def test_a_host_fetch_alone_does_not_slow_the_compute():
    """ZeRO-Infinity's parameter fetch from host memory is a DMA copy, not a collective:
    with no DP peers (TP 8, DP 1) the step does not depend on the slowdown; with DP 2 the
    gathers beside it do."""
    over = {"cluster.nodes": 1, "plan.tp": 8, "plan.pp": 1, "plan.dp": 1, "plan.zero": 3,
            "plan.offload": "optimizer+params", "training.global_batch": 8,
            "training.micro_batch": 1}
    alone = [simulate("llama2-7b", **over, **_with_slowdown(s)).step_time_s for s in (0.0, 0.5)]
    assert alone[0] == alone[1]
    over.update({"plan.tp": 4, "plan.dp": 2, "training.global_batch": 16})
    peers = [simulate("llama2-7b", **over, **_with_slowdown(s)).step_time_s for s in (0.0, 0.5)]
    assert peers[0] < peers[1]
