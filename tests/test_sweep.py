"""Tests of simwall.sweep: expansion, records, executors, journal, resume, file formats."""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import multiprocessing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simwall.studies.sweeps as sw
from simwall import read_records
from simwall.cli import sweep as sweep_command
from simwall.cli.main import build_parser
from simwall.errors import ConfigError
from simwall.studies.sweeps import (
    expand,
    load_sweep,
    run_sweep,
    sweep,
)

# 3 x 2 x 2 = 12 points; plan.tp = 7 does not divide the 8 heads: an error record.
GRID = {"plan.tp": [1, 7, 2], "training.micro_batch": [1, 2], "plan.pp": [1, 2]}


def base(tiny: str) -> dict:
    return {"workload": tiny, "cluster": "single-node", "overrides": {"plan.zero": 1}}


@pytest.fixture(scope="module")
def serial_records(tiny) -> list[dict]:
    return list(sweep(base(tiny), GRID))


# ---------------------------------------------------------------------------------------
# Expansion


@settings(deadline=None, derandomize=True, max_examples=30)
@given(st.lists(st.integers(1, 3), min_size=0, max_size=3), st.integers(0, 3))
def test_expand_is_the_ordered_product(sizes, zip_len):
    grid = {f"a.k{i}": list(range(n)) for i, n in enumerate(sizes)}
    zipped = {"z.x": list(range(zip_len)), "z.y": [10 * i for i in range(zip_len)]} \
        if zip_len else {}
    points = expand(grid, zipped)
    assert len(points) == math.prod(sizes) * (zip_len or 1)
    # Sweep-index order: the last grid axis varies fastest (lexicographic), zip innermost.
    keys = [tuple(p[k] for k in grid) + ((p["z.x"],) if zipped else ()) for p in points]
    assert keys == sorted(keys)
    assert all(p["z.y"] == 10 * p["z.x"] for p in points) if zipped else True


def test_sweep_file_validation_is_located(tmp_path):
    cases = {
        "grid: {plan.tp: []}\n": "grid.plan.tp: expected a non-empty list",
        "zip: {plan.tp: [1, 2], plan.pp: [1]}\n": "zip: every list must have the same length",
        "grdi: {plan.tp: [1]}\n": "did you mean 'grid'",
        "grid: {plan.tp: {range: [1, 4, 0]}}\n": "step must not be 0",
        "grid: {plan.tp: 4}\n": "grid.plan.tp",
    }
    for body, needle in cases.items():
        p = tmp_path / "s.yaml"
        p.write_text("workload: gpt2\n" + body)
        with pytest.raises(ConfigError) as err:
            load_sweep(p)
        assert str(p) in str(err.value) and needle in str(err.value), str(err.value)


def test_range_axis(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("workload: gpt2\ngrid:\n  plan.pp: {range: [1, 7, 2]}\n"
                 "  cluster.inter.link.bandwidth: {range: [1.0e9, 2.0e9, 0.5e9]}\n")
    grid, _ = load_sweep(p).axes()
    assert grid == {"plan.pp": [1, 3, 5], "cluster.inter.link.bandwidth": [1e9, 1.5e9]}


# ---------------------------------------------------------------------------------------
# Records


def test_failing_point_is_a_record_and_the_sweep_goes_on(serial_records):
    assert [r["sweep.index"] for r in serial_records] == list(range(12))
    bad = [r for r in serial_records if r["sweep.plan.tp"] == 7]
    assert len(bad) == 4
    for r in bad:
        assert "plan.tp: must divide model.heads (8), got 7" in r["error"]
        assert "\n" not in r["error"] and r["sweep.key"].startswith("raw-")
    good = [r for r in serial_records if r["sweep.plan.tp"] != 7]
    assert len(good) == 8 and all(r["error"] is None and r["step_time_s"] > 0 for r in good)
    assert all(r["plan.tp"] == r["sweep.plan.tp"] for r in good)
    assert len({r["sweep.key"] for r in serial_records}) == 12


def test_key_is_of_the_resolved_config_not_the_overrides(tiny):
    a = sw.run_point((0, tiny, "single-node", {}, {"plan.dp": "auto"}))
    b = sw.run_point((1, tiny, "single-node", {}, {"plan.dp": 8}))
    c = sw.run_point((2, tiny, "single-node", {}, {"plan.dp": 8, "plan.zero": 1}))
    assert a["error"] is None and b["error"] is None
    assert a["sweep.key"] == b["sweep.key"] != c["sweep.key"]


def _spawn_pool() -> cf.ProcessPoolExecutor:
    return cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))


def test_local_processes_and_dask_give_identical_records(tiny, serial_records):
    with _spawn_pool() as pool:
        local = list(sweep(base(tiny), GRID, executor=pool))
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        # What `simwall sweep --address tcp://...` does: Client(address).get_executor().
        ex = sw.make_executor("local", address=cluster.scheduler_address)
        try:
            dask = list(sweep(base(tiny), GRID, executor=ex.executor))
        finally:
            ex.close()
    dump = [json.dumps(r) for r in serial_records]
    assert [json.dumps(r) for r in local] == dump
    assert [json.dumps(r) for r in dask] == dump


# ---------------------------------------------------------------------------------------
# Files, journal, resume


