"""Key-path overrides (``--set KEY=VALUE``), applied to the raw document before
validation.

A value is read as YAML (``plan.tp=4`` is an integer, ``plan.schedule=gpipe`` a string).
The edited key paths are recorded in the document, so errors about them say
``(from --set)`` instead of citing a line of the file.

One spelling everywhere: a key path such as ``plan.tp`` overrides the workload and one
that starts with ``cluster.`` (``cluster.nodes``) overrides the cluster, the prefix
removed. ``simwall.simulate(**overrides)``, ``search``, ``check``, ``whatif``, sweep files
and validation case files all take that dict; the CLI builds it from ``--set`` items with
:func:`set_overrides`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigError
from .validation import validate
from .yamlio import LineDict, format_value, parse_yaml

__all__ = ["CLUSTER_PREFIX", "apply_overrides", "cluster_overrides", "is_numpy", "parse_set",
           "python_value", "reoverride", "set_overrides", "split_key_overrides"]


def parse_set(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key path, YAML-typed value)."""
    if "=" not in item:
        raise ConfigError("--set", item, "expected KEY=VALUE, e.g. plan.tp=4")
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError("--set", item, "expected KEY=VALUE with a dotted key, e.g. plan.tp=4")
    value = parse_yaml(raw, f"--set {key}") if raw.strip() else ""
    return key, value


# Keys whose string value is shorthand for ``{base: value}`` when a sub-key is set.
_REF_KEYS = {"device", "link"}


def apply_overrides(doc: Any, overrides: list[tuple[str, Any]], source: str) -> Any:
    """A copy of raw ``doc`` with each (dotted key, value) set; validate afterwards.

    A catalog reference written as a name (``device: H100-SXM5-80GB``) becomes
    ``{base: H100-SXM5-80GB}`` when a key inside it is set. The edited key paths are
    recorded so that errors about them say ``(from --set)`` instead of citing a line.
    """
    if not isinstance(doc, dict) or not overrides:
        return doc  # validate() reports an empty or non-mapping document
    out = copy.deepcopy(doc)
    if not isinstance(out, LineDict):
        out = LineDict(out)
        out.lines = {}
    out.overridden = tuple(tuple(key.split(".")) for key, _ in overrides)
    for key, value in overrides:
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if isinstance(nxt, str) and part in _REF_KEYS:
                nxt = {"base": nxt}
            elif nxt is None:
                nxt = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(source, ".".join(parts[:i + 1]),
                                  f"is {format_value(nxt)}, not a mapping, so --set {key}=... "
                                  f"cannot set a key inside it")
            node[part] = nxt
            node = nxt
        node[parts[-1]] = python_value(value)
    return out


def is_numpy(value: Any) -> bool:
    """Whether ``value`` is a numpy scalar or array (checked without importing numpy)."""
    return type(value).__module__ == "numpy" and hasattr(value, "tolist")


def python_value(value: Any) -> Any:
    """``value`` with numpy scalars and arrays (a script's ``np.int64(2)``,
    ``np.linspace(...)``) as the Python ints, floats, bools and lists YAML gives, which
    the strict schema takes; anything else as it is."""
    if is_numpy(value):
        return value.tolist()  # arrays and scalars alike
    if isinstance(value, (list, tuple)):
        return type(value)(python_value(v) for v in value)
    if isinstance(value, dict):
        return {k: python_value(v) for k, v in value.items()}
    return value


#: Key paths under this prefix override the cluster (the prefix removed), the rest the
#: workload.
CLUSTER_PREFIX = "cluster."


def set_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``--set`` items (``KEY=VALUE``, YAML values) -> ``{key path: value}``, in the order
    written; a key given twice keeps its last value, at the place it was last written, so
    the dict applies as the items would one after the other. Bad syntax raises a
    ConfigError naming ``--set``."""
    out: dict[str, Any] = {}
    for item in items:
        key, value = parse_set(item)
        out.pop(key, None)
        out[key] = value
    return out


def split_key_overrides(overrides: Mapping[str, Any]
                        ) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """``{key path: value}`` -> (workload overrides, cluster overrides), each a list of
    (key path, value) in the dict's order; cluster keys lose their ``cluster.`` prefix."""
    workload: list[tuple[str, Any]] = []
    cluster: list[tuple[str, Any]] = []
    for key, value in overrides.items():
        if key.startswith(CLUSTER_PREFIX):
            cluster.append((key[len(CLUSTER_PREFIX):], value))
        else:
            workload.append((key, value))
    return workload, cluster


def cluster_overrides(overrides: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Overrides of a command about a cluster (or a device) alone, where every key is the
    cluster's and the ``cluster.`` prefix is optional: (key path, value) pairs."""
    return [(key.removeprefix(CLUSTER_PREFIX), value) for key, value in overrides.items()]


def reoverride(config: Any, overrides: list[tuple[str, Any]], model_cls: type) -> Any:
    """An already loaded typed ``config`` (a Workload or ClusterSpec) with ``overrides``
    applied to its document and validated again (a typed copy-with-update would skip
    validation)."""
    if not overrides:
        return config
    doc = config.model_dump(by_alias=True, exclude_none=True)
    return validate(model_cls, apply_overrides(doc, overrides, config.file), config.file)
