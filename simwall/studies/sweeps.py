"""Parameter sweeps: many simulated steps from one base configuration and a grid.

A sweep point is a set of key-path overrides (``plan.tp``, ``cluster.nodes`` ...) on a
base workload and cluster. Each point becomes one flat record: ``StepResult.to_record()``
plus ``sweep.index`` (position in the sweep), ``sweep.key`` (sha256 of the fully
resolved configuration, so two spellings of the same run share a key), one
``sweep.<key path>`` column per swept axis and ``error`` (None, or the one-line reason a
point could not run). A point that fails never stops the sweep.

Points run on any :class:`concurrent.futures.Executor` (local processes, or Dask via
``Client(...).get_executor()``); the worker is a top-level function taking plain data,
so nothing relies on ``fork``. Records come back in sweep-index order from
:func:`sweep`; :func:`run_sweep` (``simwall sweep``) also journals them to JSONL as they finish,
one whole line per record, flushed, so a killed sweep keeps what finished.
"""

from __future__ import annotations

import concurrent.futures as cf
import concurrent.futures.process  # noqa: F401 - BrokenProcessPool
import contextlib
import difflib
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from ..api import prepare, run_prepared
from ..config import (
    CLUSTER_PREFIX,
    ClusterSpec,
    Strict,
    Workload,
    find_file,
    key_path_problem,
    line_of,
    load_cluster,
    load_workload,
    load_yaml,
    split_key_overrides,
    validate,
)
from ..config.yamlio import dotted_key
from ..engine.prepare import load_default_cluster, load_inputs
from ..errors import ConfigError, SimwallError
from ..memo import table
from ..report.outputs import check_output_path, output_error
from ..report.records import (
    count_entries,
    flat_cell,
    format_of,
    plain_value,
    read_held_records,
    record_line,
    save_records,
    value_kind,
)

__all__ = [
    "SweepFile",
    "SweepJob",
    "check_keys",
    "check_sweep_output",
    "config_key",
    "end_with_parent",
    "executor_kind",
    "expand",
    "journal_path",
    "load_sweep",
    "make_executor",
    "point_key",
    "run_job",
    "run_point",
    "run_points",
    "run_sweep",
    "sigint_ignored",
    "sweep",
    "sweep_job",
    "sweep_points",
]

#: Most points of one ``range`` axis: a typo such as a step of 0.0001 should fail fast,
#: not fill the disk. Our own limit, not from any source.
MAX_RANGE_POINTS = 100_000

#: Most points of one sweep (the product of the grid's axis lengths, times the zip
#: length), checked before anything is expanded. simwall's own choice, not from any
#: source: published sweeps run hundreds to thousands of configurations, and a million
#: points already take hours on a workstation; a 9-axis grid of 10 values each (10^9
#: points) would otherwise be expanded in memory before the first one ran.
MAX_SWEEP_POINTS = 1_000_000


def _range_count(key: str, spec: Any) -> int:
    """Points of a ``{range: [start, stop, step]}`` axis, without listing them (at most
    :data:`MAX_RANGE_POINTS`). ValueError names the key."""
    where = f"grid.{key}"
    if not (isinstance(spec, dict) and set(spec) == {"range"}):
        raise ValueError(f"{where}: expected a non-empty list or {{range: [start, stop, "
                         f"step]}}, got {_show(spec)}")
    r = spec["range"]
    if not (isinstance(r, list) and len(r) == 3 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            for x in r)):
        raise ValueError(f"{where}.range: expected [start, stop, step] (3 numbers), "
                         f"got {_show(r)}")
    start, stop, step = r
    if step == 0:
        raise ValueError(f"{where}.range: step must not be 0")
    span = (stop - start) / step  # inf for [0, 1e300, 1e-300]
    n = max(0, math.ceil(span - 1e-12)) if math.isfinite(span) else math.inf
    if n > MAX_RANGE_POINTS:
        raise ValueError(f"{where}.range: gives {_count(n)} points, more than simwall's "
                         f"limit of {MAX_RANGE_POINTS:,} per range axis")
    if n == 0:
        raise ValueError(f"{where}.range: gives no points ({start} to {stop} by {step})")
    return n


def _range_values(key: str, spec: Any) -> list:
    """Values of a ``{range: [start, stop, step]}`` axis (Python's ``range``: start,
    start + step, ... while before stop; floats allowed). ValueError names the key."""
    n = _range_count(key, spec)
    start, stop, step = spec["range"]
    if all(isinstance(x, int) for x in spec["range"]):
        return list(range(start, stop, step))
    # start + i * step (not repeated addition) so values do not drift.
    return [start + i * step for i in range(n)]


def _count(n: float) -> str:
    return "infinitely many" if n == math.inf else f"{n:,}"


