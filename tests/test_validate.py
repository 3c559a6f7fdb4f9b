"""simwall validate: bundled published cases, accuracy bounds, user case files, formats.

The bounds are the project's accuracy targets (issues 4 and 8) on Narayanan et al. 2021
Table 1: mean |error| <= 5 %, worst <= 10 %, every row within 15 %; memory and activation
cases within 2 %. Predictions take only each case's configuration: the published number
is never an input (test_published_value_is_not_an_input).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from simwall.cli import validate as validate_command
from simwall.cli.main import build_parser
from simwall.errors import SimwallError
from simwall.studies import validate as v


def _by_source(results, word):
    rows = [r for r in results if word in r.source]
    assert rows, f"no bundled source matching {word!r}"
    return rows


@pytest.fixture(scope="module")
def results():
    return v.run_cases([v.load_cases(p) for p in v.bundled_case_files()])


def test_bundled_case_files_are_found():
    names = {p.name for p in v.bundled_case_files()}
    assert {"megatron-2021-table1.yaml", "zero-2020-model-states.yaml",
            "korthikanti-2022-activations.yaml"} <= names


def test_megatron_table1_accuracy(results):
    rows = _by_source(results, "Table 1")
    assert len(rows) == 10
    errors = [abs(r.error) for r in rows]
    assert max(errors) <= 0.15, [(r.name, round(100 * r.error, 1)) for r in rows]  # issue 4
    assert sum(errors) / len(errors) <= 0.05                                      # issue 8
    assert max(errors) <= 0.10                                                    # issue 8
    assert {r.name for r in rows if r.fit} == {"1.7B", "18.4B", "145.6B", "1008B"}


def test_megatron_table2_held_out(results):
    rows = _by_source(results, "Table 2")
    assert all(abs(r.error) <= 0.10 for r in rows), [(r.name, r.error) for r in rows]
    # The measured throughput falls as GPUs grow at a fixed batch (bigger bubble); so must
    # simwall's.
    for size in ("174.6B", "529.6B"):
        preds = [r.predicted for r in rows if r.name.startswith(size)]
        assert preds == sorted(preds, reverse=True)


def test_memory_and_activation_cases_within_2_percent(results):
    for word in ("Rajbhandari", "Korthikanti"):
        for r in _by_source(results, word):
            assert abs(r.error) <= 0.02, (r.name, r.error)


def test_published_value_is_not_an_input():
    cf = v.load_cases(v.bundled_case_files()[0])
    case = cf.cases[0]
    other = v.Case(name=case.name, overrides=case.overrides, metric=case.metric,
                   published=case.published * 3, fit=case.fit)
    assert v.predict(cf, case) == v.predict(cf, other)


def test_summary_counts_fit_and_held_out(results):
    s = {x["source"]: x for x in v.summarize(results)}
    t1 = next(x for k, x in s.items() if "Table 1" in k)
    assert t1["all"]["n"] == 10 and t1["fit"]["n"] == 4 and t1["held_out"]["n"] == 6


# ---------------------------------------------------------------------------------------
# User case files, formats, errors

USER_CASES = """\
source: "my cluster, 2026-01-01"
kind: throughput
workload: gpt2
cluster: dgx-a100
common: {cluster.nodes: 1, plan.tp: 1, plan.pp: 1, training.global_batch: 64}
cases:
  - {name: small, fit: true, training.micro_batch: 4, published: {step_time_s: 0.5}}
  - {name: large, fit: true, training.micro_batch: 8, published: {tokens_per_s: 100000}}
