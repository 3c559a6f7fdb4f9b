"""Tests of simwall.costing.energy: joules per step and per token, power, cost (issue 19)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall import api
from simwall.config import DeviceRef
from simwall.costing import energy
from simwall.errors import ConfigError
from simwall.hardware import get_device, resolve_device
from simwall.report import records
from simwall.studies import whatif as w

SETTINGS = settings(deadline=None, derandomize=True, max_examples=40)

H100 = get_device("H100-SXM5-80GB")
# GPT-2 on two nodes of 8 GPUs, pure DP: the gradient all-reduce crosses NVLink and IB.
SMALL = {"model.seq_len": 256, "training.micro_batch": 1, "training.global_batch": 16,
         "plan.tp": 1, "plan.pp": 1, "plan.dp": 16, "cluster.nodes": 2}

seconds = st.floats(min_value=1e-3, max_value=100.0, allow_nan=False)
fractions = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
byte_counts = st.floats(min_value=0.0, max_value=1e14, allow_nan=False)


def _small(**extra):
    return api.simulate("gpt2", "dgx-h100", **{**SMALL, **extra})


@pytest.fixture(scope="module")
def small():
    return _small()


@SETTINGS
@given(t1=seconds, t2=seconds, u1=fractions, u2=fractions, b1=byte_counts, b2=byte_counts)
def test_device_energy_positive_and_additive_over_time(t1, t2, u1, u2, b1, b2):
    """Two intervals cost what their union costs (energy is power integrated over time)."""
    e1 = energy.device_energy_j(H100, t1, u1 * t1, b1)
    e2 = energy.device_energy_j(H100, t2, u2 * t2, b2)
    both = energy.device_energy_j(H100, t1 + t2, u1 * t1 + u2 * t2, b1 + b2)
    assert all(v >= 0 for v in e1.values()) and sum(e1.values()) > 0
    for k in both:
        assert both[k] == pytest.approx(e1[k] + e2[k], rel=1e-9, abs=1e-9)


@SETTINGS
@given(t=seconds, u=fractions, b=byte_counts, more=byte_counts, busier=fractions)
def test_more_traffic_or_busier_never_lowers_energy(t, u, b, more, busier):
    base = sum(energy.device_energy_j(H100, t, u * t, b).values())
    assert sum(energy.device_energy_j(H100, t, u * t, b + more).values()) >= base
    u2 = min(1.0, u + busier)
    assert sum(energy.device_energy_j(H100, t, u2 * t, b).values()) >= base


def test_full_load_draws_the_power_limit():
    """All SMs busy and HBM streaming at peak for one second: the board's power limit."""
    p = H100.power
    e = energy.device_energy_j(H100, 1.0, 1.0, H100.memory_bandwidth_bytes_per_s)
    assert sum(e.values()) == pytest.approx(p.max_w)
    idle = energy.device_energy_j(H100, 1.0, 0.0, 0.0)
    assert sum(idle.values()) == pytest.approx(p.idle_w)


def test_step_energy_parts_add_up(small):
    e = small.energy
    assert e["energy_j"] > 0 and e["j_per_token"] > 0
    assert sum(e["parts_j"].values()) == pytest.approx(e["energy_j"])
    assert e["parts_j"]["links_j"] == pytest.approx(sum(e["links_j"].values()))
    # The DP all-reduce over NVLink inside the node and InfiniBand between the two.
    assert e["links_j"]["NVLink4"] > 0 and e["links_j"]["IB-NDR"] > 0
    tokens = small.plan["global_batch"] * small.inputs["model.seq_len"]
    assert e["j_per_token"] == pytest.approx(e["energy_j"] / tokens)
    assert e["power_w_per_device"] == pytest.approx(
        e["energy_j"] / small.step_time_s / small.world)
    # Between idle and the power limit per device, before node overheads.
    per_dev = e["power_w_per_device"] / e["power_overhead"] / e["pue"]
    assert H100.power.idle_w < per_dev < H100.power.max_w


