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
from simwall import read_records, write_records
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


# ---------------------------------------------------------------------------------------
# Refused before any point: other results in -o, a base that does not load, a grid entry
# (at its own line), an --address the executor would ignore


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("simwall: error: "), err
    return err[0]


def _no_point_runs(monkeypatch) -> None:
    monkeypatch.setattr(sw, "run_point", lambda task: pytest.fail("a point ran"))


@pytest.mark.parametrize("resume", [False, True])
def test_output_of_another_sweep_is_refused_untouched(tmp_path, tiny, capsys, monkeypatch,
                                                      resume):
    from simwall.cli import main
    mix = tmp_path / "mix.csv"
    assert main(["sweep", str(sweep_file(tmp_path, tiny)), "-o", str(mix),
                 "--executor", "serial", "--quiet"]) == 0  # 12 finished points
    before = mix.read_bytes()
    other = tmp_path / "other.yaml"
    other.write_text(f"workload: {tiny}\ncluster: single-node\ngrid: {{plan.pp: [1, 2]}}\n")
    capsys.readouterr()
    with monkeypatch.context() as m:
        _no_point_runs(m)
        assert main(["sweep", str(other), "-o", str(mix), "--executor", "serial"]
                    + (["--resume"] if resume else [])) == 2
    line = _one_error_line(capsys)
    assert f"{mix}: holds 12 records that are not points of this sweep" in line, line
    assert "another -o" in line and "remove the file" in line and "--overwrite" in line
    assert mix.read_bytes() == before
    # Asked for: --overwrite replaces them (with --resume, this sweep's records are kept).
    assert main(["sweep", str(other), "-o", str(mix), "--executor", "serial", "--quiet",
                 "--overwrite"] + (["--resume"] if resume else [])) == 0
    assert [r["sweep.plan.pp"] for r in read_records(mix)] == [1, 2]


def test_rerun_over_its_own_output_needs_no_flag(tmp_path, tiny):
    spec = load_sweep(sweep_file(tmp_path, tiny))
    out = tmp_path / "r.jsonl"
    run_sweep(spec, out, progress=False)
    assert run_sweep(spec, out, progress=False).ran == 12
    # A sweep grown by an axis value keeps every earlier record as one of its points.
    grown = spec.model_copy(update={"grid": {**spec.grid, "plan.tp": [1, 7, 2, 4]}})
    assert run_sweep(grown, out, resume=True, progress=False).reused == 12


def test_journal_of_another_sweep_and_foreign_lines_are_refused(tmp_path, tiny):
    spec = load_sweep(sweep_file(tmp_path, tiny))
    other = spec.model_copy(update={"grid": {"plan.pp": [1, 2]}})
    full = tmp_path / "full.jsonl"
    run_sweep(spec, full, progress=False)
    # A killed sweep's journal beside r.csv: 3 finished points of another sweep (tp = 2;
    # `other` runs tp = 1 only).
    journal = tmp_path / "r.csv.partial.jsonl"
    journal.write_text("".join(full.read_text().splitlines(keepends=True)[-3:]))
    for resume in (False, True):
        with pytest.raises(ConfigError, match=f"{journal}: holds 3 records that are not"):
            run_sweep(other, tmp_path / "r.csv", resume=resume, progress=False)
    assert len(read_records(journal)) == 3
    # A .jsonl output holding a line that is no record (and a torn last line, which is
    # a killed writer's and does not count).
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"sweep.index": 0, "sweep.key": "x"}\nnot json\n{"sweep.ind')
    with pytest.raises(ConfigError, match="holds 2 records that are not points"):
        run_sweep(spec, notes, progress=False)
    # --overwrite without --resume reads nothing there, a binary file included.
    notes.write_bytes(bytes(range(256)))
    assert run_sweep(spec, notes, progress=False, overwrite=True).ran == 12
    assert len(read_records(notes)) == 12


def test_resume_rewrites_a_torn_journal_before_appending(tmp_path, tiny, monkeypatch,
                                                        interrupted_at):
    """A record appended after a killed writer's half line would be unreadable: a second
    kill would lose it."""
    spec = load_sweep(sweep_file(tmp_path, tiny))
    full = tmp_path / "full.jsonl"
    run_sweep(spec, full, progress=False)
    journal = tmp_path / "r.csv.partial.jsonl"
    lines = full.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:5]) + lines[5][:20])
    killed_at_the_second, _ = interrupted_at(sw.run_point, 2)
    monkeypatch.setattr(sw, "run_point", killed_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, tmp_path / "r.csv", resume=True, progress=False)
    assert len(read_records(journal)) == 6


