"""Validation with located errors: pydantic failures become one :class:`ConfigError`.

The error names the file, the line of the key (when the file recorded one and ``--set``
did not write it), the key path users write (``faults.stragglers[0].device``) and what
was expected versus found (``expected an integer > 0, got -3``; docs/errors.md).
"""

from __future__ import annotations

import difflib
import math
import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from .schema import ClusterSpec, Expected, OneOf, Workload
from .yamlio import format_number, format_value, key_path, line_of

__all__ = ["flat_lines", "key_path_problem", "validate"]

# pydantic reports each failure with a location (``loc``) through the schema. Inside a
# union (``dp: int | 'auto'``, ``device: name | {base: ...}``) that location also carries
# a label per branch (``constrained-int``, ``DeviceRef``) and there is one error per
# branch. The helpers below walk the schema alongside ``loc`` so they know which parts
# are branch labels, which type each key expects, and which branch the user meant.


def _unwrap(tp: Any, meta: tuple = ()) -> tuple[Any, tuple]:
    """Strip ``Annotated`` (collecting its constraints) and ``Optional`` from ``tp``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            base, *extra = get_args(tp)
            for item in extra:
                meta += tuple(getattr(item, "metadata", None) or (item,))
            tp = base
            continue
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp, meta


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _union_args(tp: Any) -> list | None:
    if get_origin(tp) in (Union, types.UnionType):
        return [a for a in get_args(tp) if a is not type(None)]
    return None


def _field(model: type[BaseModel], key: Any) -> Any:
    """(annotation, constraints) of ``model``'s field named or aliased ``key``, or None."""
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return _unwrap(info.annotation, tuple(info.metadata))
    return None


def _names(tp: Any, meta: tuple) -> tuple | None:
    """The allowed values of a ``Literal`` or of a registry-backed name
    (:class:`~simwall.config.schema.OneOf`), described alike; None for other types."""
    if get_origin(tp) is Literal:
        return get_args(tp)
    one_of = next((m for m in meta if isinstance(m, OneOf)), None)
    return one_of.choices() if one_of is not None else None


def _label_matches(arg: Any, label: str) -> bool:
    tp, meta = _unwrap(arg)
    if _is_model(tp):
        return label == tp.__name__
    if get_origin(tp) is Literal:
        return label.startswith("literal[")
    if any(isinstance(m, OneOf) for m in meta):
        return label.startswith("function-after[")
    name = getattr(tp, "__name__", "")
    return label in (name, f"constrained-{name}") or label.startswith(f"{name}[")


class _Walk:
    """One pydantic error location read against the schema.

    ``path``: the user's key path (branch labels dropped); ``types``: the expected
    (annotation, constraints) at each step of ``path`` (inside a union: the branch this
    error came from); ``union``: (index into ``path`` just past the first union, its
    branches, the branch this error came from, the union's own (annotation,
    constraints)) or None.
    """

    def __init__(self, model: type[BaseModel], loc: tuple) -> None:
        self.root = model
        self.path: list = []
        self.types: list = []
        self.union: tuple | None = None
        current: Any = (model, ())
        for part in loc:
            tp = current[0] if current else None
            branches = _union_args(tp) if tp is not None else None
            if branches is not None and isinstance(part, str):
                chosen = next((b for b in branches if _label_matches(b, part)), None)
                if self.union is None:
                    self.union = (len(self.path), branches, chosen, current)
                current = _unwrap(chosen, current[1]) if chosen is not None else None
                if self.types:
                    self.types[-1] = current
                continue
            if part == "[key]":  # the key of a mapping, not its value, is wrong
                key_tp = get_args(self.types[-2][0])[0] if len(self.types) > 1 and \
                    self.types[-2] and get_origin(self.types[-2][0]) is dict else None
                current = _unwrap(key_tp) if key_tp is not None else None
                self.types[-1] = current
                continue
            self.path.append(part)
            nxt = None
            if tp is not None and _is_model(tp):
                nxt = _field(tp, part)
            elif tp is not None and get_origin(tp) is dict:
                nxt = _unwrap(get_args(tp)[1])
            elif tp is not None and get_origin(tp) in (tuple, list):
                nxt = _unwrap(get_args(tp)[0])
            self.types.append(nxt)
            current = nxt

    @property
    def leaf(self) -> Any:
        return self.types[-1] if self.types else None

    def parent_model(self) -> type[BaseModel] | None:
        parent = self.types[-2] if len(self.types) > 1 else (self.root, ())
        return parent[0] if parent and _is_model(parent[0]) else None


