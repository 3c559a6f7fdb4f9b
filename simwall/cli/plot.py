"""``simwall plot``: plot two columns of sweep results; print the data behind the image."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..studies.plots import check_plot_path, columns_plot, read_records, render_rows, save

DESCRIPTION = ("Scatter --y against --x from a CSV, JSONL or Parquet file written by "
               "'simwall sweep': "
               "coloured by --hue, filtered by --where, with the Pareto front marked "
               "(--pareto; lower is better on both axes unless --maximize-x/--maximize-y).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", help="sweep output (.csv, .jsonl or .parquet; Parquet needs "
                   "simwall[parquet])")
    p.add_argument("--x", required=True, help="column for the x axis, e.g. plan.tp")
    p.add_argument("--y", required=True, help="column for the y axis, e.g. step_time_s")
    p.add_argument("--hue", help="column to colour by, e.g. plan.zero (a colour per value; "
                   "a colour scale for a column of many numbers)")
    p.add_argument("--where", metavar="EXPR",
                   help="keep only rows matching EXPR, e.g. 'memory.fits == true and "
                   "plan.tp >= 2' (comparisons, and/or/not, column names, numbers, "
                   "strings, true/false)")
    p.add_argument("--pareto", action="store_true",
                   help="mark the Pareto front (lower is better on both axes) and print "
                   "a pareto column")
    p.add_argument("--maximize-x", action="store_true",
                   help="with --pareto: higher x is better")
    p.add_argument("--maximize-y", action="store_true",
                   help="with --pareto: higher y is better")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="image to write (.png or .svg; default: RESULTS with .png)")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="how to print the plotted data")


def run(args: argparse.Namespace) -> int:
    """Write the image, print the data behind it."""
    out = args.output or str(Path(args.results).with_suffix(".png"))
    check_plot_path(out, "--output")
    records = read_records(args.results)
    fig, data = columns_plot(records, args.x, args.y, args.hue, source=args.results,
                             where=args.where, pareto=args.pareto,
                             maximize_x=args.maximize_x, maximize_y=args.maximize_y)
    save(fig, out, "--output")
    print(json.dumps(data, indent=2, sort_keys=True) if args.format == "json"
          else render_rows(data))
    return 0
