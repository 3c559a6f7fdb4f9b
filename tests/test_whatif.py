"""Tests of simwall.whatif: scaled resources, elasticities, hardware generations, CLI."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall import api
from simwall.errors import ConfigError
from simwall.studies import whatif as w

SETTINGS = settings(deadline=None, derandomize=True, max_examples=6)

# GPT-2 1.5B on one GPU, one short sequence per step: small GEMMs, the optimizer a large
# part of the step -> memory-bandwidth bound.
SMALL = {"model.seq_len": 128, "training.micro_batch": 1, "training.global_batch": 1,
         "plan.dp": 1, "cluster.devices_per_node": 1}
# Llama-2 7B on 4 DGX A100 nodes (32 GPUs), 32 sequences of 512 tokens per step: pure DP
# across nodes (tp 1, dp 32) vs TP inside each node and PP across nodes (tp 8, pp 4,
# dp 1), whose only inter-node traffic is the small pipeline activations. (A tp 8 x dp 4
# plan moves as many gradient bytes per NIC as dp 32 under hierarchical all-reduce.)
_NET = {"training.global_batch": 32, "training.micro_batch": 1, "plan.zero": 1,
        "cluster.nodes": 4, "plan.pp": 1, "model.seq_len": 512}
DP_HEAVY = {**_NET, "plan.tp": 1, "plan.dp": 32}
TP_HEAVY = {**_NET, "plan.tp": 8, "plan.pp": 4, "plan.dp": 1}


@SETTINGS
@given(st.sampled_from([("gpt2", SMALL), ("gpt2", {}), ("gpt3-175b", {}),
                        ("llama2-7b", DP_HEAVY)]),
       st.sampled_from(sorted(set(w.AXES) - {"latency"})))
def test_more_of_a_resource_never_slows(case, axis):
    workload, over = case
    d = w.whatif(workload, None if workload != "llama2-7b" else "dgx-a100", {axis: 2.0},
                 over, with_elasticities=False)
    assert d["scaled"]["step_time_s"] <= d["baseline"]["step_time_s"] * (1 + 1e-12)


def test_memory_bandwidth_helps_memory_bound_more():
    small = w.whatif("gpt2", None, {"memory_bandwidth": 2}, SMALL, with_elasticities=False)
    big = w.whatif("gpt3-175b", None, {"memory_bandwidth": 2}, with_elasticities=False)
    assert small["speedup"] > big["speedup"] >= 1.0
    assert small["speedup"] <= 2.0 + 1e-9  # can't beat the resource's own growth


def test_nic_helps_dp_heavy_more_than_tp_heavy():
    dp = w.whatif("llama2-7b", "dgx-a100", {"nic": 2}, DP_HEAVY, with_elasticities=False)
    tp = w.whatif("llama2-7b", "dgx-a100", {"nic": 2}, TP_HEAVY, with_elasticities=False)
    assert dp["speedup"] > tp["speedup"] >= 1.0


def test_capacity_changes_verdict_not_time():
    over = {"plan.zero": 0, "plan.dp": 32, "plan.tp": 1, **{k: v for k, v in _NET.items()
                                                           if k != "plan.zero"}}
    d = w.whatif("llama2-7b", "dgx-a100", {"memory_capacity": 4}, over,
                 with_elasticities=False)
    assert d["scaled"]["step_time_s"] == d["baseline"]["step_time_s"]
    assert d["scaled"]["memory"]["capacity_bytes"] == 4 * d["baseline"]["memory"][
        "capacity_bytes"]
    assert not d["baseline"]["memory"]["fits"] and d["scaled"]["memory"]["fits"]


def test_peak_flops_scales_every_precision():
    prep = api.prepare("gpt2")
    over = w.scale_overrides(prep, {"peak_flops": 3})
    peaks = over["cluster.device.peak_flops"]
    assert set(peaks) == set(prep.device.peak_flop_per_s)
    for p, v in peaks.items():
        assert v == pytest.approx(3 * prep.device.peak_flop_per_s[p])
    prep2 = api.prepare("gpt2", None, over)
    assert prep2.device.peak("bf16") == pytest.approx(3 * prep.device.peak("bf16"))


def test_elasticities_bounded():
    """Growing a bandwidth/FLOP resource by 10 % can neither slow the step nor speed it
    up by more than 10 %: each elasticity lies in [1/1.1 - 1, 0] / 0.1."""
    el = w.elasticities("gpt2", None, SMALL)
    assert set(el) == set(w.AXES) - {"memory_capacity"}
    for axis, e in el.items():
        if axis == "latency":
            assert e >= -1e-9
        else:
            assert (1 / 1.1 - 1) / 0.1 - 1e-9 <= e <= 1e-9, (axis, e)
    assert el["memory_bandwidth"] < el["nic"]  # one GPU: no network at all


@pytest.mark.parametrize("item, needle", [
    ("memory_bw=2", "did you mean 'memory_bandwidth'"), ("nic", "KEY=FACTOR"),
    ("nic=-1", "positive"), ("nic=abc", "positive"), ("nic=nan", "positive")])
def test_parse_scales_errors(item, needle):
    with pytest.raises(ConfigError, match="--scale") as err:
        w.parse_scales([item])
    assert needle in str(err.value)


def test_generations_wall_rises():
    rows = w.generations("gpt3-175b", None, 3)
    for model in ("fixed", "scaled"):
        rs = [r for r in rows if r["model"] == model]
        assert [r["generation"] for r in rs] == [0, 1, 2, 3]
        shares = [r["wall_share"] for r in rs]
        assert all(b > a for a, b in pairwise(shares)), shares
    fixed = [r for r in rows if r["model"] == "fixed"]
    assert all(b["step_time_s"] < a["step_time_s"] for a, b in pairwise(fixed))
    scaled = [r for r in rows if r["model"] == "scaled"]
    # FLOPs of the scaled model grow about as fast as peak FLOP/s (3x per generation).
    for r in scaled:
        assert r["model_flop_growth"] == pytest.approx(3.0 ** r["generation"], rel=0.15)


def test_generations_bad_count():
    with pytest.raises(ConfigError, match="--generations"):
        w.generations("gpt2", None, -1)


def test_cli_whatif_generations_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from simwall.cli import main

    out = tmp_path / "g.png"
    code = main(["whatif", "gpt3-175b", "--generations", "4", "--plot", str(out),
                 "--format", "json"])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert out.stat().st_size > 0
    rows = json.loads(text)
    for model in ("fixed", "scaled"):
        shares = [r["wall_share"] for r in rows if r["model"] == model]
        assert len(shares) == 5
        assert all(b > a for a, b in pairwise(shares)), shares


def test_cli_whatif_table_and_error(capsys):
    from simwall.cli import main

    code = main(["whatif", "gpt2", "--scale", "memory_bandwidth=2", "--no-elasticities"])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert "step time" in text and "memory baseline" in text
    code = main(["whatif", "gpt2", "--scale", "hbm=2"])
    text, err = capsys.readouterr()
    assert code == 2 and err.startswith("simwall: error: --scale: hbm")
    assert len(err.splitlines()) == 1
