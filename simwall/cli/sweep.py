"""``simwall sweep``: simulate every point of a sweep file, write the records, print one
summary line."""

from __future__ import annotations

import argparse
import shlex

from ..errors import ConfigError, SimwallError
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
    p.add_argument("--address", metavar="tcp://HOST:PORT",
                   help="Dask scheduler address (implies --executor dask; refused with "
                   "serial or dask-local, which would ignore it)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes of --executor local or dask-local (default: all "
                   "cores)")
    p.add_argument("--resume", action="store_true",
                   help="skip points whose configuration is already in the output or journal")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an output (or its journal) holding records that are not "
                   "points of this sweep (another sweep's or program's); without it such "
                   "a file is refused and left as it is")
    add_quiet_option(p)


def run(args: argparse.Namespace) -> int:
    # By the command, not its parser: 'sweep --help' imports no process pool.
    from ..report.records import read_held_records
    from ..studies.sweeps import (
        executor_kind,
        load_sweep,
        make_executor,
        run_job,
        sigint_ignored,
        sweep_job,
    )

    if args.workers is not None and args.workers < 1:
        raise ConfigError("--workers", None, f"expected an integer >= 1, got {args.workers}")
    # An --address or --workers the executor would ignore fails here, before anything runs.
    executor_kind(args.executor, args.address, args.workers)
    spec = load_sweep(args.sweep_file)
    # Bad output paths, and an output holding other results, fail before any worker.
    job = sweep_job(spec, args.output, resume=args.resume, overwrite=args.overwrite)
    ex = make_executor(args.executor, args.workers, args.address)
    interrupted = False
    try:
        summary = run_job(job, ex.executor, progress=False if args.quiet else None)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        with sigint_ignored():  # a second Ctrl-C must not interrupt the clean-up
            if interrupted:
                ex.stop()
            else:
                ex.close()
    if interrupted:
        done = len(read_held_records(job.journal))  # whole lines only, as --resume reads them
        raise SimwallError(f"sweep interrupted: {done} finished point"
                           f"{'' if done == 1 else 's'} in the journal {job.journal}; resume "
                           f"with: {resume_command(args)}")
    print(f"{summary.points} points ({summary.ran} simulated, {summary.reused} reused, "
          f"{summary.errors} with errors) -> {summary.output}")
    return 0


def resume_command(args: argparse.Namespace) -> str:
    """The command line that continues this sweep where it stopped."""
    words = ["simwall", "sweep", args.sweep_file, "-o", args.output]
    if args.executor != "local":
        words += ["--executor", args.executor]
    if args.address:
        words += ["--address", args.address]
    if args.workers is not None:
        words += ["--workers", str(args.workers)]
    if args.overwrite:  # the output may still hold the rows it replaces
        words += ["--overwrite"]
    return shlex.join(words + ["--resume"])
