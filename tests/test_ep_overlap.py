"""plan.ep_overlap: Megatron-Core's --overlap-moe-expert-parallel-comm (combined 1F1B). Each
pass's expert-parallel all-to-alls run beside the other micro-batch's opposite pass, and
every stage warms up one micro-batch more."""

from __future__ import annotations

import pytest

from simwall import simulate
from simwall.api import prepare
from simwall.costing.contention import beside_s
from simwall.costing.ep import EPCost, ep_exposed_s
from simwall.errors import ConfigError
from simwall.model.memory import in_flight_micro_batches
from simwall.plan.frameworks import frameworks_for
from simwall.plan.schedules import tasks_for

# Mixtral 8x7B, EP 8, on 256 H100 without pipelining: Megatron-Core runs the overlap with
# pp 1 (or a virtual pipeline) and without full recompute (transformer_config.py).
MIXTRAL = {"plan.framework": "megatron", "plan.pp": 1, "cluster.nodes": 32,
           "training.global_batch": 512}


def test_each_pass_hides_under_the_other_pass():
    ep = EPCost(layer_fwd_s=0.010, layer_bwd_s=0.030)
    plain = _prep().plan
    assert ep_exposed_s(plain, ep, 0.004, 0.008, 0.16) == (0.010, 0.030)
    over = _prep(**{"plan.ep_overlap": True}).plan
    fwd, bwd = ep_exposed_s(over, ep, 0.004, 0.008, 0.16)
    # The forward's exchange under the backward's compute and the backward's under the
    # forward's: what each takes beyond it, or the compute it slows.
    assert fwd == beside_s(0.010, 0.008, 0.16) == pytest.approx(0.002)
    assert bwd == beside_s(0.030, 0.004, 0.16) == pytest.approx(0.026)


def _prep(**over):
    return prepare("mixtral-8x7b", None, {**MIXTRAL, **over})


def test_one_more_warm_up_forward_per_stage():
    plan = _prep(**{"plan.ep_overlap": True}).plan
    assert plan.extra_warmup == 1
    for stage in range(plan.pp):
        order = tasks_for(plan.schedule, plan.pp, stage, plan.micro_batches, 1,
                          plan.extra_warmup)
        # Forwards before the first backward: 1F1B runs pp - stage of them (its warm-up
        # and the first steady one), the combined schedule one more.
        before = next(i for i, (p, _, _) in enumerate(order) if p == "B")
        assert before == plan.pp - stage + 1
        assert in_flight_micro_batches(plan, stage) == plan.pp - stage + 1


def test_overlap_hides_the_exchange_and_holds_one_micro_batch_more():
    base = simulate("mixtral-8x7b", **MIXTRAL)
    over = simulate("mixtral-8x7b", **MIXTRAL, **{"plan.ep_overlap": True})
    assert over.plan["ep_overlap"] and not base.plan["ep_overlap"]
    # The all-to-alls ride in tp_comm (model-parallel communication).
    assert over.breakdown_s["tp_comm"] < base.breakdown_s["tp_comm"] / 3
    assert over.step_time_s < base.step_time_s
    assert over.breakdown_s["compute"] == base.breakdown_s["compute"]
    # Memory: the engine's timeline peaks where the closed form says, one micro-batch up.
    for dev in over.memory["devices"]:
        assert dev["peak_bytes"] == pytest.approx(dev["closed_form_peak_bytes"], rel=1e-9)
    assert over.memory["peak_bytes"] > base.memory["peak_bytes"]


def test_per_device_run_agrees_with_the_symmetric_one():
    sym = simulate("mixtral-8x7b", **MIXTRAL, **{"plan.ep_overlap": True})
    dev = simulate("mixtral-8x7b", per_device=True, **MIXTRAL, **{"plan.ep_overlap": True})
    assert dev.step_time_s == pytest.approx(sym.step_time_s, rel=0.01)


def test_only_megatron_runs_it_and_only_as_megatron_core_allows():
    assert frameworks_for(_prep(**{"plan.ep_overlap": True}).plan) == ("megatron",)
    # Megatron-Core asserts a virtual pipeline when pp > 1 and no full recompute; simwall
    # models the overlap on 1F1B, so these are plans no framework listed runs as such.
    interleaved = {"plan.pp": 4, "plan.schedule": "interleaved", "plan.virtual_stages": 2}
    plan = _prep(**{"plan.ep_overlap": True, **interleaved}).plan
    assert frameworks_for(plan) == ("megatron",)
    for over in ({"plan.pp": 4}, {"plan.recompute": "full"}):
        plan = _prep(**{"plan.ep_overlap": True, "plan.framework": "auto", **over}).plan
        assert frameworks_for(plan) == ()


@pytest.mark.parametrize("over,expected", [
    ({"plan.ep": 1}, ("plan.ep_overlap: overlaps the expert-parallel all-to-alls: needs "
                      "plan.ep > 1, got ep 1")),
    ({"plan.schedule": "gpipe", "plan.pp": 4},
     "plan.ep_overlap: is modelled with the 1f1b and interleaved schedules"),
])
def test_bad_combinations_name_the_key(over, expected):
    with pytest.raises(ConfigError, match=expected):
        _prep(**{"plan.ep_overlap": True}, **over)


def test_interleaved_warms_up_one_chunk_more_and_memory_matches_the_engine():
    from simwall.plan.schedules import interleaved

    over = {"plan.pp": 4, "plan.schedule": "interleaved", "plan.virtual_stages": 2,
            "plan.ep_overlap": True}
    plan = _prep(**over).plan
    m, v = plan.micro_batches, plan.virtual_stages
    for stage in range(plan.pp):
        assert (interleaved.warmup(plan.pp, stage, m, v, 1)
                == min(interleaved.warmup(plan.pp, stage, m, v) + 1, m * v))
    r = simulate("mixtral-8x7b", **{**MIXTRAL, **over})
    for dev in r.memory["devices"]:
        assert dev["peak_bytes"] == pytest.approx(dev["closed_form_peak_bytes"], rel=1e-9)
    base = simulate("mixtral-8x7b", **{**MIXTRAL, **over, "plan.ep_overlap": False})
    assert r.breakdown_s["tp_comm"] < base.breakdown_s["tp_comm"]
    assert r.memory["peak_bytes"] > base.memory["peak_bytes"]