def _describe(spec: Any) -> str:
    """What a value of (annotation, constraints) ``spec`` must be, in words."""
    if spec is None:
        return "a valid value"
    tp, meta = spec
    said = next((m for m in meta if isinstance(m, Expected)), None)
    if said is not None:
        return said.words
    branches = _union_args(tp)
    if branches is not None:
        return " or ".join(_describe(_unwrap(b)) for b in branches)
    names = _names(tp, meta)
    if names is not None:
        values = [repr(v) for v in names]
        return values[0] if len(values) == 1 else f"one of {', '.join(values)}"
    if _is_model(tp) or get_origin(tp) is dict:
        return "a mapping"
    if get_origin(tp) in (tuple, list):
        return "a list"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    word = {int: "an integer", float: "a number"}.get(tp)
    if word is None:
        return f"a {getattr(tp, '__name__', 'valid value')}"
    bounds = {k: getattr(m, k) for m in meta for k in ("gt", "ge", "lt", "le")
              if getattr(m, k, None) is not None}
    lo = f"> {format_number(bounds['gt'])}" if "gt" in bounds else (
        f">= {format_number(bounds['ge'])}" if "ge" in bounds else None)
    hi = f"< {format_number(bounds['lt'])}" if "lt" in bounds else (
        f"<= {format_number(bounds['le'])}" if "le" in bounds else None)
    if tp is int and "ge" in bounds and "le" in bounds:
        return f"{word} from {bounds['ge']} to {bounds['le']}"
    if lo and hi:
        return f"{word} {lo} and {hi}"
    return f"{word} {lo or hi}" if (lo or hi) else word


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _value_at(doc: Any, path: list) -> Any:
    node = doc
    for key in path:
        if isinstance(node, dict) and key in node or isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return None
    return node


def _section_of(key: str, model: type[BaseModel] | None) -> str | None:
    """The key path ``key`` lacks its section in, for a key written without it: a field
    of one of ``model``'s sections (``tp`` on a workload -> ``plan.tp``), or on a
    workload a cluster key (``nodes`` -> ``cluster.nodes``, as overrides spell it)."""
    if model is None:
        return None
    for name, info in model.model_fields.items():
        tp = _unwrap(info.annotation)[0]
        if _is_model(tp) and key in _keys_of(tp):
            return f"{info.alias or name}.{key}"
    if model is Workload and key in _keys_of(ClusterSpec):
        return f"cluster.{key}"
    return None


def _unknown_key(key: Any, model: type[BaseModel] | None) -> str:
    valid = _keys_of(model) if model else []
    section = _section_of(str(key), model)
    if section:
        return f"unknown key; did you mean '{section}'?"
    near = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
    if near:
        return f"unknown key; did you mean '{near[0]}'?"
    return f"unknown key (valid keys: {', '.join(valid)})" if valid else "unknown key"


def key_path_problem(model: type[BaseModel], key: str, prefix: str = "") -> str | None:
    """What is wrong with dotted ``key`` as an override of a ``model`` document (None if
    ``model`` has that key): ``plan.tpp`` on a Workload gives "unknown key; did you mean
    'plan.tp'?". A key inside a catalog reference (``device.memory_bandwidth``) is
    looked up in its mapping form, as :func:`~simwall.config.overrides.apply_overrides`
    writes it. Lets a sweep refuse a misspelt axis before any point runs. ``prefix``
    (``cluster.``) is put before the key paths the message suggests."""
    parts = key.split(".")
    spec: Any = (model, ())
    for i, part in enumerate(parts):
        tp, _ = spec
        branches = _union_args(tp)
        if branches is not None:  # device: name | {base: ...}: a sub-key means the mapping
            mappings = [_unwrap(b) for b in branches
                        if _is_model(_unwrap(b)[0]) or get_origin(_unwrap(b)[0]) is dict]
            if mappings:
                tp = mappings[0][0]
        above = prefix + ".".join(parts[:i]) if i else ""
        if _is_model(tp):
            valid = _keys_of(tp)
            spec = _field(tp, part)
        elif get_origin(tp) is dict:
            key_tp = _unwrap(get_args(tp)[0])[0]
            valid = [str(v) for v in get_args(key_tp)] if get_origin(key_tp) is Literal else None
            spec = _unwrap(get_args(tp)[1]) if valid is None or part in valid else None
        else:
            return f"{above} is not a mapping, so it has no key '{part}'"
        if spec is None:
            near = difflib.get_close_matches(part, valid or [], n=1, cutoff=0.5)
            if near:
                return f"unknown key; did you mean '{above + '.' if above else prefix}{near[0]}'?"
            where = f" of {above}" if above else ""
            return f"unknown key (valid keys{where}: {', '.join(valid or [])})"
    return None


