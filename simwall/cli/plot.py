"""``simwall plot``: plot two columns of sweep results; print the data behind the image."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..studies.plots import check_plot_path, columns_plot, read_records, render_rows, save

DESCRIPTION = ("Plot --y against --x (one line per --hue value) from a CSV or JSONL file "
               "written by 'simwall sweep'.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", help="sweep output (.csv or .jsonl)")
    p.add_argument("--x", required=True, help="column for the x axis, e.g. plan.tp")
    p.add_argument("--y", required=True, help="column for the y axis, e.g. step_time_s")
    p.add_argument("--hue", help="column whose values get one line each, e.g. plan.zero")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="image to write (.png or .svg; default: RESULTS with .png)")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="how to print the plotted data")


def run(args: argparse.Namespace) -> int:
    """Write the image, print the data behind it."""
    out = args.output or str(Path(args.results).with_suffix(".png"))
    check_plot_path(out, "--output")
    records = read_records(args.results)
    fig, data = columns_plot(records, args.x, args.y, args.hue, source=args.results)
    save(fig, out, "--output")
    print(json.dumps(data, indent=2, sort_keys=True) if args.format == "json"
          else render_rows(data))
    return 0
