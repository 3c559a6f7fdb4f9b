"""Sweep durability: a ``simwall sweep`` killed with SIGKILL part-way and resumed with
``--resume`` ends with the same records as an uninterrupted sweep, and no torn lines."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simwall import cli

REPO = Path(__file__).resolve().parent.parent

#: 24 points of ~0.1 s each (2,048 micro-batches per replica on 4 pipeline stages keep
#: the engine busy), so a kill after the first few records lands mid-sweep.
SWEEP = """\
workload: bert-base
cluster: single-node
set:
  training.global_batch: 4096
  training.micro_batch: 1
  plan.pp: 4
grid:
  plan.zero: [0, 1, 2, 3]
  plan.recompute: [none, selective, full]
  plan.schedule: [1f1b, gpipe]
"""
POINTS = 24


def _sweep_in_process(spec: Path, out: Path, *extra: str) -> str:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = cli.main(["sweep", str(spec), "-o", str(out), "--executor", "serial", *extra])
    assert rc == 0, stderr.getvalue()
    return stdout.getvalue()


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _whole_lines(path: Path) -> int:
    """Lines of ``path`` ended by a newline: a kill in the middle of a write leaves the
    last one torn, and a resume reuses only the whole ones."""
    return path.read_text(encoding="utf-8").count("\n") if path.exists() else 0


def _kill_after(argv: list[str], journal: Path, records: int, timeout_s: float = 60) -> int:
    """Start ``argv``, SIGKILL it once ``journal`` holds ``records`` whole lines; return
    the lines journaled at the kill."""
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    t0 = time.perf_counter()
    try:
        while time.perf_counter() - t0 < timeout_s:
            if proc.poll() is not None:
                pytest.fail(f"sweep ended before it could be killed: {proc.stderr.read()}")
            if _whole_lines(journal) >= records:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        else:
            pytest.fail("no records journaled in time")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    return _whole_lines(journal)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_killed_sweep_resumes_to_the_uninterrupted_result(tmp_path, suffix):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(SWEEP, encoding="utf-8")
    reference = tmp_path / f"reference{suffix}"
    _sweep_in_process(spec, reference)

    out = tmp_path / f"killed{suffix}"
    journal = out if suffix == ".jsonl" else out.with_name(out.name + ".partial.jsonl")
    argv = [sys.executable, "-m", "simwall.cli", "sweep", str(spec), "-o", str(out),
            "--executor", "serial"]
    done = _kill_after(argv, journal, records=3)
    assert 3 <= done < POINTS
    if suffix == ".csv":
        assert not out.exists()  # the final file is written only at the end
    # A kill in the middle of a write leaves a torn last line; make sure there is one.
    with open(journal, "a", encoding="utf-8") as fh:
        fh.write('{"sweep.index": 99, "sweep.key": "torn", "st')

    summary = _sweep_in_process(spec, out, "--resume")
    assert f"{POINTS} points" in summary and f"{done} reused" in summary, summary

    from simwall import read_records

    got, want = read_records(out), read_records(reference)
    assert len(want) == POINTS and not any(r["error"] for r in want)
    assert [json.dumps(r, sort_keys=True) for r in got] == \
        [json.dumps(r, sort_keys=True) for r in want]
    if suffix == ".jsonl":  # every line whole JSON, none torn, in index order
        records = [json.loads(line) for line in _lines(out)]
        assert [r["sweep.index"] for r in records] == list(range(POINTS))
    else:
        assert not journal.exists()  # the journal is removed once the CSV is written


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting to be reaped has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_killed_sweep_leaves_no_worker_behind(tmp_path):
    """SIGKILL of a sweep on local worker processes: its workers (and multiprocessing's
    resource tracker) end too instead of blocking forever on a queue nobody feeds."""
    spec = tmp_path / "sweep.yaml"
    # 12 x 24 points of ~0.1 s: far from done when the first record is journaled.
    spec.write_text(SWEEP + "  model.layers: {range: [4, 52, 4]}\n", encoding="utf-8")
    out = tmp_path / "killed.jsonl"
    argv = [sys.executable, "-m", "simwall.cli", "sweep", str(spec), "-o", str(out),
            "--workers", "2"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while not _lines(out):
            if proc.poll() is not None:
                pytest.fail(f"sweep ended before it could be killed: {proc.stderr.read()}")
            if time.monotonic() > deadline:
                pytest.fail("no records journaled in time")
            time.sleep(0.01)
        children = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert len(children) >= 2, children  # the two workers (and the resource tracker)
    # Bounded wait, generous for a loaded machine; how fast is not asserted.
    deadline = time.monotonic() + 60
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [c for c in children if _alive(c)], "orphans survived the killed sweep"