def test_overhead_and_pue_scale_energy(small):
    more = _small(**{"cluster.power_overhead": 3.0, "cluster.pue": 1.2})
    ratio = (3.0 * 1.2) / energy.POWER_OVERHEAD
    assert more.energy["energy_j"] == pytest.approx(small.energy["energy_j"] * ratio)
    assert more.step_time_s == small.step_time_s


def test_link_energy_override_counts(small):
    free = _small(**{"cluster.inter.link": {"base": "IB-NDR", "energy_pj_per_bit": 0.0}})
    assert free.energy["links_j"]["IB-NDR"] == 0.0
    assert free.energy["energy_j"] < small.energy["energy_j"]
    dear = _small(**{"cluster.inter.link": {"base": "IB-NDR", "energy_pj_per_bit": 55.0}})
    assert dear.energy["links_j"]["IB-NDR"] == pytest.approx(
        10 * small.energy["links_j"]["IB-NDR"])


def test_symmetric_and_per_device_link_energy_agree():
    sym = _small()
    per = api.simulate("gpt2", "dgx-h100", per_device=True, **SMALL)
    assert per.energy["parts_j"]["links_j"] == pytest.approx(
        sym.energy["parts_j"]["links_j"], rel=0.02)


def test_doubling_price_doubles_cost(small):
    assert small.energy["cost"] is None
    one = _small(**{"cluster.price_per_device_hour": 2.0}).energy["cost"]
    two = _small(**{"cluster.price_per_device_hour": 4.0}).energy["cost"]
    assert two["cost_per_step"] == pytest.approx(2 * one["cost_per_step"])
    assert two["cost_per_million_tokens"] == pytest.approx(2 * one["cost_per_million_tokens"])
    assert one["cost_per_step"] == pytest.approx(2.0 * small.world * small.step_time_s / 3600)


def test_json_and_record_columns(small):
    d = json.loads(small.to_json())
    for key in ("energy_j", "j_per_token", "power_w_per_device", "parts_j", "cost"):
        assert key in d["energy"]
    rec = small.to_record()
    for col in records.ENERGY_COLUMNS:
        assert col in rec
    assert rec["energy.j_per_token"] == small.energy["j_per_token"]
    assert rec["cost.per_step"] is None
    est = records.estimate_record("w", "c", "d", 1, {}, {}, 1.0, 2.0)
    assert all(est[c] is None for c in records.ENERGY_COLUMNS)


def test_text_report_lines():
    from simwall.report import render
    r = _small(**{"cluster.price_per_device_hour": 2.0})
    text = render(r, "table")
    assert "energy:" in text and "J per token" in text and "per million tokens" in text


def test_device_without_power_figures_gives_no_energy_but_cost():
    r = api.simulate("gpt2", "tpu-v4", **{"model.seq_len": 128, "training.global_batch": 256,
                                          "cluster.price_per_device_hour": 1.0})
    assert r.energy["energy_j"] is None and r.energy["j_per_token"] is None
    assert r.energy["cost"]["cost_per_step"] > 0


def test_whatif_memory_bandwidth_keeps_core_power():
    """A what-if faster memory at the same pJ/bit: the power limit grows by its HBM peak
    power, so the core's dynamic share is unchanged."""
    dev = resolve_device(DeviceRef.model_validate(
        {"base": "H100-SXM5-80GB", "memory_bandwidth": 2 * H100.memory_bandwidth_bytes_per_s}))
    one = energy.device_energy_j(H100, 1.0, 1.0, 0.0)
    two = energy.device_energy_j(dev, 1.0, 1.0, 0.0)
    assert two["compute_j"] == pytest.approx(one["compute_j"])


def test_priced_whatif():
    # Sequences of 1024, 4 per micro-batch: GEMMs large enough that peak FLOP/s binds
    # (at SMALL's 256 x 1 every op of GPT-2 small is memory bound on an H100).
    over = {**SMALL, "model.seq_len": 1024, "training.micro_batch": 4,
            "training.global_batch": 64, "cluster.price_per_device_hour": 3.0}
    data = w.whatif("gpt2", "dgx-h100", {"peak_flops": 2.0}, over, with_elasticities=False)
    b, s = data["baseline"]["energy"], data["scaled"]["energy"]
    assert b["cost_per_million_tokens"] > 0 and s["cost_per_million_tokens"] > 0
    # Faster compute: a shorter step, so fewer device-hours per token.
    assert s["cost_per_million_tokens"] < b["cost_per_million_tokens"]
    text = w.render_whatif(data)
    assert "energy/token" in text and "cost/M tokens" in text


