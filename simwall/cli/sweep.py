"""``simwall sweep``: simulate every point of a sweep file, write the records, print one
summary line."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..studies.sweeps import journal_path, load_sweep, make_executor, run_sweep
from .progress import add_quiet_option

DESCRIPTION = ("Simulate every point of SWEEP.yaml and write one record per point (sorted "
               "by sweep index).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep_file", metavar="SWEEP.yaml", help="sweep file (see docs/sweeps.md)")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="results file: .csv, .jsonl or .parquet")
    p.add_argument("--executor", choices=("local", "dask", "dask-local", "serial"),
                   default="local", help="local processes (default), a Dask scheduler "
                   "(--address), a local Dask cluster, or this process")
    p.add_argument("--address", metavar="tcp://HOST:PORT", help="Dask scheduler address")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes (default: all cores)")
    p.add_argument("--resume", action="store_true",
                   help="skip points whose configuration is already in the output or journal")
    add_quiet_option(p)


def run(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise ConfigError("--workers", None, f"expected an integer >= 1, got {args.workers}")
    spec = load_sweep(args.sweep_file)
    journal_path(args.output)  # a bad output name fails before any worker starts
    ex = make_executor(args.executor, args.workers, args.address)
    try:
        summary = run_sweep(spec, args.output, ex.executor, resume=args.resume,
                            progress=False if args.quiet else None)
    finally:
        ex.close()
    print(f"{summary.points} points ({summary.ran} simulated, {summary.reused} reused, "
          f"{summary.errors} with errors) -> {summary.output}")
    return 0
