"""Hostile command lines (issue 17): output paths that cannot be written, ``--set`` keys
that are the API's own arguments, lone surrogates, a bad Dask address, binary results
files and Ctrl-C. Each ends with exit status 2 and one ``simwall: error:`` line naming
the file or key, never a traceback, and loses nothing (a sweep's journal keeps every
finished point)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simwall import read_records
from simwall.cli import main
from simwall.studies import sweeps

REPO = Path(__file__).resolve().parent.parent

TINY = ("name: tiny\nmodel: {layers: 4, hidden: 64, heads: 4, vocab: 100, seq_len: 16}\n"
        "training: {global_batch: 16}\nplan: {tp: 2, pp: 2}\n"
        "defaults: {cluster: dgx-a100, devices: 8}\n")

#: 12 quick points of the tiny workload.
SWEEP = """\
workload: w.yaml
grid:
  plan.zero: [0, 1, 2, 3]
  plan.recompute: [none, selective, full]
"""


def one_line_error(code: int, err: str, *needles: str) -> str:
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("simwall: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def wl(tmp_path: Path) -> Path:
    (tmp_path / "w.yaml").write_text(TINY, encoding="utf-8")
    (tmp_path / "sweep.yaml").write_text(SWEEP, encoding="utf-8")
    return tmp_path / "w.yaml"


@pytest.fixture
def regular_file(tmp_path: Path) -> Path:
    p = tmp_path / "plain.txt"
    p.write_text("x", encoding="utf-8")
    return p


# ---------------------------------------------------------------------------------------
# 1. Output paths, checked before any simulation


def _bad_paths(tmp_path: Path, regular_file: Path, name: str) -> dict[str, tuple[str, str]]:
    """{case: (path, what the message says)} for an output file called ``name``."""
    (tmp_path / f"dir{Path(name).suffix}").mkdir()
    return {
        "missing-dir": (str(tmp_path / "nosuch" / name), "does not exist"),
        "a-directory": (str(tmp_path / f"dir{Path(name).suffix}"), "is a directory"),
        "under-a-file": (str(regular_file / name), "is not a directory"),
    }


@pytest.mark.parametrize("case", ["missing-dir", "a-directory", "under-a-file"])
@pytest.mark.parametrize("flag,name", [("--trace", "t.json"), ("--plot", "p.png")])
def test_run_output_paths_are_checked_before_the_run(tmp_path, regular_file, wl, capsys,
                                                     monkeypatch, flag, name, case):
    path, why = _bad_paths(tmp_path, regular_file, name)[case]
    from simwall import api

    def no_run(*args, **kwargs):
        raise AssertionError("simulated before the output path was checked")
    monkeypatch.setattr(api, "simulate", no_run)
    code, out, err = run(capsys, "run", str(wl), flag, path)
    one_line_error(code, err, f"{flag}: cannot write '{path}'", why)
    assert out == ""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_trace_to_a_full_disk_is_one_line(wl, capsys):
    code, _, err = run(capsys, "run", str(wl), "--trace", "/dev/full")
    one_line_error(code, err, "--trace: cannot write '/dev/full'", "No space left")


def test_trace_to_an_unencodable_name_is_one_line(wl, capsys, monkeypatch):
    from simwall import api

    monkeypatch.setattr(api, "simulate", lambda *a, **k: pytest.fail("simulated"))
    code, _, err = run(capsys, "run", str(wl), "--trace", "t\ud800.json")
    one_line_error(code, err, "--trace: cannot write 't\\ud800.json'", "not a valid file name")


@pytest.mark.parametrize("case", ["missing-dir", "a-directory", "under-a-file"])
def test_plot_output_path_is_checked_before_reading(tmp_path, regular_file, capsys, case):
    path, why = _bad_paths(tmp_path, regular_file, "p.png")[case]
    code, _, err = run(capsys, "plot", str(tmp_path / "none.csv"), "--x", "a", "--y", "b",
                       "-o", path)
    one_line_error(code, err, f"--output: cannot write '{path}'", why)


@pytest.mark.parametrize("case", ["missing-dir", "a-directory", "under-a-file"])
def test_sweep_output_is_checked_before_any_point(tmp_path, regular_file, wl, capsys,
                                                  monkeypatch, case):
    path, why = _bad_paths(tmp_path, regular_file, "r.csv")[case]
    monkeypatch.setattr(sweeps, "run_point", lambda task: pytest.fail("a point ran"))
    code, out, err = run(capsys, "sweep", str(tmp_path / "sweep.yaml"), "-o", path,
                         "--executor", "serial")
    one_line_error(code, err, f"-o: cannot write '{path}'", why)
    assert out == ""


def test_sweep_journal_path_is_checked_too(tmp_path, wl, capsys):
    (tmp_path / "r.csv.partial.jsonl").mkdir()  # where the journal of r.csv would go
    code, _, err = run(capsys, "sweep", str(tmp_path / "sweep.yaml"), "-o",
                       str(tmp_path / "r.csv"), "--executor", "serial")
    one_line_error(code, err, "-o: cannot write", "r.csv.partial.jsonl': is a directory")


# ---------------------------------------------------------------------------------------
# 2. --set keys that are the API's own arguments


@pytest.mark.parametrize("key,hint", [("cluster", "--cluster"), ("workload", "WORKLOAD"),
                                      ("per_device", "--per-device"), ("trace", "--trace")])
def test_set_of_an_api_argument_is_refused(wl, capsys, key, hint):
    code, _, err = run(capsys, "run", str(wl), "--set", f"{key}=foo")
    one_line_error(code, err, f"--set: {key}: not a key path", hint)


# ---------------------------------------------------------------------------------------
# 3. Lone surrogates


def test_lone_surrogate_in_a_yaml_string_is_refused(tmp_path, capsys):
    p = tmp_path / "s.yaml"
    p.write_text(TINY.replace("name: tiny", 'name: "tiny\\ud800"'), encoding="utf-8")
    code, out, err = run(capsys, "run", str(p))
    one_line_error(code, err, f"{p}:1: not text", "lone surrogate", "\\ud800")
    assert out == ""


def test_lone_surrogate_in_a_set_value_is_refused(wl, capsys):
    code, _, err = run(capsys, "run", str(wl), "--set", 'name="a\\udcff"')
    one_line_error(code, err, "--set name:1: not text", "\\udcff")


@pytest.mark.parametrize("argv", [["run", "gpt\ud800"], ["run", "gpt2", "--cluster", "x\udcff"]])
def test_lone_surrogate_names_in_argv_are_reported_escaped(argv):
    # A real process with a strict UTF-8 stderr: the name must be escaped to be printed.
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    script = f"import sys; from simwall.cli import main; sys.exit(main({argv!r}))"
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          env=env, check=False)
    err = proc.stderr.decode("utf-8", "backslashreplace")
    line = one_line_error(proc.returncode, err, "no bundled")
    assert ("\\ud800" in line) or ("\\udcff" in line)


def test_lone_surrogate_name_from_a_file_never_reaches_stdout(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(TINY.replace("name: tiny", 'name: "tiny\\ud800"'), encoding="utf-8")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    proc = subprocess.run([sys.executable, "-m", "simwall", "run", str(p)], cwd=REPO,
                          capture_output=True, env=env, check=False)
    one_line_error(proc.returncode, proc.stderr.decode("utf-8", "backslashreplace"),
                   str(p), "lone surrogate")


# ---------------------------------------------------------------------------------------
# 4. A Dask address that cannot work


def test_dask_address_with_an_unknown_scheme(wl, capsys):
    pytest.importorskip("dask.distributed")
    code, _, err = run(capsys, "sweep", str(wl.parent / "sweep.yaml"), "-o",
                       str(wl.parent / "r.csv"), "--executor", "dask", "--address",
                       "foo://bar")
    one_line_error(code, err, "--address: cannot reach the Dask scheduler at foo://bar",
                   "unknown address scheme")


# ---------------------------------------------------------------------------------------
# 5. Binary results files


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_plot_of_a_binary_file(tmp_path, capsys, suffix):
    p = tmp_path / f"bin{suffix}"
    p.write_bytes(bytes(range(256)) * 4)
    code, _, err = run(capsys, "plot", str(p), "--x", "a", "--y", "b",
                       "-o", str(tmp_path / "p.png"))
    one_line_error(code, err, f"{p}: not UTF-8 text")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_resume_onto_a_binary_output(tmp_path, wl, capsys, suffix):
    p = tmp_path / f"bin{suffix}"
    data = bytes(range(256)) * 4
    p.write_bytes(data)
    code, _, err = run(capsys, "sweep", str(tmp_path / "sweep.yaml"), "-o", str(p),
                       "--executor", "serial", "--resume")
    one_line_error(code, err, f"{p}: not UTF-8 text")
    assert p.read_bytes() == data  # nothing overwritten


def test_plot_of_a_parquet_that_is_not_one(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    p = tmp_path / "bad.parquet"
    p.write_bytes(b"not parquet at all")
    code, _, err = run(capsys, "plot", str(p), "--x", "a", "--y", "b",
                       "-o", str(tmp_path / "p.png"))
    one_line_error(code, err, f"{p}: not a Parquet file")


# ---------------------------------------------------------------------------------------
# 6. Ctrl-C


def test_ctrl_c_in_a_sweep_keeps_the_journal_and_says_how_to_resume(tmp_path, wl, capsys,
                                                                   monkeypatch, interrupted_at):
    real = sweeps.run_point
    interrupted_at_the_fourth, _ = interrupted_at(real, 4)
    monkeypatch.setattr(sweeps, "run_point", interrupted_at_the_fourth)
    spec, out = tmp_path / "sweep.yaml", tmp_path / "r.csv"
    code, _, err = run(capsys, "sweep", str(spec), "-o", str(out), "--executor", "serial")
    journal = tmp_path / "r.csv.partial.jsonl"
    line = one_line_error(code, err, "sweep interrupted: 3 finished points",
                          f"in the journal {journal}",
                          f"resume with: simwall sweep {spec} -o {out} --executor serial "
                          f"--resume")
    assert len(read_records(journal)) == 3 and not out.exists(), line

    monkeypatch.setattr(sweeps, "run_point", real)
    code, summary, err = run(capsys, "sweep", str(spec), "-o", str(out), "--executor",
                             "serial", "--resume")
    assert code == 0, err
    assert "12 points (9 simulated, 3 reused" in summary


def test_sigint_to_a_running_sweep_with_worker_processes(tmp_path, wl):
    """A real Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while
    local worker processes run: one line, exit 2, the journal keeps what finished."""
    spec, out = tmp_path / "sweep.yaml", tmp_path / "r.jsonl"
    argv = [sys.executable, "-m", "simwall", "sweep", str(spec), "-o", str(out),
            "--workers", "2"]
    spec.write_text(SWEEP.replace("[0, 1, 2, 3]", "[0, 1, 2, 3]\n  training.global_batch: "
                                  "{range: [16, 4016, 16]}"), encoding="utf-8")
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_text(encoding="utf-8").count("\n") >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()
        seen = out.read_text(encoding="utf-8").count("\n")
        os.killpg(proc.pid, signal.SIGINT)
        _, err_bytes = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    err = err_bytes.decode("utf-8", "backslashreplace")
    kept = read_records(out)
    line = one_line_error(proc.returncode, err, "sweep interrupted:",
                          f"{len(kept)} finished point", "--resume")
    assert len(kept) >= seen, line
    assert all(json.loads(x) for x in out.read_text(encoding="utf-8").splitlines())


def test_ctrl_c_in_another_command_is_one_line(wl, capsys, monkeypatch):
    from simwall import api

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(api, "simulate_from_cli", interrupted)
    code, _, err = run(capsys, "run", str(wl))
    one_line_error(code, err, "run: interrupted")
