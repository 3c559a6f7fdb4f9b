"""``simwall check``: is the workload's own plan valid, does it fit, how does it rank?"""

from __future__ import annotations

import argparse

from ..config import set_overrides
from .common import add_workload_arguments
from .plan import add_format_option, print_records
from .progress import add_quiet_option, progress_of

DESCRIPTION = ("Check the user's config and plan (not to be confused with 'simwall "
               "validate', which compares simwall with published runs).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_workload_arguments(p)
    add_format_option(p)
    add_quiet_option(p)


def run(args: argparse.Namespace) -> int:
    """Exit 0 when the plan fits, 1 when it is invalid or does not fit; an input error
    (raised by :func:`simwall.studies.check.check`) is exit 2 from the CLI."""
    from ..studies.check import check  # by the command, not its parser

    overrides = set_overrides(args.set_items)
    res = check(args.workload, args.cluster, overrides, progress=progress_of(args))
    if args.format == "table":
        print("\n".join(res.lines))
    else:
        print_records([res.record], args.format)
    return 0 if res.status == "fits" else 1