@pytest.mark.parametrize("key,value", [("cluster.pue", 0.5), ("cluster.power_overhead", 0.9),
                                       ("cluster.price_per_device_hour", -1.0)])
def test_bad_energy_keys_are_located_errors(key, value):
    with pytest.raises(ConfigError) as err:
        api.simulate("gpt2", "dgx-h100", **{**SMALL, key: value})
    assert key.split(".")[-1] in str(err.value)


def test_power_idle_above_max_is_refused():
    with pytest.raises(ConfigError):
        _small(**{"cluster.device": {"base": "H100-SXM5-80GB",
                                     "power": {"idle": 800.0, "max": 700.0}}})


# ---------------------------------------------------------------------------------------
# Validation against measured training energy (issue 19; docs/energy.md "Validation").
# The bundled energy cases simulate the published configurations with the GPU-only scope
# the sources measured (power_overhead 1, PUE 1); no constant was fitted on them.


@pytest.fixture(scope="module")
def measured():
    from simwall.studies import validate as v

    rows = {}
    for name in ("olmo2-7b-energy-h100.yaml", "olmo3-7b-energy-h100.yaml",
                 "olmo3-7b-power-h100.yaml"):
        cf = v.load_cases(next(p for p in v.bundled_case_files() if p.name == name))
        assert cf.kind == "energy"
        rows.update({c.name: v.evaluate(cf, c) for c in cf.cases})
    return rows


def test_measured_average_gpu_power_within_15_percent(measured):
    """Olmo 3 7B pre-training: ~621 W average GPU power measured over the run (Ai2);
    simwall's device power for the same step must be within 15 %."""
    r = measured["olmo3-7b-avg-gpu-power"]
    assert r.metric == "w_per_device" and r.published == 621
    assert abs(r.error) <= 0.15, f"{r.predicted:.0f} W vs 621 W measured"


def test_measured_energy_per_token_misses_by_the_step_time(measured):
    """The energy per token (so per step) of both OLMo runs is NOT within 15 %: simwall's
    step is 1.6-2.4x faster than the runs' measured throughput (restarts, evaluation and
    a slower trainer than simwall's kernels). Pinned to the miss docs/energy.md reports,
    so a change that moves it fails here and the page is updated with it."""
    olmo3, olmo2 = measured["olmo3-7b-5.93t"], measured["olmo2-7b-4.05t"]
    assert -0.50 < olmo3.error < -0.30
    assert -0.65 < olmo2.error < -0.50
    # The miss is the step time, not the power: at the run's measured goodput (5.93T
    # tokens in ~234k GPU-hours) simwall's power gives the measured J/token within 15 %.
    goodput_tokens_per_gpu_s = 5.93e12 / (234e3 * 3600.0)
    power_w = measured["olmo3-7b-avg-gpu-power"].predicted
    assert abs(power_w / goodput_tokens_per_gpu_s / olmo3.published - 1.0) <= 0.15


def test_measured_energy_per_step_within_15_percent():
    """MLPerf Training v4.0, Sustainable Metal Cloud, GPT-3 175B on 512 H100 (FP8, TP 4 x
    PP 8, global batch 2048): 4.681 MJ of node DC energy per training step, integrated
    from the submission's per-node power logs over the training blocks (docs/energy.md).
    simwall's energy per step of the same configuration, with its default node overhead
    (not fitted on this run), must be within 15 %."""
    from simwall.studies import validate as v

    cf = v.load_cases(next(p for p in v.bundled_case_files()
                           if p.name == "mlperf-gpt3-175b-energy-h100.yaml"))
    assert cf.kind == "energy"
    (case,) = cf.cases
    r = v.evaluate(cf, case)
    assert r.metric == "j_per_step" and r.published == pytest.approx(4.681e6)
    assert abs(r.error) <= 0.15, f"{r.predicted / 1e6:.3f} MJ vs 4.681 MJ measured"
