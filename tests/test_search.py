"""Tests of simwall.studies.search and .check: plan enumeration, the analytic ranking,
``plan`` and ``check``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simwall
from simwall.cli import check as check_command
from simwall.cli import plan as plan_command
from simwall.cli.main import build_parser
from simwall.engine import load_inputs
from simwall.errors import ConfigError
from simwall.plan import resolve
from simwall.studies.check import check
from simwall.studies.search import Searcher, enumerate_plans, plan_overrides, search

# Big enough that memory rules plans out on a 4 GB device (capacity set below).
SMALL = """name: small
model: {layers: 8, hidden: 1024, heads: 16, vocab: 32000, seq_len: 1024}
training: {global_batch: 64, micro_batch: 1}
plan: {tp: 2, pp: 2}
defaults: {cluster: single-node}
"""
#: A device memory that makes some plans of SMALL not fit (our test choice).
SMALL_CAPACITY = {"cluster.device.memory_capacity": 4.0e9}

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> str:
    p = tmp_path_factory.mktemp("wl") / "small.yaml"
    p.write_text(SMALL)
    return str(p)


def exhaustive_best(searcher: Searcher):
    """Best engine step time over every enumerated plan that the engine says fits."""
    best = None
    for plan in enumerate_plans(searcher.workload, searcher.cluster):
        r = searcher.simulate(plan)
        if r.memory["fits"] and (best is None or r.step_time_s < best[0]):
            best = (r.step_time_s, plan)
    return best


@pytest.mark.parametrize("name,over", [("tiny", {}), ("small", SMALL_CAPACITY)])
def test_search_best_equals_exhaustive_engine_best(name, over, request):
    path = request.getfixturevalue(name)
    wl, cl = load_inputs(path, "single-node", over)
    best_s, best_plan = exhaustive_best(Searcher(wl, cl))
    res = search(path, "single-node", top=3, overrides=over)
    assert res.ranked, "search found nothing"
    assert res.ranked[0].step_time_s == pytest.approx(best_s, rel=1e-12), (
        res.ranked[0].candidate.plan, best_plan)
    if over:  # the memory filter must have removed something on the 4 GB device
        assert res.fitting < res.considered


def test_every_enumerated_plan_is_accepted_by_resolve(small):
    wl, cl = load_inputs(small, "single-node", {})
    s = Searcher(wl, cl)
    plans = list(enumerate_plans(wl, cl))
    assert len(plans) == len(set(plans)), "duplicate plans"
    for plan in plans[::7]:
        prep = s.prepared(plan)
        assert prep.plan == plan
        again, _ = resolve(prep.workload, cl)
        assert again == plan


@settings(deadline=None, derandomize=True, max_examples=40)
@given(st.data())
def test_compute_bound_never_exceeds_estimate(small, data):
    wl, cl = load_inputs(small, "single-node", {})
    s = _searcher_cache.setdefault(small, Searcher(wl, cl))
    plans = _plans_cache.setdefault(small, list(enumerate_plans(wl, cl)))
    plan = data.draw(st.sampled_from(plans))
    est, bubble = s.estimate(plan)
    assert 0 <= s.compute_bound(plan) <= est * (1 + 1e-12)
    assert 0 <= bubble < est


_searcher_cache: dict = {}
_plans_cache: dict = {}


def test_estimate_tracks_the_engine_on_average(small):
    """The ranking is only useful if the estimate is close to the engine."""
    wl, cl = load_inputs(small, "single-node", {})
    s = Searcher(wl, cl)
    plans = list(enumerate_plans(wl, cl))[::25]
    errs = [abs(s.estimate(p)[0] / s.simulate(p).step_time_s - 1) for p in plans]
    assert sum(errs) / len(errs) < 0.1, max(errs)


def test_search_beats_megatron_paper_plan_on_a_table1_row():
    """Narayanan et al. 2021 Table 1, 39.1B row (48 layers, h 8192, 64 heads, 512 GPUs,
    batch 1536, TP 8 x PP 2): the search's best is no slower than the paper's plan in
    simwall's own model. (The 145.6B row is timed in benchmarks/bench_search.py.)"""
    over = {"model.layers": 48, "model.hidden": 8192, "model.heads": 64,
            "training.global_batch": 1536, "cluster.nodes": 64}
    wl = str(ROOT / "examples" / "megatron-145b.yaml")
    from simwall.api import simulate
    paper = simulate(wl, "dgx-a100", **over, **{"plan.pp": 2})
    assert paper.memory["fits"] and paper.plan["tp"] == 8 and paper.plan["dp"] == 32
    res = search(wl, "dgx-a100", top=1, overrides=over)
    assert res.ranked[0].step_time_s <= paper.step_time_s


