"""Framework rules (simwall/plan/frameworks.py), plan/check records, setting origins."""

import csv
import io
import json

import pytest

import simwall
from simwall.cli.main import main
from simwall.config import load_workload
from simwall.plan import NONE_KNOWN, Plan, framework_label, frameworks_for
from simwall.report import RESERVED_COLUMNS
from simwall.studies.check import check, setting_origins
from simwall.studies.search import search, search_records
from simwall.studies.sweeps import sweep


def _plan(**kw):
    base = {"tp": 1, "pp": 1, "dp": 8, "virtual_stages": 1, "sequence_parallel": False,
            "zero": 0, "recompute": "none", "schedule": "1f1b", "micro_batch": 1,
            "global_batch": 64, "stage_layers": (8,)}
    base.update(kw)
    if base["pp"] > 1 and len(base["stage_layers"]) == 1:
        n = base["pp"] * base["virtual_stages"]
        base["stage_layers"] = (8 // n,) * n
    return Plan(**base)


def test_zero3_with_pp_runs_on_no_framework():
    p = _plan(pp=2, dp=4, zero=3)
    assert frameworks_for(p) == ()
    assert framework_label(p) == NONE_KNOWN


def test_framework_rules():
    assert frameworks_for(_plan(zero=1)) == ("megatron", "deepspeed")
    assert frameworks_for(_plan(zero=3)) == ("deepspeed", "fsdp", "fsdp2")
    assert frameworks_for(_plan(zero=2, tp=2, dp=4)) == ("deepspeed", "fsdp2")
    # DeepSpeed's PipelineEngine: ZeRO-1 at most, 1F1B-style schedule only.
    assert "deepspeed" in frameworks_for(_plan(pp=2, dp=4, zero=1))
    assert "deepspeed" not in frameworks_for(_plan(pp=2, dp=4, zero=2))
    assert frameworks_for(_plan(pp=2, dp=4, zero=1, schedule="interleaved",
                                virtual_stages=2)) == ("megatron",)
    # Megatron-LM: no GPipe schedule, no ZeRO-2/3.
    assert "megatron" not in frameworks_for(_plan(pp=2, dp=4, schedule="gpipe"))
    assert "megatron" not in frameworks_for(_plan(zero=2))
    # Plain FSDP: no ZeRO-1, no TP.
    assert "fsdp" not in frameworks_for(_plan(zero=1))
    assert "fsdp" not in frameworks_for(_plan(zero=3, tp=2, dp=4))
    # Offload of parameters: ZeRO-3 only (DeepSpeed offload_param).
    assert frameworks_for(_plan(zero=2, offload="optimizer+params")) == ("fsdp2",)


@pytest.fixture(scope="module")
def gpt2_search():
    return search("gpt2", "single-node", top=3)


def test_plan_records_have_sweep_columns(gpt2_search):
    recs = search_records(gpt2_search)
    assert [r["search.rank"] for r in recs] == [1, 2, 3]
    [point] = list(sweep({"workload": "gpt2", "cluster": "single-node", "overrides": {}},
                         {"plan.zero": [1]}))
    assert point["error"] is None
    # Every column of a sweep record but the sweep's own axis columns (sweep.<key>).
    sweep_cols = {c for c in point if c in RESERVED_COLUMNS or not c.startswith("sweep.")}
    for r in recs:
        assert sweep_cols <= set(r)
        assert {"search.estimate_s", "search.why", "search.framework"} <= set(r)
        assert r["search.framework"] in r["search.why"]


def test_plan_format_json_and_csv(capsys):
    assert main(["plan", "gpt2", "--cluster", "single-node", "--top", "2", "-q",
                 "--format", "json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert len(recs) == 2 and recs[0]["plan.tp"] >= 1
    assert main(["plan", "gpt2", "--cluster", "single-node", "--top", "2", "-q",
                 "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 2 and list(rows[0]) == list(recs[0])


def test_plan_framework_filter():
    res = search("gpt2", "single-node", top=3, framework="megatron")
    assert res.ranked
    assert all("megatron" in r.framework for r in res.ranked)
    assert all(r.candidate.plan.zero <= 1 for r in res.ranked)


def test_setting_origins():
    w = load_workload("llama2-7b", [("plan.tp", 2)])
    origins = {origin: dict(kv) for origin, kv in setting_origins(w).items()}
    assert origins["--set"] == {"plan.tp": 2}
    assert origins["default"]["plan.sequence_parallel"] is False
    assert "training.global_batch" in origins["file"]
    assert not set(origins["file"]) & set(origins["default"])


def test_check_lists_defaults_and_record(capsys):
    res = check("llama2-70b", None, {"plan.tp": 1, "plan.pp": 1})
    assert res.status == "does-not-fit"
    text = "\n".join(res.lines)
    assert "from --set: plan.tp=1, plan.pp=1" in text
    assert "from defaults:" in text and "plan.offload=none" in text
    # The bundled file sets sequence parallelism: it is listed as coming from the file.
    assert "plan.sequence_parallel=true" in next(ln for ln in res.lines
                                                 if ln.startswith("from workloads/"))
    rec = res.record
    assert rec["check.status"] == "does-not-fit" and rec["step_time_s"] is None
    assert "plan.sequence_parallel" in rec["check.from_file"]
    assert main(["check", "llama2-70b", "--set", "plan.tp=1", "--set", "plan.pp=1",
                 "-q", "--format", "csv"]) == 1
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1 and rows[0]["memory.fits"] == "false"


def test_fsdp2_is_a_framework_setting_with_the_fsdp_preset():
    # check's "runs on: fsdp2" can be written back as plan.framework; it costs as fsdp.
    over = {"cluster.nodes": 2, "plan.zero": 3, "plan.pp": 1}
    r = simwall.simulate("gpt2", "dgx-a100", **over, **{"plan.framework": "fsdp2"})
    fsdp = simwall.simulate("gpt2", "dgx-a100", **over, **{"plan.framework": "fsdp"})
    assert r.plan["framework"] == "fsdp" and "fsdp2" in r.plan["runs_on"].split(", ")
    assert r.step_time_s == fsdp.step_time_s
    with pytest.raises(simwall.ConfigError, match="plan.framework: fsdp2 does not run"):
        simwall.simulate("gpt2", "dgx-a100", **{**over, "plan.framework": "fsdp2",
                                                "plan.zero": 1})


def test_run_names_the_frameworks_that_run_the_plan(capsys):
    # ZeRO-3 with PP runs on no framework: the preset that stands in says so.
    assert main(["run", "gpt2", "--cluster", "dgx-a100", "--set", "cluster.nodes=2",
                 "--set", "plan.zero=3", "--set", "plan.pp=2"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("framework:"))
    assert line.startswith("framework: deepspeed (")
    assert line.endswith(f"; runs on: {NONE_KNOWN}; deepspeed's semantics stand in")
    assert main(["run", "gpt2", "--cluster", "dgx-a100", "--set", "cluster.nodes=2",
                 "--set", "plan.zero=1", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["plan"]["runs_on"] == "megatron, deepspeed"
