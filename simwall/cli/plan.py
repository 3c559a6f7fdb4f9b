"""``simwall plan``: search the parallelism plans of a workload and print the best."""

from __future__ import annotations

import argparse

from ..config import set_overrides
from ..studies.search import render_search, search
from .common import add_workload_arguments
from .progress import add_quiet_option, progress_of

DESCRIPTION = ("Enumerate every valid plan, drop those that do not fit, rank the rest "
               "analytically, confirm the best with the engine and print the top K.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_workload_arguments(p)
    p.add_argument("--top", type=int, default=5, metavar="K", help="plans to print (5)")
    p.add_argument("--objective", choices=("step_time", "memory"), default="step_time")
    add_quiet_option(p)


def run(args: argparse.Namespace) -> int:
    res = search(args.workload, args.cluster, top=args.top, objective=args.objective,
                 overrides=set_overrides(args.set_items), progress=progress_of(args))
    print(render_search(res))
    return 0
