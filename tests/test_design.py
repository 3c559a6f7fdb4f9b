"""``simwall design`` (issue 19): clusters against workloads, each pair with the best plan
of the plan search, in one table / JSON / CSV and one plot."""

from __future__ import annotations

import csv
import io
import json

import pytest

from simwall import simulate
from simwall.cli import main
from simwall.engine.prepare import load_inputs
from simwall.errors import ConfigError
from simwall.studies.design import (
    DESIGN_COLUMNS,
    binding_resource,
    design,
    design_records,
    render_design,
)
from simwall.studies.search import plan_overrides, search
from simwall.studies.whatif import AXES

#: Small enough for a test: one and two DGX nodes.
ONE_NODE = {"cluster.nodes": 1}


@pytest.fixture(scope="module")
def rows():
    return design(["gpt2", "llama2-7b"], ["dgx-a100", "dgx-h100"], ONE_NODE)


def test_one_row_per_pair_in_order(rows):
    assert [(r["cluster"], r["workload"]) for r in rows] == [
        ("dgx-a100", "gpt2"), ("dgx-a100", "llama2-7b"),
        ("dgx-h100", "gpt2"), ("dgx-h100", "llama2-7b")]
    assert all(r["devices"] == 8 for r in rows)


def test_best_plan_fits_and_is_the_search_best(rows):
    for r in rows:
        assert r["fits"] is True
        assert r["peak_bytes"] <= r["capacity_bytes"]
        best = search(r["workload"], r["cluster"], top=1, overrides=ONE_NODE).ranked[0]
        assert r["step_time_s"] == best.step_time_s
        assert r["mfu"] == pytest.approx(best.result.mfu)


def test_binding_resource_is_the_most_negative_elasticity(rows):
    for r in rows:
        el = r["elasticities"]
        assert set(el) == set(AXES) - {"memory_capacity"}
        assert r["binding"] == binding_resource(el)
        assert r["binding"] is None or el[r["binding"]] == min(el.values()) < 0
    assert binding_resource({"nic": 0.0, "nvlink": 0.0}) is None
    assert binding_resource({"nic": -0.2, "nvlink": -0.2}) == "nic"


def test_energy_and_price():
    rows = design(["gpt2"], ["dgx-a100"], {**ONE_NODE, "cluster.price_per_device_hour": 2.0},
                  with_binding=False)
    r = rows[0]
    assert r["j_per_token"] > 0 and r["w_per_device"] > 0
    tokens_per_step = r["tokens_per_s"] * r["step_time_s"]
    assert r["cost_per_million_tokens"] == pytest.approx(
        2.0 * r["devices"] * r["step_time_s"] / 3600 / tokens_per_step * 1e6)
    assert r["elasticities"] == {} and r["binding"] is None
    assert "2 workload" not in render_design(rows)


def test_slower_network_never_speeds_the_same_plan():
    """A cluster whose NICs are 10x slower: the fast cluster's best plan is not faster on
    it, and the slow cluster's own best is not faster than that plan on the fast one
    would suggest (its best plan on the fast cluster is at least as fast)."""
    fast = load_inputs("gpt2", "dgx-a100", {"cluster.nodes": 2})[1]
    slow = load_inputs("gpt2", "dgx-a100", {"cluster.nodes": 2,
                                            "cluster.inter.link.bandwidth": 2.5e9})[1]
    f, s = design(["gpt2"], [fast, slow], with_binding=False)
    assert (f["cluster"], s["cluster"]) == ("dgx-a100#1", "dgx-a100#2")
    best_fast = search("gpt2", fast, top=1).ranked[0].candidate.plan
    best_slow = search("gpt2", slow, top=1).ranked[0].candidate.plan
    on_slow = simulate("gpt2", slow, **plan_overrides(best_fast)).step_time_s
    assert on_slow >= f["step_time_s"]
    on_fast = simulate("gpt2", fast, **plan_overrides(best_slow)).step_time_s
    assert s["step_time_s"] >= on_fast


def test_json_and_csv_columns(capsys):
    argv = ["design", "gpt2", "--cluster", "dgx-a100", "--set", "cluster.nodes=1",
            "--no-binding", "--quiet"]
    assert main([*argv, "--format", "json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert len(recs) == 1 and list(recs[0]) == list(DESIGN_COLUMNS)
    assert recs[0]["fits"] is True and recs[0]["workload"] == "gpt2"
    assert main([*argv, "--format", "csv"]) == 0
    table = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert table[0] == list(DESIGN_COLUMNS) and len(table) == 2


def test_format_help_lists_designs_own_columns(capsys):
    """--format json|csv writes design's columns, not a sweep record's: the help says so."""
    assert main(["design", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "sweep record" not in text
    listed = text[text.index("design's own columns ("):]
    for column in DESIGN_COLUMNS:
        assert f" {column}," in listed or f"({column}," in listed, column
    assert "elasticity.RESOURCE" in listed


def test_records_carry_elasticities(rows):
    recs = design_records(rows)
    keys = list(recs[0])
    assert keys[:len(DESIGN_COLUMNS)] == list(DESIGN_COLUMNS)
    assert keys[len(DESIGN_COLUMNS):] == sorted(
        f"elasticity.{a}" for a in AXES if a != "memory_capacity")


def test_plot(tmp_path, rows):
    pytest.importorskip("matplotlib")
    from simwall.studies.plots import design_plot, save
    fig, data = design_plot(rows)
    assert len(data) == len(rows)
    assert save(fig, tmp_path / "d.png").stat().st_size > 0


@pytest.mark.parametrize("argv, needles", [
    (["design", "gpt2", "--cluster", "no-such-cluster"], ["no-such-cluster"]),
    (["design", "gpt2", "--cluster", "dgx-a100", "--top-plans", "0"], ["--top-plans"]),
    (["design", "gpt2"], ["--cluster"]),
    (["design", "gpt2", "--cluster", "dgx-a100", "--plot", "x.txt"], ["--plot", ".png"]),
    (["design", "gpt2", "--cluster", "dgx-a100", "--set", "model.layerz=4"], ["model.layerz"]),
])
def test_bad_input_is_one_located_line(capsys, argv, needles):
    code = main([*argv, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("simwall: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_a_workload_given_twice_gets_two_labels():
    rows = design(["gpt2", "gpt2"], ["single-node"], with_binding=False)
    assert [r["workload"] for r in rows] == ["gpt2#1", "gpt2#2"]
    assert "2 workload(s)" in render_design(rows)


def test_one_name_where_a_list_is_expected_is_refused():
    with pytest.raises(ConfigError, match=r"workloads: expected a list \(e.g. \['gpt2'\]\)"):
        design("gpt2", ["single-node"])
