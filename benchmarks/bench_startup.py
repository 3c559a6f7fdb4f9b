"""Fresh-process start-up: wall and CPU time of ``python -m simwall COMMAND`` in a new
interpreter, for a few commands, and what ``python -X importtime`` says the default
``simwall run`` imports. Prints figures; asserts only that each checkout imports its own
``simwall``.

    /work/venv/bin/python benchmarks/bench_startup.py [--n 11] [--before /work/main]

Each command runs ``--n`` times (round robin over commands and checkouts, so a burst of
load on the shared machine hits them alike); the figure is the median. ``--before PATH``
measures a second checkout the same way (e.g. the main branch) and prints the ratios.
A checkout is run with its root as working directory and on ``PYTHONPATH``, so its own
``simwall`` is imported whatever is installed. The environment is inherited as it is:
with ``PYTHONDONTWRITEBYTECODE=1`` (as on the project's machine) simwall's own modules
are compiled from source at every start; ``--pyc`` gives each checkout a bytecode cache
of its own (``PYTHONPYCACHEPREFIX`` in a temporary folder, warmed once), as an installed
wheel has.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (label, arguments of ``python``): the interpreter alone first, as the floor.
COMMANDS: list[tuple[str, list[str]]] = [
    ("python -c pass", ["-c", "pass"]),
    ("simwall run", ["-m", "simwall", "run"]),
    ("simwall run gpt3-175b", ["-m", "simwall", "run", "gpt3-175b"]),
    ("simwall plan --help", ["-m", "simwall", "plan", "--help"]),
    ("simwall validate --help", ["-m", "simwall", "validate", "--help"]),
]

_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def _env(root: Path, cache: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    if cache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = cache
    return env


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _once(root: Path, env: dict[str, str], args: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of one fresh ``python args`` in ``root``; output discarded."""
    cpu0 = _children_cpu_s()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=root, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0, _children_cpu_s() - cpu0


def _imports(root: Path, env: dict[str, str], runs: int) -> dict[str, tuple[int, int, int]]:
    """``module -> (self us, cumulative us, depth)`` of ``python -X importtime -m simwall
    run``, each figure the least of ``runs`` runs (the least disturbed by other load)."""
    best: dict[str, tuple[int, int, int]] = {}
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "simwall", "run"],
                              cwd=root, env=env, check=True, capture_output=True, text=True)
        for line in proc.stderr.splitlines():
            m = _IMPORT_LINE.match(line)
            if m:
                own, cum, depth = int(m[1]), int(m[2]), len(m[3]) // 2
                old = best.get(m[4])
                best[m[4]] = (own, cum, depth) if old is None else \
                    (min(old[0], own), min(old[1], cum), depth)
    return best


def _print_imports(label: str, found: dict[str, tuple[int, int, int]], top: int) -> None:
    total_ms = sum(v[0] for v in found.values()) / 1e3
    simwall_ms = sum(v[0] for k, v in found.items() if k.split(".")[0] == "simwall") / 1e3
    print(f"\n{label}: python -X importtime -m simwall run: {len(found)} modules, "
          f"{total_ms:.0f} ms importing ({simwall_ms:.0f} ms of it in simwall's own "
          f"modules' bodies)")
    packages: dict[str, int] = {}
    for name, (own, _, _) in found.items():
        packages[name.split(".")[0]] = packages.get(name.split(".")[0], 0) + own
    heavy = sorted(packages.items(), key=lambda kv: -kv[1])[:top]
    print("  by top-level package (ms): " + ", ".join(f"{k} {v / 1e3:.1f}" for k, v in heavy))
    print(f"  top {top} imports by cumulative time:")
    print(f"  {'cumulative ms':>13} {'self ms':>8}  module")
    for name, (own, cum, depth) in sorted(found.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"  {cum / 1e3:13.1f} {own / 1e3:8.1f}  {'  ' * depth}{name}")
    absent = [m for m in ("networkx", "numpy", "concurrent.futures", "simwall.studies.search",
                          "simwall.studies.sweeps", "simwall.studies.plots", "matplotlib")
              if m not in found]
    present = [m for m in ("networkx", "numpy", "concurrent.futures", "simwall.studies.search",
                           "simwall.studies.sweeps", "simwall.studies.plots", "matplotlib")
               if m in found]
    print(f"  not imported: {', '.join(absent) or '-'}; imported: {', '.join(present) or '-'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=11, help="runs per command (median reported)")
    ap.add_argument("--before", type=Path, help="a second checkout to measure (e.g. main)")
    ap.add_argument("--pyc", action="store_true", help="with a warm bytecode cache per "
                    "checkout (PYTHONPYCACHEPREFIX), as an installed wheel")
    ap.add_argument("--top", type=int, default=15, help="imports listed")
    args = ap.parse_args()
    trees = {"after": ROOT}
    if args.before is not None:
        trees = {"before": args.before.resolve(), "after": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        envs = {k: _env(t, str(Path(tmp) / k) if args.pyc else None) for k, t in trees.items()}
        for k, t in trees.items():  # the checkout's own simwall is the one imported
            show = "import simwall; print(simwall.__file__)"
            where = subprocess.run([sys.executable, "-c", show], cwd=t, env=envs[k],
                                   check=True, capture_output=True, text=True).stdout.strip()
            assert Path(where).resolve().is_relative_to(t), (k, where)
            _once(t, envs[k], ["-m", "simwall", "run"])  # warm the OS file cache (and .pyc)
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.n):
            for label, argv in COMMANDS:
                for k, t in trees.items():
                    times.setdefault((k, label), []).append(_once(t, envs[k], argv))
        imports = {k: _imports(t, envs[k], 3) for k, t in trees.items()}

    mode = "bytecode cached" if args.pyc else (
        "simwall compiled at every start (PYTHONDONTWRITEBYTECODE)"
        if os.environ.get("PYTHONDONTWRITEBYTECODE") else "default bytecode caching")
    print(f"fresh-process start-up, median of {args.n} runs each; {mode}; python "
          f"{sys.version.split()[0]}")
    print("(wall: median and least of the runs; CPU: median of user + system time, which "
          "other load inflates less than wall time)")
    head = f"{'command':26}" + "".join(f" {k + ' wall s':>13} {'least':>6} {k + ' CPU s':>12}"
                                       for k in trees)
    print(head + (f" {'wall ratio':>10}" if len(trees) == 2 else ""))
    for label, _ in COMMANDS:
        row = f"{label:26}"
        walls = {}
        for k in trees:
            w = statistics.median(x[0] for x in times[(k, label)])
            least = min(x[0] for x in times[(k, label)])
            c = statistics.median(x[1] for x in times[(k, label)])
            walls[k] = w
            row += f" {w:13.3f} {least:6.3f} {c:12.3f}"
        if len(trees) == 2:
            row += f" {walls['before'] / walls['after']:9.2f}x"
        print(row)
    for k in trees:
        _print_imports(f"{k} ({trees[k]})", imports[k], args.top)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average (1, 5, 15 min) at the end: {load} (the machine may be shared)")


if __name__ == "__main__":
    main()
