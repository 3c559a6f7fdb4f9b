"""``--set KEY=VALUE`` overrides, applied to the raw document before validation.

A value is read as YAML (``plan.tp=4`` is an integer, ``plan.schedule=gpipe`` a string).
The edited key paths are recorded in the document, so errors about them say
``(from --set)`` instead of citing a line of the file.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import ConfigError
from .yamlio import LineDict, format_value, parse_yaml

__all__ = ["apply_overrides", "parse_set", "split_overrides"]


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
        node[parts[-1]] = value
    return out


def split_overrides(items: list[str]) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """Split ``--set`` items into (workload overrides, cluster overrides)."""
    workload, cluster = [], []
    for item in items:
        key, value = parse_set(item)
        if key.startswith("cluster."):
            cluster.append((key[len("cluster."):], value))
        else:
            workload.append((key, value))
    return workload, cluster
