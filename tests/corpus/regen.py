"""Write ``expected/NAME.out`` for every case of :mod:`cases` (run from the repo root).

``python tests/corpus/regen.py [NAME ...]``: only the cases named, else all.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# This checkout's simwall, not whichever one is installed (an editable install from
# another worktree would otherwise write that checkout's outputs here).
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE))

from cases import CASES  # noqa: E402


def output_of(argv: list[str]) -> tuple[int, str]:
    """(exit status, standard output) of ``simwall ARGV`` run in this process."""
    from simwall.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = main(list(argv))
    return status, buf.getvalue()


def main(names: list[str]) -> int:
    out = HERE / "expected"
    out.mkdir(exist_ok=True)
    for name in names or sorted(CASES):
        status, text = output_of(CASES[name])
        (out / f"{name}.out").write_text(f"exit {status}\n{text}", encoding="utf-8")
        print(f"{name}: exit {status}, {len(text)} characters")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
