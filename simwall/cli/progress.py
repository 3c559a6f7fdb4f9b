"""Progress bars of the long commands (``plan``, ``check``, ``validate``, ``whatif
--generations``, ``sweep``): tqdm on stderr, only on a terminal, off with ``--quiet``.
Stdout is never touched, so piped output is the same with or without a bar."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from ..studies.progress import Progress

__all__ = ["add_quiet_option", "progress_of"]


def add_quiet_option(p: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bar."""
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress bar on stderr (there is none when stderr is not a "
                        "terminal)")


def progress_of(args: argparse.Namespace) -> Progress | None:
    """The progress hook for a study run by ``args``' command: a tqdm bar on stderr
    that turns itself off when stderr is not a terminal; None with ``--quiet`` or
    without tqdm (an optional extra)."""
    if getattr(args, "quiet", False):
        return None
    isatty = getattr(sys.stderr, "isatty", None)
    if isatty is None or not isatty():
        return None   # tqdm's disable=None would turn the bar off: skip importing it
    try:
        from tqdm import tqdm  # optional extra: import only when a bar may show
    except ImportError:
        return None
    command = getattr(args, "command", None) or "simwall"

    def progress(items: Iterable, total: int | None = None, desc: str = "") -> Iterable:
        # disable=None: tqdm turns itself off when stderr is not a terminal (a pipe, CI);
        # leave=False: a finished bar is erased, stderr keeps only what matters.
        return tqdm(items, total=total, desc=f"simwall {command}: {desc}".rstrip(": "),
                    file=sys.stderr, disable=None, leave=False, dynamic_ncols=True)
    return progress