def sweep_file(tmp_path: Path, tiny: str) -> Path:
    p = tmp_path / "sweep.yaml"
    p.write_text(f"workload: {tiny}\ncluster: single-node\nset: {{plan.zero: 1}}\n"
                 "grid:\n  plan.tp: [1, 7, 2]\n  training.micro_batch: [1, 2]\n"
                 "  plan.pp: [1, 2]\n")
    return p


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_output_formats_sorted_and_readable(tmp_path, tiny, serial_records, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"r{suffix}"
    summary = run_sweep(load_sweep(sweep_file(tmp_path, tiny)), out, progress=False)
    assert (summary.points, summary.ran, summary.errors) == (12, 12, 4)
    assert not (tmp_path / f"r{suffix}.partial.jsonl").exists()
    back = read_records(out)
    assert [r["sweep.index"] for r in back] == list(range(12))
    for got, want in zip(back, serial_records):
        assert got["sweep.key"] == want["sweep.key"] and got["error"] == want["error"]
        if want["error"] is None:
            assert got["step_time_s"] == want["step_time_s"]
            assert got["memory.fits"] is want["memory.fits"]
    if suffix == ".csv":
        header = out.read_text().splitlines()[0].split(",")
        assert header[:3] == ["sweep.index", "sweep.key", "error"]


def test_resume_skips_finished_points(tmp_path, tiny, monkeypatch):
    spec = load_sweep(sweep_file(tmp_path, tiny))
    full = tmp_path / "full.jsonl"
    run_sweep(spec, full, progress=False)
    # A killed sweep: the journal has 5 whole records and half a line.
    out = tmp_path / "r.csv"
    journal = tmp_path / "r.csv.partial.jsonl"
    lines = full.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:5]) + lines[5][: len(lines[5]) // 2])
    calls = []
    real = sw.run_point
    monkeypatch.setattr(sw, "run_point", lambda t: calls.append(t[0]) or real(t))
    summary = run_sweep(spec, out, resume=True, progress=False)
    assert sorted(calls) == list(range(5, 12))
    assert (summary.ran, summary.reused) == (7, 5)
    assert [r["sweep.key"] for r in read_records(out)] == \
        [r["sweep.key"] for r in read_records(full)]
    # Resuming a finished sweep from its final file simulates nothing.
    calls.clear()
    run_sweep(spec, out, resume=True, progress=False)
    assert calls == []
    # Without --resume the journal of an earlier run is discarded.
    calls.clear()
    run_sweep(spec, full, progress=False)
    assert len(calls) == 12 and len(read_records(full)) == 12


def test_jsonl_output_is_the_journal_and_byte_identical(tmp_path, tiny):
    spec = load_sweep(sweep_file(tmp_path, tiny))
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    run_sweep(spec, a, progress=False)
    with _spawn_pool() as pool:
        run_sweep(spec, b, executor=pool, progress=False)
    assert a.read_bytes() == b.read_bytes()


def test_sweep_command_serial(tmp_path, tiny, capsys):
    parser = build_parser(full=("sweep",))
    out = tmp_path / "r.csv"
    args = parser.parse_args(["sweep", str(sweep_file(tmp_path, tiny)), "-o", str(out),
                              "--executor", "serial"])
    assert sweep_command.run(args) == 0
    assert capsys.readouterr().out.strip() == \
        f"12 points (12 simulated, 0 reused, 4 with errors) -> {out}"
    args = parser.parse_args(["sweep", str(sweep_file(tmp_path, tiny)), "-o", str(out),
                              "--executor", "dask"])
    with pytest.raises(ConfigError, match="--address"):
        sweep_command.run(args)


def test_workload_path_relative_to_the_sweep_file(tmp_path, tiny, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.yaml").write_text(Path(tiny).read_text())
    (tmp_path / "sub" / "s.yaml").write_text("workload: w.yaml\ngrid: {plan.tp: [1]}\n")
    monkeypatch.chdir(tmp_path)
    spec = load_sweep("sub/s.yaml")
    assert spec.workload == str((tmp_path / "sub" / "w.yaml").resolve())
    recs = list(sweep(spec.base(), spec.axes()[0]))
    assert recs[0]["error"] is None and recs[0]["workload"] == "tiny"


def test_progress_bar_on_stderr_with_rate(tmp_path, tiny, capsys):
    pytest.importorskip("tqdm")
    run_sweep(load_sweep(sweep_file(tmp_path, tiny)), tmp_path / "r.jsonl", progress=True)
    err = capsys.readouterr().err
    assert "simwall sweep" in err and "12/12" in err and "cfg/s" in err


def test_cli_sweep_and_its_error_contract(tmp_path, tiny, capsys):
    from simwall.cli import main
    out = tmp_path / "r.jsonl"
    assert main(["sweep", str(sweep_file(tmp_path, tiny)), "-o", str(out),
                 "--executor", "serial"]) == 0
    assert len(read_records(out)) == 12
    capsys.readouterr()
    bad = tmp_path / "bad.yaml"
    bad.write_text("workload: gpt2\nzip: {plan.tp: [1, 2], plan.pp: [1]}\n")
    assert main(["sweep", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("simwall: error: ") and str(bad) in err[0]
    assert main(["sweep", str(sweep_file(tmp_path, tiny)), "-o", "r.xlsx"]) == 2
    assert "expected an output ending in .csv" in capsys.readouterr().err