def test_objective_memory_orders_by_peak(tiny):
    res = search(tiny, "single-node", top=3, objective="memory")
    peaks = [r.result.memory["peak_bytes"] for r in res.ranked]
    assert peaks == sorted(peaks)
    # 504 1F1B + 372 interleaved + 252 GPipe + 252 zero-bubble (as many as GPipe: pp > 1)
    assert res.fitting == res.considered == 1380


@pytest.mark.parametrize("kw,key", [({"objective": "speed"}, "--objective"),
                                    ({"top": 0}, "--top")])
def test_search_rejects_bad_arguments(tiny, kw, key):
    with pytest.raises(ConfigError, match=key):
        search(tiny, "single-node", **kw)


def test_check_invalid_plan_names_the_key(tiny):
    res = check(tiny, "single-node", {"plan.tp": 3})
    assert res.status == "invalid"
    assert len(res.lines) == 1
    assert "plan.tp" in res.lines[0] and "must divide model.heads" in res.lines[0]


@pytest.mark.parametrize("micro_batch,single", [(2, True), (8, False)])
def test_check_does_not_fit_says_where_and_how_to_fix(small, micro_batch, single):
    over = {**SMALL_CAPACITY, "plan.tp": 1, "plan.pp": 1, "plan.zero": 0,
            "training.micro_batch": micro_batch}
    res = check(small, "single-node", over)
    assert res.status == "does-not-fit"
    text = "\n".join(res.lines)
    assert "does not fit: stage 0 (device 0)" in text and "GB over" in text
    fixes = [ln.strip() for ln in res.lines if ln.strip().startswith(("fix:", "together:"))]
    assert fixes
    if single:  # a single change suffices: ZeRO-1 shards the 12 B/param optimizer state
        # over 8 (ZeRO-3 would save more states but runs as DeepSpeed runs it, with its
        # larger gradient buckets: plan.frameworks.dp_bucket_bytes_for)
        assert fixes[0] == "fix: zero 0 -> 1 saves 1.4 GB (then fits)", fixes
        again = check(small, "single-node", {**over, "plan.zero": 1})
        assert again.status == "fits", again.lines
    else:
        assert fixes[0].startswith("fix: together: ") and fixes[0].endswith("(then fits)")
        assert not any("then fits" in f for f in fixes[1:])
        # Replay the combination: it must fit.
        keys = {"zero": "plan.zero", "recompute": "plan.recompute",
                "micro_batch": "training.micro_batch", "pp": "plan.pp",
                "schedule": "plan.schedule"}
        combo = dict(over)
        for part in fixes[0][len("fix: together: "):].split(" saves")[0].split(" + "):
            name, _, rest = part.partition(" ")
            value = rest.split("-> ")[1]
            combo[keys[name]] = int(value) if value.isdigit() else value
            if name == "schedule":          # 1F1B runs one chunk per stage
                combo["plan.virtual_stages"] = 1
        assert check(small, "single-node", combo).status == "fits"


def test_check_offers_1f1b_for_a_pipeline_schedule_that_holds_more():
    # Llama 3 405B's own plan under Megatron's interleaved warm-up needs more than an H100
    # holds (docs/validation.md, "Published runs outside the validation set"); 1F1B on the
    # same stages holds fewer micro-batches, and checking it again says it fits.
    over = {"plan.schedule": "interleaved", "plan.virtual_stages": 2}
    res = check("llama3-405b", None, over)
    assert res.status == "does-not-fit"
    fixes = [ln.strip() for ln in res.lines if ln.strip().startswith("fix:")]
    line = next(f for f in fixes if f.startswith("fix: schedule interleaved -> 1f1b saves"))
    assert line.endswith("(then fits)")
    saved_gb = float(line.split(" saves ")[1].split(" GB")[0])
    again = check("llama3-405b", None, {"plan.schedule": "1f1b", "plan.virtual_stages": 1})
    assert again.status == "fits", again.lines
    # The saving is the difference of the two peaks the checks report.
    need = float(res.lines[1].split(" needs ")[1].split(" GB")[0])
    peak = float(next(ln for ln in again.lines if ln.startswith("fits:"))
                 .split("peak ")[1].split(" GB")[0])
    assert abs((need - peak) - saved_gb) <= 0.15