@pytest.mark.parametrize("body,line", [
    ("workload: nosuch\n", "s.yaml:1: workload: no bundled workload or file named 'nosuch'"),
    ("workload: {tiny}\ncluster: nosuch\n",
     "s.yaml:2: cluster: no bundled cluster or file named 'nosuch'"),
    ("workload: nosuch.yaml\n", "s.yaml:1: workload: no such file 'nosuch.yaml' next to"),
    ("workload: {tiny}\nset:\n  plan.zero: 1\n  cluster.nodes: 0\n",
     "s.yaml:4: set.cluster.nodes: expected an integer > 0 or 'auto', got 0"),
])
def test_base_that_does_not_load_is_refused_before_any_point(tmp_path, tiny, capsys,
                                                             monkeypatch, body, line):
    from simwall.cli import main
    p = tmp_path / "s.yaml"
    p.write_text(body.format(tiny=tiny) + "grid: {plan.tp: [1, 2]}\n")
    _no_point_runs(monkeypatch)
    assert main(["sweep", str(p), "-o", str(tmp_path / "r.csv"), "--executor",
                 "serial"]) == 2
    got = _one_error_line(capsys)
    assert got.startswith(f"simwall: error: {tmp_path}/{line}"), got
    if "nosuch'" in line:  # the message of 'simwall run nosuch' / '--cluster nosuch'
        argv = ["run", "nosuch"] if "workload" in line else ["run", tiny, "--cluster",
                                                              "nosuch"]
        assert main(argv) == 2
        located = f"simwall: error: {p}:{line.split(':')[1]}: "
        assert got.replace(located, "simwall: error: ") == _one_error_line(capsys)
    with pytest.raises(ConfigError, match="no bundled workload"):
        list(sweep({"workload": "nosuch"}, {"plan.tp": [1]}))


@pytest.mark.parametrize("axis", ["[]", "{range: [1, 1, 1]}", "{range: [1, 3]}",
                                  "{rnge: [1, 3, 1]}", "2", "{range: [0, 1000000, 1]}"])
def test_grid_entry_errors_point_at_its_line(tmp_path, axis):
    p = tmp_path / "s5.yaml"
    p.write_text(f"workload: gpt2\ngrid:\n  plan.pp: {axis}\n")
    with pytest.raises(ConfigError) as err:
        load_sweep(p)
    assert str(err.value).startswith(f"{p}:3: grid.plan.pp"), str(err.value)