"""


def _run(argv, capsys):
    parser = build_parser(full=("validate",))
    code = validate_command.run(parser.parse_args(["validate", *argv]))
    return code, capsys.readouterr().out


def test_user_case_file_json(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text(USER_CASES)
    code, out = _run(["--cases", str(path), "--format", "json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert [c["name"] for c in doc["cases"]] == ["small", "large"]
    assert all(c["predicted"] > 0 for c in doc["cases"])
    assert doc["summary"][0]["source"] == "my cluster, 2026-01-01"
    assert doc["summary"][0]["all"]["n"] == 2


def test_markdown_and_table_formats(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text(USER_CASES)
    _, md = _run(["--cases", str(path), "--format", "markdown"], capsys)
    assert "| case | fit | published | simwall | error |" in md and "**mean |error|" in md
    _, table = _run(["--cases", str(path)], capsys)
    assert "my cluster" in table and "mean |error|" in table


def test_fit_on_a_tiny_grid(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(USER_CASES)
    cf = v.load_cases(path)
    grid = {"gemm_max": (0.5, 0.8), "memory_bw": (0.6,)}
    result = v.fit(cf, grid)
    assert result.best["gemm_max"] in grid["gemm_max"]
    assert set(result.loo) == {"small", "large"}
    # The fitted point is the least-squares one on the fit cases.
    sse = {g: sum((v.predict(cf, c, {"gemm_max": g, "memory_bw": 0.6}) / c.published - 1)
                  ** 2 for c in cf.cases) for g in grid["gemm_max"]}
    assert result.best["gemm_max"] == min(sse, key=sse.get)
    md = v.render(v.run_cases([cf]), [result], "markdown")
    assert "### Leave-one-out" in md and "Out of sample" in md
    doc = json.loads(v.render(v.run_cases([cf]), [result], "json"))
    assert doc["fits"][0]["loo_summary"]["n"] == 2


@pytest.mark.parametrize("text, match", [
    ("cases: []\nsource: x\n", "cases"),
    ("source: x\ncases: [{name: a, published: {flops: 1}}]\n", "unknown metric"),
    ("source: x\ncases: [{name: a, published: {step_time_s: -1}}]\n", "positive"),
    ("source: x\nkind: speed\ncases: [{name: a, published: {step_time_s: 1}}]\n", "kind"),
    ("cases: [{name: a, published: {step_time_s: 1}}]\n", "source"),
    ("source: x\nkind: energy\ncases: [{name: a, published: {step_time_s: 1}}]\n",
     "unknown metric for kind energy"),
    ("source: x\nkind: energy\nworkload: gpt2\ncluster: tpu-v4\n"
     "cases: [{name: a, published: {j_per_token: 1}}]\n", "no energy figures"),
    ("source: x\nworkload: gpt2\ncases: [{name: a, plan.tp: 7, published: {step_time_s: 1}}]\n",
     "case 'a'"),
])
def test_bad_case_files_raise_simwall_errors(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SimwallError, match=match):
        v.run_cases([v.load_cases(path)])


def test_cli_validate_error_contract(tmp_path, capsys):
    from simwall.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text("source: x\ncases: [{name: a, published: {flops: 1}}]\n")
    code = main(["validate", "--cases", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("simwall: error:") and err.count("\n") == 1


# ---------------------------------------------------------------------------------------
# Modern runs (issue 14): MosaicML llm-foundry on A100, Megatron-Core on H100


def test_modern_case_files_load_and_run(results):
    names = {p.name for p in v.bundled_case_files()}
    assert {"mosaicml-llm-foundry-a100.yaml", "megatron-core-h100.yaml"} <= names
    for word in ("MosaicML", "Megatron-Core"):
        rows = _by_source(results, word)
        assert len(rows) == 9
        assert all(r.predicted > 0 and r.fits is not None for r in rows)
    assert not any(r.fit for r in _by_source(results, "MosaicML"))   # validation only
    # The H100's gemm_max / memory_bw are fitted on every other Megatron-Core row.
    assert {r.name for r in _by_source(results, "Megatron-Core") if r.fit} == {
        "mcore-h100-1.7b", "mcore-h100-16b", "mcore-h100-70b", "mcore-h100-177b",
        "mcore-h100-462b"}


def test_h100_groups_since_the_fit(results):
    # Guards on the H100 groups with gemm_max / memory_bw fitted on five Megatron-Core
    # rows (docs/validation.md, "H100 calibration"): today 6.1 % and 0.7 % mean.
    for word, bound in (("Megatron-Core", 0.08), ("Llama 3.1 8B", 0.03)):
        errors = [abs(r.error) for r in _by_source(results, word)]
        assert sum(errors) / len(errors) <= bound, word


def test_every_modern_run_fits_in_memory(results):
    # A published run happened: simwall must not call it out of memory.
    for word in ("MosaicML", "Megatron-Core"):
        rows = _by_source(results, word)
        assert [r.name for r in rows if not r.fits] == []
        assert all(r.peak_bytes <= r.capacity_bytes for r in rows)


def test_mosaicml_mean_error_within_8_percent(results):
    rows = _by_source(results, "MosaicML")
    errors = [abs(r.error) for r in rows]
    assert sum(errors) / len(errors) <= 0.08, [(r.name, round(100 * r.error, 1)) for r in rows]


def test_memory_verdicts_in_summary_and_output(results):
    s = {x["source"]: x for x in v.summarize(results)}
    mosaic = next(x for k, x in s.items() if "MosaicML" in k)
    assert mosaic["memory"] == {"n": 9, "fit": 9, "do_not_fit": []}
    zero = next(x for k, x in s.items() if "Rajbhandari" in k)
    assert zero["memory"] is None                     # memory cases simulate no step
    text = v.render(results)
    assert "9 of 9 fit in memory" in text
    # Every published run happened, so each must fit. The smallest NeMo CP 2 run (8 GPUs)
    # was 3.4 GB over before Megatron-Core's in-place cross-entropy gradient, its
    # view-only DP buckets and the fragmentation of transient bytes only were modelled
    # (docs/memory-model.md, issue 16); it now fits with 1.1 GB to spare.
    assert text.rstrip().endswith("memory: all 74 published runs fit")
    doc = json.loads(v.render(results, fmt="json"))
    assert doc["memory"]["do_not_fit"] == []
    assert all("fits" in c for c in doc["cases"])


def test_a_run_that_does_not_fit_is_counted():
    # Same MPT 70B row with no recompute and the 40 GB part: cannot fit; the verdict says so.
    cf = v.load_cases(next(p for p in v.bundled_case_files() if p.name.startswith("mosaicml")))
    case = next(c for c in cf.cases if c.name == "mpt-70b-a100-40g-128")
    bad = v.Case(name="oom", overrides={**case.overrides, "plan.recompute": "none"},
                 metric=case.metric, published=case.published)
    r = v.evaluate(cf, bad)
    assert r.fits is False and r.peak_bytes > r.capacity_bytes
    text = v.render([r])
    assert "  NO" in text and "memory: the published run does NOT fit: oom" in text


def test_stored_coverage_table_is_current(results):
    """simwall/cases/coverage.json (what every run's confidence statement reads) is what
    the bundled cases measure now; regenerate with `simwall validate --write-coverage`."""
    stored = v.coverage_path().read_text(encoding="utf-8")
    assert stored == v.coverage_text(results), \
        "stale coverage table: run `python -m simwall validate --write-coverage`"


def test_coverage_groups_devices_and_links(results):
    cov = v.coverage(results)
    a100 = {g["case_file"]: g for g in cov["devices"]["A100-SXM4-80GB"]}
    assert a100["megatron-2021-table1"]["cases"] == 10
    assert "H100-SXM5-80GB" in cov["devices"] and "B200" not in cov["devices"]
    assert {"NVLink3", "IB-HDR", "NVLink4", "IB-NDR"} <= set(cov["links"])
    assert {g["kind"] for g in cov["formulas"]} == {"memory", "activation"}
    # Energy rows are kept apart from the step-time groups of a device (issue 19).
    assert {g["kind"] for g in cov["energy"]} == {"energy"}
    assert all(g["kind"] == "throughput" for gs in cov["devices"].values() for g in gs)


def test_write_coverage_refuses_user_cases(tmp_path, capsys):
    from simwall.cli import main

    path = tmp_path / "mine.yaml"
    path.write_text(USER_CASES)
    assert main(["validate", "--cases", str(path), "--write-coverage"]) == 2
    assert "--write-coverage" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# Public FSDP / ZeRO-3 runs (issue 15): validation only. The <= 10 % mean target of issue
# 15 is not asserted here: with DeepSpeed's 2021 gather (plan.zero3_gather_impl:
# per_param_list, no prefetch) the Narayanan et al. ZeRO-3 rows still miss by +6 % to
# +58 % (docs/validation.md), though their throughput falls with the DP degree. The bounds
# below only guard today's figures (group 19.3 %, its FSDP-paper rows 4.3 %) against
# regressions.


def test_sc21_zero3_rows_fall_with_dp(results):
    by = {r.name: r.predicted for r in _by_source(results, "Public FSDP / ZeRO-3")}
    for size, counts in (("174.6b", (384, 768, 1536)), ("529.6b", (640, 1120, 2240))):
        tf = [by[f"sc21-zero3-{size}-{n}"] for n in counts]
        assert tf[0] > tf[1] > tf[2]
        assert tf[2] < 0.7 * tf[0]
    assert by["sc21-zero3-174.6b-1536"] < 0.6 * by["sc21-zero3-174.6b-384"]
    errors = [abs(r.error) for r in _by_source(results, "Public FSDP / ZeRO-3")]
    assert sum(errors) / len(errors) <= 0.25
    fsdp = [abs(r.error) for r in _by_source(results, "Public FSDP / ZeRO-3")
            if r.name.startswith("fsdp-")]
    assert len(fsdp) == 4 and sum(fsdp) / len(fsdp) <= 0.07


def test_fsdp_zero3_group_present_and_validation_only(results):
    names = {p.name for p in v.bundled_case_files()}
    assert {"fsdp-zero3-public.yaml", "fsdp-ibm-llama-a100.yaml"} <= names
    rows = _by_source(results, "Public FSDP / ZeRO-3")
    assert len(rows) == 10
    assert {r.metric for r in rows} == {"hardware_tflops_per_device"}
    ibm = _by_source(results, "PyTorch/IBM FSDP")
    assert len(ibm) == 6 and {r.metric for r in ibm} == {"tokens_per_s"}
    # Hybrid sharding (plan.dp_shard) makes the README's HSDP rows simulable.
    assert {r.name for r in ibm if "hsdp" in r.name} == {"ibm-hsdp-llama7b-b2-128",
                                                         "ibm-hsdp-llama13b-b1-128"}
    for r in rows + ibm:
        assert not r.fit                       # nothing fitted on these rows
        assert r.predicted > 0
    # Every case is a ZeRO-3 / FULL_SHARD run without model parallelism.
    for name in ("fsdp-zero3-public.yaml", "fsdp-ibm-llama-a100.yaml"):
        cf = v.load_cases(next(p for p in v.bundled_case_files() if p.name == name))
        for case in cf.cases:
            assert (case.overrides["plan.zero"], case.overrides["plan.tp"],
                    case.overrides["plan.pp"]) == (3, 1, 1), case.name


def test_every_fsdp_zero3_run_fits_in_memory(results):
    # A published run happened: simwall must not call it out of memory (the 529.6B run on
    # 640 GPUs at micro-batch 4 is the paper's tightest: 560 GPUs did not fit).
    rows = _by_source(results, "Public FSDP / ZeRO-3") + _by_source(results, "PyTorch/IBM FSDP")
    assert [r.name for r in rows if not r.fits] == []
    assert all(r.peak_bytes <= r.capacity_bytes for r in rows)
def test_nemo_context_parallel_rows_load_and_run(results):
    """The NeMo Llama 3.1 8B runs (cp 2, issue 16): five rows, nothing fitted, each
    simulated with its CP degree."""
    assert "nemo-llama31-8b-h100.yaml" in {p.name for p in v.bundled_case_files()}
    rows = _by_source(results, "Llama 3.1 8B")
    assert len(rows) == 5
    assert not any(r.fit for r in rows)
    assert all(r.predicted > 0 and r.fits is not None for r in rows)
    cf = v.load_cases(next(p for p in v.bundled_case_files()
                           if p.name == "nemo-llama31-8b-h100.yaml"))
    assert all(c.overrides["plan.cp"] == 2 for c in cf.cases)


# ---------------------------------------------------------------------------------------
# Mixture of experts (issue 16): Grok 1 314B (8 experts, top-2) on H100 with expert
# parallelism, NVIDIA dgxc-benchmarking v24.11.1 (NeMo 24.09), BF16 and FP8. Validation
# only (held out of the H100 fit). Since the H100 fit simwall is 5-9 % fast in BF16 (7.9 %
# mean) and 7-16 % fast in FP8 (13.1 %; docs/validation.md, "Mixture of experts" and
# "H100 calibration"); the bounds below only guard today's errors against regressions.

GROK_FILES = ("dgxc-grok1-314b-h100.yaml", "dgxc-grok1-314b-h100-fp8.yaml")


@pytest.mark.parametrize(("name", "precision", "bound"),
                         [(GROK_FILES[0], "BF16", 0.10), (GROK_FILES[1], "FP8", 0.16)])
def test_grok1_moe_rows_load_and_run(results, name, precision, bound):
    assert name in {p.name for p in v.bundled_case_files()}
    rows = _by_source(results, f"Grok 1 314B MoE pre-training on H100, {precision}")
    assert len(rows) == 9
    assert not any(r.fit for r in rows)                   # nothing fitted on these rows
    assert [r.name for r in rows if not r.fits] == []     # published runs fit in memory
    errors = [abs(r.error) for r in rows]
    assert sum(errors) / len(errors) <= bound, [(r.name, round(100 * r.error, 1))
                                                 for r in rows]
    cf = v.load_cases(next(p for p in v.bundled_case_files() if p.name == name))
    for case in cf.cases:                                   # an MoE model, expert parallel
        assert (case.overrides["model.experts"], case.overrides["model.top_k"]) == (8, 2)
        assert case.overrides["plan.ep"] > 1


# ---------------------------------------------------------------------------------------
# Published runs outside the validation set (docs/validation.md, "Published runs outside
# the validation set"): example case files, not bundled and fitted on nothing. They must
# stay loadable and simulable as the schema moves, and the docs' table must say what they
# print today.

_EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "outside-validation"


def test_outside_validation_examples_run_and_match_the_docs():
    files = sorted(_EXAMPLES.glob("*.yaml"))
    assert [p.name for p in files] == ["llama3-405b-128k-h100.yaml", "llama3-405b-h100.yaml",
                                       "mtnlg-530b-a100.yaml", "torchtitan-llama3-a100.yaml"]
    assert not {p.name for p in files} & {p.name for p in v.bundled_case_files()}
    rows = v.run_cases([v.load_cases(p) for p in files])
    assert len(rows) == 10
    docs = (_EXAMPLES.parents[1] / "docs" / "validation.md").read_text(encoding="utf-8")
    section = docs.split("### Published runs outside the validation set")[1]
    section = section.split("\n## ")[0]
    for r in rows:
        assert not r.fit and math.isfinite(r.predicted) and r.predicted > 0
        assert f"{100 * r.error:+.1f} %" in section, r.name
    # The one plan the docs say simwall rejects: Megatron's interleaved warm-up at 8,192 GPUs.
    assert [r.name for r in rows if not r.fits] == ["8k-8192gpu-v2"]
