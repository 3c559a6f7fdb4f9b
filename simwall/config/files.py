"""Finding input files: bundled names (``gpt3-175b``, ``dgx-a100``) or paths, and loading a
workload or cluster from either (YAML, then ``--set`` overrides, then validation)."""

from __future__ import annotations

import difflib
import re
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..memo import memoized
from .graph import attach_graph, read_graphml_cluster
from .limits import MAX_GRAPH_YAML_VALUES, MAX_YAML_VALUES
from .overrides import apply_overrides
from .schema import ClusterSpec, Workload
from .validation import validate
from .yamlio import load_yaml

__all__ = ["bundled_dir", "bundled_names", "display_path", "find_file", "load_cluster",
           "load_workload"]

_BUNDLED = {"workload": "workloads", "cluster": "topologies", "catalog": "catalog"}


@memoized(maxsize=8)
def bundled_dir(kind: str) -> Path:
    """The folder of the bundled files of ``kind`` ('workload', 'cluster', 'catalog').
    Memoised: the package's folders stay where they are while it runs (a sweep looks
    them up for every point)."""
    folder = _BUNDLED[kind]
    try:
        path = Path(str(resources.files(f"simwall.{folder}")))
        if path.is_dir() and any(path.glob("*.yaml")):
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    # Source checkout without install: the folders sit beside the package.
    here = Path(__file__).resolve().parent
    for candidate in (here / folder, here.parent / folder):
        if candidate.is_dir():
            return candidate
    raise ConfigError(None, None, f"bundled {folder}/ not found (broken install?)")


def bundled_names(kind: str) -> list[str]:
    """Names of the bundled files of ``kind`` ('workload', 'cluster', 'catalog')."""
    return sorted(p.stem for p in bundled_dir(kind).glob("*.yaml"))


def find_file(kind: str, name_or_path: str) -> Path:
    """A path for a bundled name or an existing file path; else a ConfigError."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists() or "/" in name_or_path:
        if p.is_file():
            return p
        raise ConfigError(str(name_or_path), None, "not a file" if p.exists() else "no such file")
    candidate = bundled_dir(kind) / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    names = bundled_names(kind)
    near = difflib.get_close_matches(name_or_path, names, n=1, cutoff=0.4)
    hint = f"; did you mean '{near[0]}'?" if near else ""
    raise ConfigError(None, kind, f"no bundled {kind} or file named '{name_or_path}'{hint} "
                      f"(bundled: {', '.join(names)})")


def display_path(path: Path) -> str:
    """``path`` as the user should read it: relative to the bundle or the cwd."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        pass
    for folder in ("workloads", "topologies", "catalog"):
        if path.parent.name == folder:
            return f"{folder}/{path.name}"
    return str(path)


def _is_bundled(kind: str, path: Path) -> bool:
    """Whether ``path`` is one of simwall's own files of ``kind`` as :func:`find_file`
    returns a bundled name: those are parsed by libyaml (:func:`~.yamlio.parse_yaml`,
    ``bundled``: the same values and key lines, some 10x faster; tests/test_config.py)."""
    return path.parent == bundled_dir(kind)


def load_workload(name_or_path: str, overrides: list[tuple[str, Any]] = ()) -> Workload:
    """Load a workload by bundled name or path, apply overrides, validate."""
    path = find_file("workload", name_or_path)
    source = display_path(path)
    # One copy of the memoised parse either way: apply_overrides makes it when it edits,
    # load_yaml when nothing is overridden.
    doc = apply_overrides(load_yaml(path, copy_=not overrides,
                                    bundled=_is_bundled("workload", path)),
                          list(overrides), source)
    return validate(Workload, doc, source)


#: Bytes above which a cluster file with a top-level ``graph:`` mapping is read with the
#: graph bound at once (a written-out 32-node cluster is about 130 kB).
_LARGE_GRAPH_BYTES = 256_000


def _holds_large_graph(path: Path) -> bool:
    """Whether a cluster file is large and gives its graph inline."""
    try:
        if path.stat().st_size <= _LARGE_GRAPH_BYTES:
            return False
        return re.search(r"^graph:", path.read_text(encoding="utf-8", errors="replace"),
                         re.MULTILINE) is not None
    except OSError:
        return False


def load_cluster(name_or_path: str, overrides: list[tuple[str, Any]] = ()) -> ClusterSpec:
    """Load a cluster by bundled name or path, apply overrides, validate."""
    path = find_file("cluster", name_or_path)
    source = display_path(path)
    if path.suffix.lower() == ".graphml":      # the cluster as a GraphML graph
        doc = apply_overrides(read_graphml_cluster(path, source), list(overrides), source)
        return validate(ClusterSpec, attach_graph(doc, path, source), source)
    try:
        # Overrides: apply_overrides copies the parse before anything edits it.
        raw = load_yaml(path, MAX_GRAPH_YAML_VALUES if _holds_large_graph(path) else
                        MAX_YAML_VALUES, copy_=not overrides,
                        bundled=_is_bundled("cluster", path))
    except ConfigError as err:
        # A cluster file holding its graph may be far larger than other inputs: read it
        # again with the graph bound when what overflowed was the graph.
        if not (err.key or "").startswith("graph") or "YAML values" not in err.message:
            raise
        raw = load_yaml(path, MAX_GRAPH_YAML_VALUES, copy_=not overrides)
    doc = apply_overrides(raw, list(overrides), source)
    doc = attach_graph(doc, path, source)      # an explicit graph, if the file gives one
    return validate(ClusterSpec, doc, source)
