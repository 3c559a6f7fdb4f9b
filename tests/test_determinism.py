"""Determinism: the same inputs give byte-identical ``--format json`` output in one
process, across processes with different hash seeds, and across local vs Dask sweeps."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import simwall
from simwall import cli

REPO = Path(__file__).resolve().parent.parent

#: Runs that exercise every engine path: symmetric, per-device, pipeline + interleaving,
#: ZeRO-3, stragglers and degraded links (per-device with faults).
CASES = [
    ["run", "bert-base", "--format", "json"],
    ["run", "gpt2", "--format", "json", "--per-device"],
    ["run", "bert-large", "--cluster", "dgx-a100", "--format", "json", "--set", "plan.tp=2",
     "--set", "plan.pp=4", "--set", "plan.schedule=interleaved", "--set",
     "plan.virtual_stages=2", "--set", "cluster.nodes=2", "--set", "training.micro_batch=1",
     "--set", "plan.zero=3"],
    ["run", "bert-base", "--cluster", "dgx-a100", "--format", "json", "--set",
     "cluster.nodes=2", "--set", "plan.tp=4", "--set", "training.micro_batch=4", "--set",
     "cluster.faults.stragglers=[{device: 3, slowdown: 0.5}]", "--set",
     "cluster.faults.links=[{between: [dev3, nic0.3], bandwidth_factor: 0.1}]"],
]


def _in_process(argv: list[str]) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    assert rc == 0, err.getvalue()
    return out.getvalue()


@pytest.mark.parametrize("argv", CASES, ids=["symmetric", "per-device", "pp-zero3", "faults"])
def test_same_output_twice_in_one_process(argv):
    first = _in_process(argv)
    simwall.clear_caches()  # the second run recomputes every memoised value
    second = _in_process(argv)
    assert first == second
    json.loads(first)  # and it is JSON


def _subprocess(argv: list[str], seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    proc = subprocess.run([sys.executable, "-m", "simwall.cli", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_same_output_across_processes_and_hash_seeds():
    """Two interpreters with different PYTHONHASHSEED (set iteration order differs) and
    this process all print the same bytes. All cases go through one process each, to
    keep the interpreter start-up cost to two."""
    script = ("import sys, json; from simwall import cli\n"
              "cases = json.loads(sys.argv[1])\n"
              "for argv in cases:\n"
              "    assert cli.main(argv) == 0\n"
              "    print('\\x1e')\n")
    outs = []
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run([sys.executable, "-c", script, json.dumps(CASES)], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=300,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        outs.append(proc.stdout)
    assert outs[0] == outs[1]
    here = "".join(_in_process(argv) + "\x1e\n" for argv in CASES)
    assert outs[0] == here


def test_console_entry_point_matches_in_process():
    """``python -m simwall.cli`` (a real process, real stdout) prints what main() does."""
    argv = CASES[0]
    assert _subprocess(argv, "1") == _in_process(argv)


def test_local_and_dask_sweeps_give_the_same_records():
    from simwall.studies import sweeps as sweep_mod

    pytest.importorskip("dask.distributed")
    from dask.distributed import Client, LocalCluster

    base = {"workload": "bert-base", "cluster": "dgx-a100",
            "overrides": {"training.micro_batch": 4}}
    grid = {"plan.tp": [1, 2, 4], "cluster.nodes": [1, 2], "plan.zero": [0, 3]}
    local = [json.dumps(r, sort_keys=True) for r in sweep_mod.sweep(base, grid)]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        remote = [json.dumps(r, sort_keys=True)
                  for r in sweep_mod.sweep(base, grid, executor=client.get_executor())]
    assert len(local) == 3 * 2 * 2
    assert not any(json.loads(r)["error"] for r in local)
    assert local == remote