def sweep_points(grid: dict[str, Any], zip: dict[str, list] | None = None) -> int:
    """Points a sweep of ``grid`` (lists or ``{range: [...]}`` axes) and ``zip`` gives,
    computed from the axis lengths without expanding them. ValueError (``grid: ...``) when
    it is more than :data:`MAX_SWEEP_POINTS`."""
    lengths = [len(v) if isinstance(v, (list, tuple)) else _range_count(k, v)
               for k, v in grid.items()]
    zipped = zip or {}
    if zipped:
        lengths.append(len(next(iter(zipped.values()))))
    n = math.prod(lengths)
    if n > MAX_SWEEP_POINTS:
        where = "grid" if grid else "zip"
        raise ValueError(f"{where}: gives {' x '.join(f'{x:,}' for x in lengths)} = {n:,} "
                         f"points, more than simwall's limit of {MAX_SWEEP_POINTS:,} per "
                         f"sweep (split it into several sweeps)")
    return n


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def check_axes(grid: Any, zip: Any) -> None:
    """Refuse axes a sweep cannot expand; ValueError naming the axis. ``grid``: {key
    path: non-empty list, or ``{range: [start, stop, step]}``}; ``zip``: {key path:
    non-empty list}, every list of one length and no key also in the grid; at most
    :data:`MAX_SWEEP_POINTS` points in all. (Whether the keys name anything is
    :func:`check_keys`.)"""
    for where, axes in (("grid", grid), ("zip", zip)):
        if not isinstance(axes, Mapping):  # a ValueError, as a pydantic validator raises
            message = f"expected a mapping of key path -> list, got {type(axes).__name__}"
            raise ValueError(f"{where}: {message}")  # noqa: TRY004
    for key, axis in grid.items():
        if not isinstance(axis, (list, tuple)):
            _range_count(key, axis)
        elif not axis:
            raise ValueError(f"grid.{key}: expected a non-empty list, got an empty list")
    for key, axis in zip.items():
        if not (isinstance(axis, (list, tuple)) and axis):
            raise ValueError(f"zip.{key}: expected a non-empty list, got {_show(axis)}")
    lengths = {k: len(v) for k, v in zip.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError("zip: every list must have the same length, got "
                         + ", ".join(f"{k}: {n}" for k, n in lengths.items()))
    both = sorted(set(grid) & set(zip), key=str)
    if both:
        raise ValueError(f"zip: key {both[0]} is also in grid; use one of them")
    sweep_points(grid, zip)


class SweepFile(Strict):
    """A sweep file: base workload and cluster, fixed overrides, grid and zipped axes."""

    workload: str
    cluster: str | None = None
    set: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, Any] = Field(default_factory=dict)
    zip: dict[str, list[Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shape(self) -> SweepFile:
        check_axes(self.grid, self.zip)
        return self

    def base(self) -> dict:
        return {"workload": self.workload, "cluster": self.cluster, "overrides": dict(self.set)}

    def axes(self) -> tuple[dict[str, list], dict[str, list]]:
        grid = {k: (list(v) if isinstance(v, list) else _range_values(k, v))
                for k, v in self.grid.items()}
        return grid, {k: list(v) for k, v in self.zip.items()}


def load_sweep(path: str | Path) -> SweepFile:
    """Read and validate a sweep file; errors are located ConfigErrors.

    Every key of ``set``, ``grid`` and ``zip`` must be a workload or ``cluster.`` key path
    (checked here, so a misspelt axis is refused before any point runs). A ``workload`` /
    ``cluster`` given as a path is looked up next to the sweep file first, then from the
    current directory, and made absolute, so workers started elsewhere (Dask) find the
    same file. The workload and cluster must load with ``set`` applied, as every point
    starts from them (:func:`_check_base`).
    """
    doc = load_yaml(path)
    spec = validate(SweepFile, doc, str(path))
    for section in ("set", "grid", "zip"):
        problem = _keys_problem(getattr(spec, section))
        if problem is not None:
            key, message = problem
            lines = getattr(doc.get(section), "lines", {})
            raise ConfigError(str(path), f"{section}.{key}", message, line=lines.get(key))
    here = Path(path).parent
    updates = {}
    for field in ("workload", "cluster"):
        value = getattr(spec, field)
        if not value or not (value.endswith((".yaml", ".yml")) or "/" in value):
            continue  # a bundled name
        for candidate in (here / value, Path(value)):
            if candidate.is_file():
                updates[field] = str(candidate.resolve())
                break
        else:
            raise ConfigError(str(path), field, f"no such file '{value}' next to the sweep "
                              f"file or in the current directory", line=doc.lines.get(field))
    spec = spec.model_copy(update=updates) if updates else spec
    _check_base(spec, str(path), doc)
    return spec


def _check_base(spec: SweepFile, source: str, doc: Any) -> None:
    """Refuse a base that every point would fail on, since each starts from it: a
    workload or cluster that names nothing or does not load with the sweep's ``set``.
    The ConfigError is the one ``simwall run`` gives, located in the sweep file
    ``source`` when its own ``workload:``, ``cluster:`` or ``set`` is at fault."""
    wl_over, cl_over = split_key_overrides(spec.set)
    try:
        workload = load_workload(spec.workload, wl_over)
    except ConfigError as err:
        raise _in_sweep_file(err, "workload", source, doc) from None
    try:
        if spec.cluster:
            load_cluster(spec.cluster, cl_over)
        else:
            load_default_cluster(workload, cl_over)
    except ConfigError as err:
        raise _in_sweep_file(err, "cluster", source, doc) from None


def _in_sweep_file(err: ConfigError, field: str, source: str, doc: Any) -> ConfigError:
    """``err``, from loading the sweep's ``field`` (workload or cluster), located in the
    sweep file when a name or a ``set`` key of it is at fault; else as it is."""
    if err.source is None and err.key == field and field in doc:  # names no file
        return ConfigError(source, field, err.message, line=doc.lines.get(field))
    full = f"{'cluster.' if field == 'cluster' else ''}{err.key}" if err.key else ""
    if any(full == k or full.startswith(k + ".") for k in doc.get("set") or {}):
        return ConfigError(source, f"set.{full}", err.message.removesuffix(" (from --set)"),
                           line=line_of(doc, ("set", *dotted_key(full).split("."))))
    return err


def _keys_problem(keys: Any) -> tuple[str, str] | None:
    """(key, what is wrong) for the first of ``keys`` that names no workload key path or
    ``cluster.`` key path, or None."""
    for key in keys:
        if not isinstance(key, str):
            return str(key), "expected a key path such as plan.tp or cluster.nodes"
        if key in ("workload", "cluster"):
            return key, (f"unknown key; the sweep's {key} is chosen by the top-level "
                         f"'{key}:' of a sweep file (a key inside it is "
                         f"{'cluster.nodes' if key == 'cluster' else 'plan.tp'}, ...)")
        if key.startswith(CLUSTER_PREFIX):
            problem = key_path_problem(ClusterSpec, key[len(CLUSTER_PREFIX):], CLUSTER_PREFIX)
        else:
            problem = key_path_problem(Workload, key)
        if problem is not None:
            return key, problem
    return None


def check_keys(overrides: dict[str, Any], where: str) -> None:
    """Refuse a key of ``overrides`` that names no workload or ``cluster.`` key path;
    the :class:`ConfigError` names ``where.key`` (``grid.plan.tpp``)."""
    problem = _keys_problem(overrides)
    if problem is not None:
        raise ConfigError(None, f"{where}.{problem[0]}", problem[1])


def _checked_axes(grid: Any, zip: Any) -> None:
    """:func:`check_axes`, its refusal a ConfigError (the API's: it names no file)."""
    try:
        check_axes(grid, zip)
    except ValueError as err:
        raise ConfigError(None, None, str(err)) from None


def expand(grid: dict[str, list], zip: dict[str, list] | None = None) -> list[dict[str, Any]]:
    """Every point of the sweep, in sweep-index order.

    The grid is the Cartesian product of its axes (lists) in the order given (the last
    axis varies fastest); ``zip`` axes advance together, as one more axis after the
    grid. Axes that cannot be expanded are a ConfigError (:func:`check_axes`).
    """
    _checked_axes(grid, zip or {})
    keys = list(grid)
    rows: list[dict[str, Any]] = _zip_rows(zip or {}) or [{}]
    out = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        for row in rows:
            point = {k: combo[i] for i, k in enumerate(keys)}
            point.update(row)
            out.append(point)
    return out


def _zip_rows(zipped: dict[str, list]) -> list[dict]:
    if not zipped:
        return []
    n = len(next(iter(zipped.values())))
    return [{k: v[i] for k, v in zipped.items()} for i in range(n)]


# ---------------------------------------------------------------------------------------
# One point


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(obj: Any) -> Any:
    """A typed config (a base Workload or ClusterSpec) as its document; else its text."""
    dump = getattr(obj, "model_dump", None)
    return dump(mode="json", by_alias=True) if callable(dump) else str(obj)


def config_key(prep) -> str:
    """sha256 of the fully resolved configuration of a :class:`~simwall.api.Prepared`:
    canonical JSON of the workload (name, model, training), the resolved cluster, its
    resolved device and the resolved plan. Not of the overrides:
    ``plan.dp=auto`` and the ``dp`` it resolves to share a key."""
    doc = {
        "workload": prep.workload.model_dump(mode="json", by_alias=True,
                                             exclude={"source", "defaults"}),
        "cluster": prep.cluster.model_dump(mode="json", by_alias=True, exclude={"source"}),
        "device": prep.device.model_dump(mode="json", by_alias=True),
        "plan": prep.plan.as_dict(),
    }
    # The plan as written (dp: auto) is superseded by the resolved plan.
    doc["workload"].pop("plan", None)
    return hashlib.sha256(_canonical(doc).encode()).hexdigest()


def _raw_key(workload: str, cluster: str | None, overrides: dict) -> str:
    """Key of a point that did not resolve: its raw inputs (marked so it cannot clash)."""
    text = _canonical({"unresolved": [workload, cluster, overrides]})
    return "raw-" + hashlib.sha256(text.encode()).hexdigest()


#: Base configurations a process keeps (:func:`_base_configs`); a sweep uses one.
BASE_MEMO_ENTRIES = 16

_BASE_LOCK = threading.Lock()


def _base_configs(workload: str | Workload, cluster: str | ClusterSpec | None,
                  base_set: dict) -> tuple[Workload, ClusterSpec]:
    """The base workload and cluster with the sweep's fixed ``set`` applied, as
    :func:`simwall.simulate` loads them now.

    Memoised per process (each point then validates only its own overrides) and checked
    at every use against the content of the files they were read from: the workload's,
    the cluster's and a graph file the cluster names. A file edited since is read again,
    whichever process runs the point, as the YAML parse cache is keyed by the text."""
    if not (isinstance(workload, str) and isinstance(cluster, (str, type(None)))):
        return load_inputs(workload, cluster, base_set)  # typed configs: no file to read
    memo = table(_base_configs, "bases")
    key = _canonical([workload, cluster, base_set, os.getcwd()])
    held = memo.get(key)
    if held is not None and all(_digest(path) == digest for path, digest in held[0]):
        return held[1]
    # Loaded twice: the first load tells which files it reads; the second is kept only
    # if none of them changed around it, so a file edited while it loads is not kept
    # under its new content's digest.
    stamps = _stamps(workload, cluster, load_inputs(workload, cluster, base_set))
    configs = load_inputs(workload, cluster, base_set)
    if _stamps(workload, cluster, configs) == stamps:
        with _BASE_LOCK:
            memo.pop(key, None)
            memo[key] = (stamps, configs)
            while len(memo) > BASE_MEMO_ENTRIES:
                del memo[next(iter(memo))]
    return configs


def _stamps(workload: str, cluster: str | None,
            configs: tuple[Workload, ClusterSpec]) -> tuple[tuple[Path, str | None], ...]:
    """(file, digest of its content) of every file a base workload and cluster loaded
    from names or paths were read from: the workload's, the cluster's and a graph file
    the cluster names."""
    wl, cl = configs
    files = [find_file("workload", workload),
             find_file("cluster", cluster or wl.defaults.cluster)]
    if cl.graph is not None and cl.graph.file and not cl.graph.key_prefix:
        files.append(Path(cl.graph.file))  # a graph file, not a graph inline
    return tuple((path, _digest(path)) for path in files)


def _digest(path: Path) -> str | None:
    """sha256 of the content of ``path``; None when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _prepare_point(workload: str | Workload, cluster: str | ClusterSpec | None,
                   base_set: dict, point: dict):
    wl, cl = _base_configs(workload, cluster, base_set)
    return prepare(wl, cl, point)


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def run_point(task: tuple) -> dict:
    """Simulate one sweep point; the top-level worker (plain data in, plain dict out).

    ``task = (index, workload, cluster, base_set, point)``. Never raises for a bad
    point: the record carries ``error`` instead.
    """
    index, workload, cluster, base_set, point = task
    head: dict[str, Any] = {"sweep.index": index, "sweep.key": None, "error": None}
    head.update({f"sweep.{k}": flat_cell(v) for k, v in point.items()})
    try:

        prep = _prepare_point(workload, cluster, base_set, point)
        head["sweep.key"] = config_key(prep)
        rec = run_prepared(prep).to_record()
    except SimwallError as err:
        if head["sweep.key"] is None:
            head["sweep.key"] = _raw_key(workload, cluster, {**base_set, **point})
        head["error"] = _one_line(err)
        return head
    except Exception as err:  # noqa: BLE001 - a bug or impossible point: record, go on
        if head["sweep.key"] is None:
            head["sweep.key"] = _raw_key(workload, cluster, {**base_set, **point})
        head["error"] = _one_line(f"{type(err).__name__}: {err}")
        return head
    head.update(rec)
    return head


def point_key(workload: str, cluster: str | None, base_set: dict, point: dict) -> str:
    """The ``sweep.key`` a point will get, without simulating it (for ``--resume``)."""
    try:
        return config_key(_prepare_point(workload, cluster, base_set, point))
    except Exception:  # noqa: BLE001 - same fallback as run_point
        return _raw_key(workload, cluster, {**base_set, **point})


# ---------------------------------------------------------------------------------------
# Running many points


#: Keys of a sweep's ``base``; ``set`` is the sweep file's name for ``overrides``.
BASE_KEYS = ("workload", "cluster", "overrides", "set")


def _base_parts(base: Any) -> tuple[str | Workload, str | ClusterSpec | None, dict]:
    """(workload, cluster, fixed overrides) of a sweep's ``base``, the overrides copied
    as plain data; a ConfigError naming ``base`` or the key at fault otherwise."""
    if not isinstance(base, Mapping):
        raise ConfigError(None, "base", f"expected a mapping like {{'workload': 'gpt2', "
                          f"'cluster': 'dgx-a100', 'overrides': {{'plan.zero': 1}}}}, got "
                          f"{value_kind(base)}")
    for key in base:
        if key not in BASE_KEYS:
            near = difflib.get_close_matches(str(key), BASE_KEYS, n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            raise ConfigError(None, f"base.{key}", f"unknown key; {hint}(expected "
                              f"workload, cluster and overrides)")
    if "overrides" in base and "set" in base:
        raise ConfigError(None, "base", "give the fixed overrides once, as 'overrides' "
                          "(or 'set', as in a sweep file), not both")
    workload = _config_ref(base.get("workload", "gpt3-175b"), "workload", Workload)
    cluster = _config_ref(base.get("cluster"), "cluster", ClusterSpec)
    where = "base.set" if "set" in base else "base.overrides"
    overrides = base.get("overrides", base.get("set"))
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(None, where, f"expected a mapping of key path -> value, got "
                          f"{value_kind(overrides)}")
    check_keys(overrides, where)
    return workload, cluster, {k: _plain(v, f"{where}.{k}") for k, v in overrides.items()}


def _config_ref(value: Any, field: str, typed: type) -> Any:
    """A base ``workload`` / ``cluster`` as :func:`simwall.simulate` takes it: a bundled
    name or a path (as text) or a typed config; the cluster may be None (the workload's
    ``defaults.cluster``)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if (isinstance(value, str) and value) or isinstance(value, typed) or (
            value is None and field == "cluster"):
        return value
    also = ", None (the workload's defaults.cluster)" if field == "cluster" else ""
    raise ConfigError(None, f"base.{field}", f"expected a bundled name, a file path or a "
                      f"simwall {typed.__name__}{also}, got {value_kind(value)}")


def _plain(value: Any, where: str) -> Any:
    """:func:`~simwall.report.records.plain_value`, its refusal a ConfigError at
    ``where``."""
    try:
        return plain_value(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(None, where, str(err)) from None


def _tasks(workload: str | Workload, cluster: str | ClusterSpec | None, base_set: dict,
           points: list[dict]) -> list[tuple]:
    return [(i, workload, cluster, base_set, p) for i, p in enumerate(points)]


#: Points per task sent to a worker. Batching amortises the per-task overhead and, with
#: points grouped by their cluster overrides, lets one worker reuse one topology and its
#: memoised collective times (measured on 2 cores: 1000 Llama-2-7B points in 6.8 s
#: batched by cluster vs 8.3 s one at a time). Small, so a killed sweep loses little.
BATCH_POINTS = 8


def run_points(tasks: list[tuple]) -> list[dict]:
    """:func:`run_point` over a batch (the top-level worker the executors call)."""
    return [run_point(t) for t in tasks]


def _batches(tasks: list[tuple], size: int = BATCH_POINTS) -> list[list[tuple]]:
    """Tasks grouped by their cluster overrides (then sweep index), cut into batches."""
    def cluster_part(t: tuple) -> str:
        over = {**t[3], **t[4]}
        return _canonical(dict(split_key_overrides(over)[1]))
    ordered = sorted(tasks, key=lambda t: (cluster_part(t), t[0]))
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def _completed(tasks: list[tuple], executor: cf.Executor | None) -> Iterator[dict]:
    """Records in completion order (submission order when serial)."""
    if executor is None:
        for t in tasks:
            yield run_point(t)
        return
    # Local worker processes start as work is submitted; started while SIGINT is ignored,
    # they keep ignoring it from their first instruction (an ignored signal survives exec,
    # and Python then installs no KeyboardInterrupt handler), so a Ctrl-C during their
    # start-up cannot print a traceback of theirs: the parent alone handles it.
    with sigint_ignored():
        futures = [executor.submit(run_points, batch) for batch in _batches(tasks)]
    try:
        for fut in cf.as_completed(futures):
            try:
                recs = fut.result()
            except cf.process.BrokenProcessPool:
                raise SimwallError("a sweep worker process died (out of memory, or killed); "
                                   "finished points are in the journal: rerun with "
                                   "--resume") from None
            yield from recs
    finally:
        # A process pool cancels its pending work itself (shutdown(cancel_futures=True),
        # make_executor's closers), removing it from its queue; cancelling those futures
        # here would leave them in the pool's pending table, and a pool broken by the
        # terminated workers then sets their exception: InvalidStateError, a traceback from
        # its management thread (CPython 3.11's ProcessPoolExecutor.terminate_broken).
        if not isinstance(executor, cf.ProcessPoolExecutor):
            for fut in futures:
                fut.cancel()


def sweep(base: dict, grid: dict[str, list], executor: cf.Executor | None = None,
          zip: dict[str, list] | None = None) -> Iterator[dict]:
    """Simulate every point of ``grid`` (and ``zip``) on ``base``; records in index order.

    ``base``: ``{"workload": name|path|Workload, "cluster": name|path|ClusterSpec|None,
    "overrides": {key path: value}}``, no other key (``set`` may stand for
    ``overrides``, as in a sweep file; workload defaults to ``gpt3-175b`` and cluster to
    the workload's ``defaults.cluster``, as for :func:`simwall.simulate`). ``grid``:
    ``{key path: [values] or {"range": [start, stop, step]}}`` (Cartesian product, last
    axis fastest). ``zip``: ``{key path: [values]}``, lists of one length advanced
    together, no key also in ``grid``. ``executor``: None (run here, one point at a
    time) or any :class:`concurrent.futures.Executor`. Values are copied as plain data
    (numpy numbers as Python ones): the records share nothing with the arguments.

    Raises :class:`ConfigError`, at the call, before any point runs: any argument not of
    that shape, an unknown key path, more than :data:`MAX_SWEEP_POINTS` points, or a
    base that does not load (a workload or cluster that names nothing; every point would
    fail). A point that cannot run is a record with its ``error``.

    >>> recs = list(sweep({"workload": "gpt2"}, {"plan.tp": [1, 2]}))  # doctest: +SKIP
    """
    workload, cluster, base_set = _base_parts(base)
    zip = {} if zip is None else zip
    _checked_axes(grid, zip)
    check_keys(grid, "grid")
    check_keys(zip, "zip")
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise ConfigError(None, "executor", f"expected None (run here) or a "
                          f"concurrent.futures.Executor (an object with .submit), got "
                          f"{value_kind(executor)}")
    tasks = _tasks(workload, cluster, base_set, expand(*_plain_axes(grid, zip)))
    _base_configs(workload, cluster, base_set)  # each point starts from it
    return _in_order(tasks, executor)


def _in_order(tasks: list[tuple], executor: cf.Executor | None) -> Iterator[dict]:
    """Records of ``tasks`` in sweep-index order (each held back until every earlier
    one has finished)."""
    pending: dict[int, dict] = {}
    nxt = 0
    for rec in _completed(tasks, executor):
        pending[rec["sweep.index"]] = rec
        while nxt in pending:
            yield pending.pop(nxt)
            nxt += 1


def _plain_axes(grid: Mapping, zip: Mapping) -> tuple[dict[str, list], dict[str, list]]:
    """Checked axes (:func:`check_axes`) as new lists of plain values, a ``{"range":
    [start, stop, step]}`` axis expanded: nothing shared with the caller."""
    def values(where: str, key: str, axis: Any) -> list:
        listed = axis if isinstance(axis, (list, tuple)) else _range_values(key, axis)
        return [_plain(v, f"{where}.{key}[{i}]") for i, v in enumerate(listed)]
    return ({k: values("grid", k, v) for k, v in grid.items()},
            {k: values("zip", k, v) for k, v in zip.items()})


# ---------------------------------------------------------------------------------------
# The journal


def journal_path(output: str | Path) -> Path:
    """Where a sweep journals records as they finish: the output itself for .jsonl,
    else ``<output>.partial.jsonl``."""
    output = Path(output)
    if format_of(output) == "jsonl":
        return output
    return output.with_name(output.name + ".partial.jsonl")


def check_sweep_output(output: str | Path) -> Path:
    """The journal of a sweep writing ``output``, once both can be written: a known
    suffix, an existing directory we may write in (the results are renamed into place),
    neither of them a directory. A ConfigError naming ``-o`` otherwise; run before any
    worker starts."""
    format_of(output)
    check_output_path(output, "-o", replace=True)
    journal = journal_path(output)
    check_output_path(journal, "-o", replace=True)
    return journal


# ---------------------------------------------------------------------------------------
# Executors

#: How often a local worker checks that its parent still lives (seconds). Our own choice:
#: an orphan lingers at most this long; the check costs nothing measurable.
PARENT_POLL_S = 0.5


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ctrl-C (SIGINT) ignored inside the block, in the main thread (other threads may not
    change signal handlers: there the block runs as is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def end_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this worker when ``parent_pid`` (the sweep) dies, even by
    SIGKILL, instead of blocking forever on the task queue. A daemon thread polls
    ``os.getppid()``: an orphan is re-parented, so its parent id changes. (Linux's
    ``prctl(PR_SET_PDEATHSIG)`` is not used: it fires when the *thread* that spawned the
    worker ends, and a pool spawns workers from whichever thread submits.) With the
    workers gone, multiprocessing's resource tracker sees its pipe close and ends too."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="simwall-parent-watch", daemon=True).start()


@dataclass
class _Exec:
    """An executor, how to close it when done, and how to stop it at once (Ctrl-C:
    running points are abandoned; finished ones are already in the journal)."""

    executor: cf.Executor | None
    close: Callable[[], None]
    abort: Callable[[], None] | None = None

    def stop(self) -> None:
        (self.abort or self.close)()


def _start_worker(parent_pid: int) -> None:
    """Initializer of local worker processes. Ctrl-C in a terminal reaches the whole
    process group; the parent alone handles it (and ends the workers), so a worker
    ignores it and prints no traceback of its own. And a worker ends with its parent
    (:func:`end_with_parent`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    end_with_parent(parent_pid)


#: Seconds to wait for a terminated worker process to end before the pool is closed.
WORKER_EXIT_WAIT_S = 5

#: Seconds to wait for a Dask scheduler to answer: a wrong address should fail fast.
DASK_CONNECT_TIMEOUT_S = 5


def executor_kind(kind: str, address: str | None, workers: int | None = None) -> str:
    """The executor that runs a sweep given ``--executor kind``, ``--address`` and
    ``--workers``: ``local`` with an address is ``dask``. A ConfigError for an address
    the executor would ignore (``serial``, ``dask-local``), for ``dask`` without one,
    and for a worker count it would ignore (``serial`` runs here; a Dask scheduler has
    its own workers); checked before anything starts."""
    if address and kind in ("serial", "dask-local"):
        raise ConfigError("--address", None, f"needs --executor dask (a running Dask "
                          f"scheduler); --executor {kind} would ignore it")
    if address and kind == "local":
        kind = "dask"
    if workers is not None and kind in ("serial", "dask"):
        raise ConfigError("--workers", None, f"sets the processes of --executor local or "
                          f"dask-local; {kind} would ignore it")
    if kind == "dask" and not address:
        raise ConfigError("--executor", None, "dask needs --address tcp://HOST:PORT "
                          "(or use dask-local)")
    return kind


def make_executor(kind: str = "local", workers: int | None = None,
                  address: str | None = None) -> _Exec:
    """An executor and its closer. ``local``: processes on this machine (``spawn``, all
    cores by default); ``dask``: the Dask scheduler at ``address``; ``dask-local``: a
    local Dask cluster; ``serial``: this process (:func:`executor_kind` checks the
    address)."""
    kind = executor_kind(kind, address, workers)
    if kind == "serial":
        return _Exec(None, lambda: None)
    if kind == "local":
        n = workers or os.cpu_count() or 1
        ex = cf.ProcessPoolExecutor(max_workers=n, initializer=_start_worker,
                                    initargs=(os.getpid(),),
                                    mp_context=multiprocessing.get_context("spawn"))

        def abort() -> None:
            # The pool's processes are this process's only multiprocessing children
            # (terminating them, rather than waiting for their batches, is what makes
            # Ctrl-C quick).
            children = multiprocessing.active_children()
            for child in children:
                child.terminate()
            for child in children:
                child.join(WORKER_EXIT_WAIT_S)
            # A worker ended while sending its result leaves half a message in the pool's
            # result pipe, and the pool's manager thread would wait for the rest forever
            # (so would shutdown and the interpreter's exit). Our copy of the pipe's write
            # end is the last one left once the workers are gone: closing it turns that
            # wait into end-of-file, which the pool handles as a broken pool.
            writer = getattr(getattr(ex, "_result_queue", None), "_writer", None)
            if writer is not None:
                writer.close()
            ex.shutdown(wait=True, cancel_futures=True)
        return _Exec(ex, lambda: ex.shutdown(wait=True, cancel_futures=True), abort)
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--executor", None, f"{kind} needs Dask: pip install "
                          f"'simwall[dask]'") from None
    if kind == "dask":
        try:
            client = Client(address, timeout=DASK_CONNECT_TIMEOUT_S)
        except (OSError, ValueError, TypeError) as err:  # unreachable; unknown scheme
            raise ConfigError("--address", None, f"cannot reach the Dask scheduler at "
                              f"{address}: {_one_line(err)}") from None

        def close() -> None:
            client.close()
        return _Exec(client.get_executor(pure=False), close)
    cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                           processes=True, dashboard_address=None)
    client = Client(cluster)

    def close_local() -> None:
        client.close()
        cluster.close()
    return _Exec(client.get_executor(pure=False), close_local)


# ---------------------------------------------------------------------------------------
# The CLI's sweep: journal, resume, progress, final file


@dataclass(frozen=True)
class SweepSummary:
    points: int
    ran: int
    reused: int
    errors: int
    output: str


@dataclass(frozen=True)
class SweepJob:
    """A sweep about to write ``output``: every task (sweep-index order), the records
    reused from an earlier run (by sweep index) and whether it resumes."""

    output: Path
    journal: Path
    tasks: list[tuple]
    reused: dict[int, dict]
    resume: bool


def sweep_job(spec: SweepFile, output: str | Path, resume: bool = False,
              overwrite: bool = False) -> SweepJob:
    """The job of running ``spec`` into ``output``; reads files, writes none.

    A sweep never discards finished results unasked: when ``output`` or its journal
    holds anything that is not the record of one of ``spec``'s points (another sweep's
    records, another program's rows, a line that is no record), a ConfigError naming
    the file and the count, unless ``overwrite``. With ``resume`` the points whose
    ``sweep.key`` is in the output or the journal are reused, not simulated again.
    """
    output = Path(output)
    journal = check_sweep_output(output)
    tasks = _tasks(*_base_parts(spec.base()), expand(*spec.axes()))
    if overwrite and not resume:  # nothing there is kept: no need to read it
        return SweepJob(output, journal, tasks, {}, resume)
    held = {path: read_held_records(path) for path in dict.fromkeys((output, journal))}
    # Entries of the output that are no record (only a .jsonl has any); the journal
    # (.partial.jsonl) is simwall's own scratch file: a line there that is no record is
    # a killed writer's torn line.
    not_records = count_entries(output) - len(held[output])
    if not (not_records or any(held.values())):
        return SweepJob(output, journal, tasks, {}, resume)
    keys = [point_key(*t[1:]) for t in tasks]
    ours = set(keys)
    for path, records in held.items():
        foreign = sum(1 for r in records if r.get("sweep.key") not in ours)
        foreign += not_records if path == output else 0
        if foreign and not overwrite:
            raise ConfigError(str(path), None, _foreign_message(foreign))
    done = {r["sweep.key"]: r for records in held.values() for r in records
            if r.get("sweep.key") in ours} if resume else {}
    reused = {t[0]: {**done[k], "sweep.index": t[0]} for t, k in zip(tasks, keys, strict=True)
              if k in done}
    return SweepJob(output, journal, tasks, reused, resume)


def _foreign_message(n: int) -> str:
    what = "1 record that is not a point" if n == 1 else f"{n:,} records that are not points"
    return (f"holds {what} of this sweep; a sweep never discards finished results: write "
            f"to another -o, move or remove the file, or pass --overwrite to replace it")


def run_sweep(spec: SweepFile, output: str | Path, executor: cf.Executor | None = None,
              resume: bool = False, progress: bool | None = None,
              overwrite: bool = False) -> SweepSummary:
    """Run ``spec``, journal each record as it finishes, then write ``output`` sorted by
    sweep index (:func:`sweep_job`, then :func:`run_job`). With ``resume`` a point
    whose key is already in the output or the journal is not simulated again; an output
    holding other records is refused unless ``overwrite``. ``progress``: tqdm bar on
    stderr (None: only on a terminal)."""
    return run_job(sweep_job(spec, output, resume, overwrite), executor, progress)


def run_job(job: SweepJob, executor: cf.Executor | None = None,
            progress: bool | None = None) -> SweepSummary:
    """Run what ``job`` has left, journal each record as it finishes, then write its
    output sorted by sweep index."""
    output, journal, tasks = job.output, job.journal, job.tasks
    results = dict(job.reused)
    reused = len(results)
    todo = [t for t in tasks if t[0] not in results]
    if journal.exists() and not job.resume:
        journal.unlink()
    elif journal.exists():
        # Rewrite whole lines only: a killed writer may have left half a line, and a
        # record appended after it would be unreadable.
        try:
            save_records(journal, read_held_records(journal))
        except OSError as err:
            raise output_error("-o", journal, err) from None
    bar = _progress(len(tasks), reused, progress)
    try:
        with _opened_journal(journal) as fh:
            for rec in _completed(todo, executor):
                _journal(fh, journal, rec)
                results[rec["sweep.index"]] = rec
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    ordered = [results[i] for i in sorted(results)]
    try:
        save_records(output, ordered)
    except OSError as err:  # e.g. the disk filled up; the journal keeps every record
        raise output_error("-o", output, err) from None
    if journal != output and journal.exists():
        journal.unlink()
    return SweepSummary(points=len(tasks), ran=len(todo), reused=reused,
                        errors=sum(1 for r in ordered if r.get("error")), output=str(output))


@contextlib.contextmanager
def _opened_journal(journal: Path) -> Iterator[Any]:
    """The journal open for appending; an OSError is the one-line error of ``-o``."""
    try:
        fh = open(journal, "a", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as err:
        raise output_error("-o", journal, err) from None
    try:
        yield fh
    except BaseException:
        with contextlib.suppress(OSError):  # the error in flight says what went wrong
            fh.close()
        raise
    try:
        fh.close()
    except OSError as err:
        raise output_error("-o", journal, err) from None


def _journal(fh: Any, journal: Path, rec: dict) -> None:
    """Append ``rec`` as one whole, flushed line (a killed sweep keeps what finished)."""
    try:
        fh.write(record_line(rec))
        fh.flush()
    except OSError as err:
        raise output_error("-o", journal, err) from None


def _progress(total: int, initial: int, enabled: bool | None):
    if enabled is False:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    # disable=None: tqdm turns itself off when stderr is not a terminal (a pipe, CI).
    return tqdm(total=total, initial=initial, unit="cfg", file=sys.stderr,
                disable=None if enabled is None else False, smoothing=0.1,
                desc="simwall sweep")