def _pick(errors: list[dict], model: type[BaseModel], doc: Any) -> tuple[list, str]:
    """The (key path, message) to report for the first failure in ``errors``."""
    err = errors[0]
    walk = _Walk(model, err["loc"])
    if walk.union is not None:
        at, branches, _, union_spec = walk.union
        path = walk.path[:at]
        value = _value_at(doc, path)
        models = [b for b in branches if _is_model(_unwrap(b)[0])]
        if isinstance(value, dict) and models:
            # A mapping was written, so the user meant the mapping branch: report its error.
            for other in errors:
                w = _Walk(model, other["loc"])
                if w.union and w.union[0] == at and w.path[:at] == path \
                        and w.union[2] is not None and _is_model(_unwrap(w.union[2])[0]):
                    return _message(other, w)
        return path, f"expected {_describe(union_spec)}, got {format_value(value)}"
    return _message(err, walk)


def _message(err: dict, walk: _Walk) -> tuple[list, str]:
    kind, found, path = err["type"], err.get("input"), walk.path
    if kind == "extra_forbidden":
        return path, _unknown_key(path[-1], walk.parent_model())
    if kind == "too_many_entries":  # schema.at_most: the message names the limit
        return path, err["msg"]
    if kind == "missing":
        return path, f"required key is missing (expected {_describe(walk.leaf)})"
    if kind == "value_error":
        msg = str(err.get("ctx", {}).get("error", err["msg"]))
        # Cross-field checks name their own key: "model.kv_heads: must divide ...".
        # (Digits too: a sweep's grid.cluster.device.peak_flops.bf16.)
        match = re.match(r"^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*): (.*)$", msg)
        if match:
            return match.group(1).split("."), match.group(2)
        return path, msg
    if walk.leaf is not None:
        if isinstance(found, float) and not math.isfinite(found):
            return path, f"expected a finite number, got {format_value(found)}"
        if kind in ("too_long", "too_short") and isinstance(found, (list, tuple)):
            return path, f"expected {_describe(walk.leaf)}, got a list of {len(found)}"
        return path, f"expected {_describe(walk.leaf)}, got {format_value(found)}"
    return path, f"{err['msg'].rstrip('.').lower()}, got {format_value(found)}"


def flat_lines(doc: Any, prefix: tuple = ()) -> dict[str, int]:
    """Dotted key path -> line, for every key ``doc`` recorded."""
    out: dict[str, int] = {}
    if isinstance(doc, dict):
        lines = getattr(doc, "lines", {})
        for key, value in doc.items():
            path = prefix + (key,)
            if key in lines:
                out[".".join(map(str, path))] = lines[key]
            out.update(flat_lines(value, path))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out.update(flat_lines(value, prefix + (i,)))
    return out


def _from_set(doc: Any, path: list) -> bool:
    """Whether key ``path`` (or a mapping above it) was written by ``--set``."""
    keys = getattr(doc, "overridden", ())
    if not keys:                 # a document no --set touched (most of them)
        return False
    dotted = tuple(str(p) for p in path)
    return any(dotted[:len(k)] == k or k[:len(dotted)] == dotted
               for k in map(tuple, keys))


def validate(model: type[BaseModel], doc: Any, source: str) -> Any:
    """Validate raw ``doc`` against ``model``; the first error becomes a ConfigError.

    The error names ``source``, the line of the key when the file recorded one (not
    when ``--set`` wrote it), the key path and what was expected versus found.
    """
    if doc is None:
        raise ConfigError(source, None, "empty file, expected a mapping")
    if not isinstance(doc, dict):
        raise ConfigError(source, None, f"expected a mapping at the top, got {format_value(doc)}")
    try:
        obj = model.model_validate(doc)
    except ValidationError as exc:
        # An unknown key is usually a misspelt required one: report it, not the "missing".
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        path, msg = _pick(errors, model, doc)
        key = key_path(path)
        line = line_of(doc, tuple(path))
        if path and _from_set(doc, path):
            line, msg = None, f"{msg} (from --set)"
        raise ConfigError(source, key, msg, line=line) from None
    except RecursionError:
        raise ConfigError(source, None, "nested too deeply") from None
    if hasattr(obj, "_file"):
        obj._file = source
        obj._lines = {k: v for k, v in flat_lines(doc).items()
                      if not _from_set(doc, k.split("."))}
        obj._set_keys = tuple(".".join(map(str, k)) for k in getattr(doc, "overridden", ()))
    return obj
