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


BOUNDS = "expected a positive factor from 0.001 to 1000"


@pytest.mark.parametrize("argv, needle", [
    (["--scale", "memory_bandwidth=1e300"], f"--scale: memory_bandwidth: {BOUNDS}, got '1e300'"),
    (["--scale", "memory_bandwidth=1e-300"],
     f"--scale: memory_bandwidth: {BOUNDS}, got '1e-300'"),
    (["--scale", "nic=inf"], f"--scale: nic: {BOUNDS}"),
    (["--generations", "1", "--rates", "peak_flops=1e300"],
     f"--rates: peak_flops: {BOUNDS}, got '1e300'"),
    # A factor in bounds that scales the cluster's own value past the floats.
    (["--set", "cluster.device.memory_bandwidth=1e306", "--scale", "memory_bandwidth=1000"],
     "--scale: cluster.device.memory_bandwidth: scaled to inf, not a finite number"),
    (["--set", "cluster.device.peak_flops={bf16: 1e306}", "--scale", "peak_flops=1000"],
     "--scale: cluster.device.peak_flops.bf16: scaled to inf, not a finite number"),
])
def test_cli_factor_errors_name_their_option(capsys, argv, needle):
    """A --scale or --rates factor out of bounds, or one whose result is not finite, is
    the option's error, not the cluster file's '(from --set)'."""
    from simwall.cli import main

    code = main(["whatif", "gpt2", "--no-elasticities", *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"simwall: error: {needle}"), err
    assert "topologies/" not in err and "(from --set)" not in err


def test_factor_bounds_in_the_api():
    assert w.check_factor("nic", w.MAX_FACTOR) == w.MAX_FACTOR
    for bad in (w.MIN_FACTOR / 2, w.MAX_FACTOR * 2, float("nan"), True, "2"):
        with pytest.raises(ConfigError, match="nic: expected a positive factor"):
            w.check_factor("nic", bad)
    with pytest.raises(ConfigError, match="^--scale: nic"):
        w.whatif("gpt2", None, {"nic": 1e-300}, SMALL, with_elasticities=False)
    with pytest.raises(ConfigError, match="^growth: nic"):
        w.generations("gpt2", None, 1, SMALL, growth={"nic": 1e300})


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


def test_scaled_elasticities_are_the_scaled_designs():
    """After --scale the scaled design has its own elasticities: doubling HBM bandwidth
    makes HBM bandwidth matter less there than at the baseline."""
    d = w.whatif("gpt2", None, {"memory_bandwidth": 2}, SMALL)
    base, scaled = d["elasticities"], d["scaled_elasticities"]
    assert set(base) == set(scaled)
    assert scaled["memory_bandwidth"] > base["memory_bandwidth"]
    # the scaled column is the elasticity of the scaled design itself
    assert scaled == pytest.approx(w.elasticities(
        "gpt2", None, {**SMALL, **d["overrides"]}))
    text = w.render_whatif(d)
    assert "binding resource (baseline)" in text and "binding resource (scaled)" in text
    assert "scaled_elasticities" not in w.whatif("gpt2", None, {}, SMALL)


@pytest.mark.parametrize("old, new, text", [
    (0.0, 0.57, "+0.570 s"), (0.0, 0.0, "0.0%"), (2.0, 1.0, "-50.0%"), (0.5, 0.0, "-100.0%")])
def test_change_from_zero_is_absolute(old, new, text):
    assert w.change_text(old, new) == text


def test_render_whatif_change_from_zero():
    d = w.whatif("gpt2", None, {"nic": 2}, SMALL, with_elasticities=False)
    d["scaled"]["breakdown_s"]["tp_comm"] = 0.57  # a term that appears from nothing
    line = next(x for x in w.render_whatif(d).splitlines() if x.strip().startswith("tp_comm"))
    assert line.endswith("+0.570 s") and "0.0%" not in line


def test_parse_rates():
    assert w.parse_rates(None) == w.GROWTH_PER_GENERATION
    r = w.parse_rates("peak_flops=2, nic=1")
    assert r == {**w.GROWTH_PER_GENERATION, "peak_flops": 2.0, "nic": 1.0}
    for bad in ("", "flops=2", "nic=0"):
        with pytest.raises(ConfigError, match="--rates"):
            w.parse_rates(bad)


def test_generations_with_own_rates():
    """All rates 1: every generation is generation 0; only FLOP/s grown: the fixed
    model's step time falls by at most that factor and the header names the rates."""
    flat = w.parse_rates(",".join(f"{a}=1" for a in w.GROWTH_PER_GENERATION))
    rows = w.generations("gpt2", None, 2, SMALL, growth=flat)
    times = {r["step_time_s"] for r in rows}
    assert len(times) == 1
    only = {**flat, "peak_flops": 2.0}
    rows = w.generations("gpt2", None, 1, SMALL, growth=only)
    fixed = [r for r in rows if r["model"] == "fixed"]
    assert fixed[0]["step_time_s"] / 2 <= fixed[1]["step_time_s"] < fixed[0]["step_time_s"]
    assert fixed[1]["capacity_bytes"] == fixed[0]["capacity_bytes"]
    assert "(--rates): peak_flops x2" in w.render_generations(rows, only)


def test_generations_replan_never_slower():
    """The re-planned generation runs the search's best plan (for GPT-2 on one DGX node it
    is never slower than the workload's own plan on the same hardware), and the plan is
    reported per row."""
    kept = w.generations("gpt2", None, 1)
    best = w.generations("gpt2", None, 1, replan=True)
    assert [r["replanned"] for r in kept] == [False] * 4
    assert all(r["replanned"] for r in best)
    for a, b in zip(kept, best):
        assert (a["generation"], a["model"]) == (b["generation"], b["model"])
        assert b["step_time_s"] <= a["step_time_s"] * (1 + 1e-9)
        assert b["plan"].startswith("tp=")
    assert "plan (best per generation)" in w.render_generations(best)


def test_cli_rates_replan_need_generations(capsys):
    from simwall.cli import main

    for argv in (["--rates", "nic=2"], ["--replan"]):
        code = main(["whatif", "gpt2", *argv])
        _, err = capsys.readouterr()
        assert code == 2 and "needs --generations" in err


def test_a_generation_that_cannot_run_is_named():
    # gpt2 grown with peak FLOP/s for 10 generations passes the engine's bucket limit:
    # the error says which generation and model, not only the workload file.
    from simwall.studies.whatif import generations

    with pytest.raises(ConfigError, match=r"--generations: generation \d+ \(scaled model, "
                                          r"hidden \d+\) cannot run: workloads/gpt2.yaml"):
        generations("gpt2", "single-node", count=20)


def test_whatif_scales_a_link_the_cluster_file_leaves_at_its_default(tmp_path):
    # No intra/inter keys in the file: the what-if writes the whole link mapping
    # (before: "inter.link.base: required key is missing").
    from simwall.studies.whatif import whatif

    path = tmp_path / "plain.yaml"
    path.write_text("name: plain\ndevice: H100-SXM5-80GB\nnodes: 2\n")
    out = whatif("llama2-7b", str(path), {"nic": 0.25, "latency": 2.0},
                 with_elasticities=False)
    assert out["scaled"]["step_time_s"] > out["baseline"]["step_time_s"]