def test_check_fits_reports_time_and_rank(tiny):
    res = check(tiny, "single-node", {})
    assert res.status == "fits"
    text = "\n".join(res.lines)
    assert "step time" in text and "rank " in text


def test_plan_and_check_entry_points(tiny, capsys):
    parser = build_parser(full=("plan", "check"))
    args = parser.parse_args(["plan", tiny, "--cluster", "single-node", "--top", "2"])
    assert plan_command.run(args) == 0
    out = capsys.readouterr().out
    assert "valid plans" in out and out.count("fits with") == 2
    args = parser.parse_args(["check", tiny, "--cluster", "single-node",
                              "--set", "plan.tp=3"])
    assert check_command.run(args) == 1
    assert capsys.readouterr().out.startswith("invalid: ")


def test_check_missing_file_is_an_error_not_a_verdict(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        check(str(tmp_path / "nope.yaml"), "single-node")


def test_cli_plan_and_check(tiny, capsys):
    from simwall.cli import main
    assert main(["plan", tiny, "--cluster", "single-node", "--top", "1"]) == 0
    assert "valid plans" in capsys.readouterr().out
    assert main(["check", tiny, "--cluster", "single-node", "--set", "plan.tp=3"]) == 1
    assert capsys.readouterr().out.startswith("invalid: ")
    assert main(["check", "no-such-workload.yaml"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("simwall: error: ")


@pytest.mark.parametrize("workload, over", [
    ("llama3-8b", {"cluster.nodes": 1, "model.layers": 4, "training.global_batch": 16}),
    ("mixtral-8x7b", {"cluster.nodes": 1, "model.layers": 4, "training.global_batch": 16,
                      "model.dense_layers": 1}),
])
def test_compute_bound_is_a_lower_bound_with_cp_and_ep(workload, over):
    """Branch and bound stays exact only while the bound never exceeds the estimate: it
    must count a context-parallel plan's s/cp tokens and an MoE plan's expert layers."""
    from simwall.engine.prepare import load_inputs
    wl, cl = load_inputs(workload, "dgx-h100", over)
    s = Searcher(wl, cl)
    seen = {"cp": 0, "ep": 0}
    for plan in enumerate_plans(wl, cl):
        if plan.cp == 1 and plan.ep == 1 and plan.tp > 1:
            continue
        seen["cp"] += plan.cp > 1
        seen["ep"] += plan.ep > 1
        assert s.compute_bound(plan) <= s.estimate(plan)[0] * (1 + 1e-9), plan
    assert seen["cp"] > 0 if workload == "llama3-8b" else seen["ep"] > 0


@pytest.mark.parametrize("workload, cluster, over", [
    ("mixtral-8x7b", "dgx-h100", {"cluster.nodes": 2}),
    ("llama3-8b", "dgx-h100", {"cluster.nodes": 2, "plan.framework": "auto"}),
    ("gpt2", "dgx-a100", {"cluster.nodes": 2, "plan.tp_comm_overlap": False}),
])
def test_enumerated_plans_are_framed_as_resolve_frames_them(workload, cluster, over):
    """Enumeration frames one plan per set of degrees, ZeRO stage and schedule and
    copies the framework semantics to its micro-batch / recompute / SP variants: each
    plan must be what framing it alone gives."""
    from simwall.config import PRECISION_BYTES
    from simwall.plan import framed
    wl, cl = load_inputs(workload, cluster, over)
    reduce_bytes = PRECISION_BYTES[wl.training.grad_reduce_precision_]
    plans = list(enumerate_plans(wl, cl))
    assert len({p.framework for p in plans}) > 1
    for plan in plans:
        assert framed(plan, wl.plan, reduce_bytes) == plan, plan


def test_a_framework_search_tries_hybrid_sharding_and_runs_it_as_such():
    # FSDP's HYBRID_SHARD (plan.dp_shard = the DP ranks of a node) joins the search when
    # a framework that runs it is asked for; each confirmed plan runs as it is described.
    over = {"cluster.inter.link": "RoCE-400G", "cluster.inter.nics_per_node": 1}
    res = search("llama2-7b", "dgx-a100", top=8, overrides=over, framework="fsdp")
    hybrid = [r for r in res.ranked if r.candidate.plan.dp_shard]
    assert hybrid and all(r.candidate.plan.dp_shard == 8 for r in hybrid)
    for r in res.ranked:
        assert r.result.plan["dp_shard"] == (r.candidate.plan.dp_shard or 128)
        assert r.result.memory["peak_bytes"] == pytest.approx(r.candidate.peak_bytes,
                                                             rel=0.05)
    # Without a framework the search stays as it was (no hybrid variants).
    plain = search("llama2-7b", "dgx-a100", top=8, overrides=over)
    assert not any(r.candidate.plan.dp_shard for r in plain.ranked)


def test_a_framework_search_costs_its_plans_with_that_framework(small):
    # --framework fsdp2 keeps the plans FSDP2 runs and costs them with FSDP's preset, not
    # with the preset plan.framework: auto would pick (DeepSpeed for ZeRO-2/3).
    res = search(small, "single-node", top=3, overrides=SMALL_CAPACITY, framework="fsdp2")
    assert res.ranked
    for r in res.ranked:
        assert r.result.plan["framework"] == "fsdp"
        assert "fsdp2" in r.result.plan["runs_on"].split(", ")
        alone = simwall.simulate(small, "single-node", **SMALL_CAPACITY,
                                 **plan_overrides(r.candidate.plan),
                                 **{"plan.framework": "fsdp2"})
        assert alone.step_time_s == r.step_time_s
    auto = search(small, "single-node", top=3, overrides=SMALL_CAPACITY)
    assert {r.result.plan["framework"] for r in auto.ranked} != {"fsdp"}


def test_a_framework_search_refuses_a_workload_naming_another(small):
    over = {**SMALL_CAPACITY, "plan.framework": "deepspeed"}
    with pytest.raises(ConfigError, match="--framework: fsdp conflicts with "
                                          "plan.framework: deepspeed"):
        search(small, "single-node", top=1, overrides=over, framework="fsdp")


def test_a_set_choice_fixes_it_in_the_search(small):
    res = search(small, "single-node", top=5,
                 overrides={**SMALL_CAPACITY, "plan.tp": 4, "plan.zero": 1})
    assert res.ranked and res.fixed == ("tp=4", "zero=1")
    assert all(r.candidate.plan.tp == 4 and r.candidate.plan.zero == 1 for r in res.ranked)
    free = search(small, "single-node", top=5, overrides=SMALL_CAPACITY)
    assert res.considered < free.considered
    # A value no plan has is refused with the values the plans have (16 heads: tp 1-8).
    with pytest.raises(ConfigError, match=r"--set: plan.tp: no plan of the search has tp 3 "
                                          r"\(its plans have tp 1, 2, 4, 8\)"):
        search(small, "single-node", top=1, overrides={**SMALL_CAPACITY, "plan.tp": 3})


def test_check_says_when_the_plan_beats_every_searched_plan(tiny):
    from types import SimpleNamespace

    from simwall.studies.check import _rank_line

    wl, cl = load_inputs(tiny, "single-node")
    plan = next(iter(enumerate_plans(wl, cl)))
    best = SimpleNamespace(estimate_s=2.0, plan=plan)
    faster = _rank_line(1, 40, 90, 1.5, best)
    assert faster.startswith("rank 1: faster by the analytic estimate (1.5000 s) than all 40")
    assert "its best 2.0000 s" in faster
    assert _rank_line(3, 40, 90, 2.5, best).startswith("rank 3 of 40 fitting plans (90 valid)")


def test_check_api_raises_on_input_it_cannot_read(tmp_path):
    # A typo'd key is an input error in the Python API too, not an 'invalid' verdict.
    bad = tmp_path / "typo.yaml"
    bad.write_text("name: t\nmodle: {}\n")
    with pytest.raises(ConfigError, match="modle: unknown key"):
        check(str(bad), "single-node")
    with pytest.raises(ConfigError, match="unknown key"):
        check("gpt2", "single-node", {"plan.tpp": 2})
    assert check("gpt2", "single-node", {"plan.tp": 3}).status == "invalid"


@pytest.mark.parametrize("kw, message", [
    ({"top": 2.5}, "--top: expected an integer >= 1, got 2.5"),
    ({"max_tp": -1}, "--max-tp: expected an integer >= 1 or None, got -1"),
    ({"confirm": 0}, "--confirm: expected an integer >= 1 or None, got 0"),
])
def test_search_numbers_are_positive_integers(tiny, kw, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        search(tiny, "single-node", **kw)