def test_grid_entry_written_as_a_block_points_at_its_inner_key(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("workload: gpt2\ngrid:\n  plan.tp: [1]\n  cluster.device.peak_flops.bf16:\n"
                 "    range: [1, 3]\n")
    with pytest.raises(ConfigError) as err:
        load_sweep(p)
    assert str(err.value).startswith(f"{p}:5: grid.cluster.device.peak_flops.bf16.range:")


@pytest.mark.parametrize("executor", ["serial", "dask-local"])
def test_address_needs_the_dask_executor(tmp_path, tiny, capsys, monkeypatch, executor):
    from simwall.cli import main
    _no_point_runs(monkeypatch)
    assert main(["sweep", str(sweep_file(tmp_path, tiny)), "-o", str(tmp_path / "r.csv"),
                 "--executor", executor, "--address", "tcp://1.2.3.4:1"]) == 2
    assert f"--address: needs --executor dask (a running Dask scheduler); --executor " \
        f"{executor} would ignore it" in _one_error_line(capsys)
    with pytest.raises(ConfigError, match="--address: needs --executor dask"):
        sw.make_executor(executor, address="tcp://1.2.3.4:1")


@pytest.mark.parametrize("argv", [["--executor", "serial"],
                                  ["--executor", "dask", "--address", "tcp://1.2.3.4:1"]])
def test_workers_needs_an_executor_that_starts_processes(tmp_path, tiny, capsys, monkeypatch,
                                                        argv):
    from simwall.cli import main
    _no_point_runs(monkeypatch)
    assert main(["sweep", str(sweep_file(tmp_path, tiny)), "-o", str(tmp_path / "r.csv"),
                 "--workers", "2", *argv]) == 2
    assert "--workers: sets the processes of --executor local or dask-local" in \
        _one_error_line(capsys)


# ---------------------------------------------------------------------------------------
# The Python API: sweep() arguments checked as a sweep file's, records written whole,
# base files read as they are now, axis columns flat and shared with no caller


def test_a_sweep_generator_is_written_whole(tmp_path, tiny):
    """write_records once used the generator up on its column pass: a header only."""
    for suffix in (".csv", ".jsonl"):
        out = tmp_path / f"sw{suffix}"
        write_records(out, sweep(base(tiny), {"plan.pp": [1, 2]}))
        assert [r["sweep.plan.pp"] for r in read_records(out)] == [1, 2]


@pytest.mark.parametrize("args,kwargs,message", [
    ((None, GRID), {}, "base: expected a mapping like {'workload': 'gpt2', "),
    (("gpt2", GRID), {}, "base: expected a mapping like {'workload': 'gpt2', "),
    (({"workload": "gpt2", "clustr": "dgx-a100"}, GRID), {},
     ("base.clustr: unknown key; did you mean 'cluster'? (expected workload, cluster and "
      "overrides)")),
    (({"workload": "gpt2", "overides": {}}, GRID), {},
     "base.overides: unknown key; did you mean 'overrides'?"),
    (({"workload": "gpt2", "overrides": {"plan.zero": 1}, "set": {"plan.zero": 2}}, GRID), {},
     ("base: give the fixed overrides once, as 'overrides' (or 'set', as in a sweep file), "
      "not both")),
    (({"workload": 3}, GRID), {}, ("base.workload: expected a bundled name, a file path or a "
                                   "simwall Workload, got int 3")),
    (({"workload": "gpt2", "cluster": ["x"]}, GRID), {},
     "base.cluster: expected a bundled name, a file path or a simwall ClusterSpec"),
    (({"workload": "gpt2", "overrides": [1]}, GRID), {},
     "base.overrides: expected a mapping of key path -> value, got list [1]"),
    (({"workload": "gpt2", "set": {"plan.tpp": 1}}, GRID), {},
     "base.set.plan.tpp: unknown key; did you mean 'plan.tp'?"),
    (({"workload": "gpt2"}, [("plan.tp", [1])]), {},
     "grid: expected a mapping of key path -> list, got list"),
    (({"workload": "gpt2"}, {"plan.tp": []}), {},
     "grid.plan.tp: expected a non-empty list, got an empty list"),
    (({"workload": "gpt2"}, {"plan.tp": 2}), {},
     "grid.plan.tp: expected a non-empty list or {range: [start, stop, step]}, got 2"),
    (({"workload": "gpt2"}, {"plan.pp": [1, 2]}), {"zip": {"plan.pp": [1], "plan.tp": [1]}},
     "zip: key plan.pp is also in grid; use one of them"),
    (({"workload": "gpt2"}, {}), {"zip": {"plan.pp": [1, 2], "plan.tp": [1]}},
     "zip: every list must have the same length, got plan.pp: 2, plan.tp: 1"),
    (({"workload": "gpt2"}, {}), {"zip": {"plan.zero": 3}},
     "zip.plan.zero: expected a non-empty list, got 3"),
    (({"workload": "gpt2"}, {}), {"zip": [1]},
     "zip: expected a mapping of key path -> list, got list"),
    (({"workload": "gpt2"}, {"plan.tp": [object()]}), {},
     "grid.plan.tp[0]: expected a number, string, bool, None, list or dict, got object"),
    (({"workload": "gpt2"}, GRID), {"executor": 3},
     ("executor: expected None (run here) or a concurrent.futures.Executor (an object with "
      ".submit), got int 3")),
])
def test_sweep_arguments_are_checked_at_the_call(monkeypatch, args, kwargs, message):
    """As a sweep file is, before any point runs: each refusal a ConfigError naming the
    argument (was: AttributeError, TypeError, IndexError, or a key silently ignored)."""
    _no_point_runs(monkeypatch)
    with pytest.raises(ConfigError) as err:
        sweep(*args, **kwargs)  # not iterated: refused at the call
    assert str(err.value).startswith(message), str(err.value)


def test_a_sweep_file_refuses_an_empty_zip_list_by_its_key(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("workload: gpt2\nzip:\n  plan.tp: []\n")
    with pytest.raises(ConfigError, match=r"s.yaml:3: zip.plan.tp: expected a non-empty "
                                          r"list, got \[\]"):
        load_sweep(p)


def test_base_set_is_the_sweep_file_name_for_overrides(tiny):
    grid = {"plan.pp": [1, 2]}
    by_set = list(sweep({"workload": tiny, "cluster": "single-node",
                         "set": {"plan.zero": 1}}, grid))
    assert by_set == list(sweep(base(tiny), grid))


def test_a_typed_workload_and_cluster_are_a_base_as_for_simulate(tiny):
    from simwall.config import load_cluster, load_workload
    typed = {"workload": load_workload(tiny), "cluster": load_cluster("single-node"),
             "overrides": {"plan.zero": 1}}
    got = list(sweep(typed, GRID))
    want = list(sweep(base(tiny), GRID))
    # A point that does not resolve is keyed by its raw inputs, here a document.
    assert [r["sweep.key"].startswith("raw-") for r in got] == \
        [r["sweep.key"].startswith("raw-") for r in want]
    strip = [{**r, "sweep.key": None} if r["error"] else r for r in got]
    assert strip == [{**r, "sweep.key": None} if r["error"] else r for r in want]


def test_a_base_file_edited_between_sweeps_is_read_again(tmp_path, tiny, monkeypatch):
    """The base was memoised by its path: an edited workload kept its old content in the
    sweep while simulate() read the new one. Same-size edits, moments apart."""
    from simwall import simulate
    workload, cluster, graph = (tmp_path / n for n in ("w.yaml", "c.yaml", "g.yaml"))
    workload.write_text(Path(tiny).read_text())
    cluster.write_text("name: two\ndevice: A100-SXM4-80GB\ngraph: g.yaml\n")
    graph.write_text("nodes:\n  - {name: a, kind: device}\n  - {name: b, kind: device}\n"
                     "  - {name: sw, kind: switch, node: 0}\nlinks:\n"
                     "  - {between: [a, sw], type: NVLink3}\n"
                     "  - {between: [b, sw], type: NVLink3}\n")
    loads = []
    real = sw.load_inputs
    monkeypatch.setattr(sw, "load_inputs", lambda *a: loads.append(a) or real(*a))
    grid = {"plan.zero": [0, 1]}

    def swept() -> list[float]:
        recs = list(sweep({"workload": str(workload), "cluster": str(cluster)}, grid))
        assert all(r["error"] is None for r in recs), recs
        return [r["step_time_s"] for r in recs]

    def simulated() -> list[float]:
        return [simulate(str(workload), str(cluster), **{"plan.zero": z}).step_time_s
                for z in grid["plan.zero"]]

    first = swept()
    loaded = len(loads)
    assert first == simulated() == swept() and len(loads) == loaded  # kept while unchanged
    workload.write_text(workload.read_text().replace("layers: 8", "layers: 4"))
    second = swept()
    assert second == simulated() and second != first and len(loads) > loaded
    loaded = len(loads)
    graph.write_text(graph.read_text().replace("NVLink3", "NVLink4"))
    third = swept()
    assert third == simulated() and third != second and len(loads) > loaded


def test_axis_columns_are_flat_and_shared_with_no_caller(tiny):
    layers = [[4, 4], [2, 6]]
    grid = {"plan.stage_layers": layers, "plan.pp": [2]}
    records = sweep(base(tiny), grid)
    layers[0][0] = 99  # the caller's lists, changed after the call: no point sees it
    recs = list(records)
    assert [r["error"] for r in recs] == [None, None]
    assert [r["sweep.plan.stage_layers"] for r in recs] == ["[4, 4]", "[2, 6]"]
    assert [r["plan.stage_layers"] for r in recs] == ["[4, 4]", "[2, 6]"]
    assert all(v is None or isinstance(v, (str, int, float)) for r in recs for v in r.values())
    assert layers == [[99, 4], [2, 6]]


def test_numpy_axis_values_are_python_numbers(tmp_path, tiny):
    np = pytest.importorskip("numpy")
    recs = list(sweep(base(tiny), {"plan.pp": [np.int64(1), np.int64(2)],
                                   "cluster.intra.link.bandwidth": [np.float64(3e11)]}))
    assert [r["error"] for r in recs] == [None, None]
    assert [type(r["sweep.plan.pp"]) for r in recs] == [int, int]
    out = tmp_path / "r.csv"
    write_records(out, recs)
    assert [r["sweep.cluster.intra.link.bandwidth"] for r in read_records(out)] == [3e11] * 2


def test_a_base_file_edited_while_it_loads_is_not_kept(tmp_path, tiny, monkeypatch):
    """An edit landing just after the base was read must not be kept under the new
    content's digest (the next point would then run the old content for good)."""
    from simwall import simulate
    workload = tmp_path / "w.yaml"
    workload.write_text(Path(tiny).read_text())
    real = sw.load_inputs

    def load_then_edit(*args):
        configs = real(*args)
        if "layers: 8" in workload.read_text():  # once, right after the first read
            workload.write_text(workload.read_text().replace("layers: 8", "layers: 4"))
        return configs
    monkeypatch.setattr(sw, "load_inputs", load_then_edit)
    grid = {"plan.zero": [0, 1]}
    list(sweep({"workload": str(workload)}, grid))
    monkeypatch.setattr(sw, "load_inputs", real)
    got = [r["step_time_s"] for r in sweep({"workload": str(workload)}, grid)]
    assert got == [simulate(str(workload), **{"plan.zero": z}).step_time_s for z in (0, 1)]
