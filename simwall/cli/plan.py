"""``simwall plan``: search the parallelism plans of a workload and print the best."""

from __future__ import annotations

import argparse
import json
import sys

from ..config import set_overrides
from ..plan import BEST_BY_AXES, framework_names
from .common import add_workload_arguments
from .progress import add_quiet_option, progress_of

DESCRIPTION = ("Enumerate every valid plan, drop those that do not fit, rank the rest "
               "analytically, confirm the best with the engine and print the top K. A "
               "--set of a choice the search makes (plan.tp, plan.cp, plan.pp, plan.dp, "
               "plan.ep, plan.zero, plan.recompute, plan.schedule, plan.virtual_stages, "
               "plan.sequence_parallel, training.micro_batch) fixes that choice.")

#: Output formats of ``simwall plan`` and ``simwall check``: the table, or one flat
#: record per plan (the columns of a sweep record) as a JSON list or CSV.
RECORD_FORMATS = ("table", "json", "csv")


def add_format_option(p: argparse.ArgumentParser) -> None:
    """``--format table|json|csv`` (``plan`` and ``check``)."""
    p.add_argument("--format", choices=RECORD_FORMATS, default="table",
                   help="table (default), or one record per plan with the columns of a "
                   "sweep record: json (a list of records) or csv")


def print_records(records: list[dict], fmt: str) -> None:
    """``records`` to stdout as a JSON list (keys in column order) or as CSV."""
    if fmt == "json":
        print(json.dumps(records, indent=1))
    else:
        from ..report import write_csv
        write_csv(sys.stdout, records)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_workload_arguments(p)
    p.add_argument("--top", type=int, default=5, metavar="K", help="plans to print (5)")
    p.add_argument("--objective", choices=("step_time", "memory"), default="step_time")
    p.add_argument("--framework", choices=framework_names(),
                   help="only plans this framework runs (simwall/plan/frameworks.py), "
                   "costed with its semantics")
    p.add_argument("--best-by", metavar="AXES",
                   help="instead of the top K, the best plan for each combination of "
                   "these comma-separated axes' values, e.g. cp,ep (axes: "
                   f"{', '.join(BEST_BY_AXES)})")
    add_format_option(p)
    add_quiet_option(p)


def run(args: argparse.Namespace) -> int:
    # The library is imported by the command, not by its parser ('plan --help' stays light).
    from ..studies.search import render_search, search, search_records

    res = search(args.workload, args.cluster, top=args.top, objective=args.objective,
                 overrides=set_overrides(args.set_items), progress=progress_of(args),
                 framework=args.framework, best_by=args.best_by)
    if args.format == "table":
        print(render_search(res))
    else:
        print_records(search_records(res), args.format)
    return 0
