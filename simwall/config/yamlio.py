"""The safe YAML loader: line numbers, duplicate keys, ``3e12`` read as a float.

Every mapping it builds is a :class:`LineDict` that remembers the line of each key, so
later errors (schema, overrides, plan checks) can point at the line the user wrote.
Files are parsed once per text (:func:`load_yaml` memoises the parse and hands out
copies). Values and key paths are shown the way users write them in YAML.

Every document is bounded while it is composed, before any Python object is built:
at most :data:`~simwall.config.limits.MAX_YAML_VALUES` values counted with aliases
expanded, so an alias bomb (``&a [x, x, ...]``, ``&b [*a, *a, ...]``, ...) is refused as
soon as its expansion passes the limit, wherever the YAML comes from (workload, cluster,
catalog, case file, sweep file, ``--set`` value).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
import yaml.cyaml

from ..errors import ConfigError, printable
from ..memo import memoized
from .limits import MAX_YAML_VALUES

__all__ = [
    "LineDict",
    "dotted_key",
    "format_number",
    "format_value",
    "key_path",
    "line_of",
    "load_yaml",
    "parse_yaml",
]


class _Loader(yaml.SafeLoader):
    """SafeLoader that records key lines, rejects duplicate keys and bounds the document
    to :data:`MAX_YAML_VALUES` values with aliases expanded.

    PyYAML composes an alias as a reference to the anchored node, so parsing a bomb is
    cheap; its cost comes later, when anything walks, copies or serialises the result
    (pydantic, ``json.dumps`` of a sweep's ``set``). Counting here, with the expanded
    size of each anchor remembered, is linear in the text and catches every reader.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._limit = MAX_YAML_VALUES
        self._values = 0  # values composed so far, each alias counted as its expansion
        self._anchor_values: dict[str, int] = {}  # anchor -> values it expands to
        self._where: list[tuple[Any, int | None]] = []  # (key or index, line) being composed

    def compose_node(self, parent: Any, index: Any) -> Any:
        if isinstance(index, yaml.ScalarNode):  # a mapping value: index is its key node
            self._where.append((index.value, index.start_mark.line + 1))
        elif isinstance(index, int):  # a list item
            self._where.append((index, None))
        else:  # a mapping key or the document itself
            return self._compose_counted(parent, index)
        try:
            return self._compose_counted(parent, index)
        finally:
            self._where.pop()

    def _compose_counted(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        anchor = event.anchor
        if isinstance(event, yaml.AliasEvent):
            if anchor in self.anchors:  # else PyYAML reports the undefined alias
                if anchor not in self._anchor_values:
                    raise self._too_many(f"invalid YAML: alias *{anchor} is used inside "
                                         f"its own anchor &{anchor}, so it would expand "
                                         f"without end",
                                         event.start_mark)
                self._count(self._anchor_values[anchor], event.start_mark)
            return super().compose_node(parent, index)
        self._count(1, event.start_mark)
        before = self._values
        node = super().compose_node(parent, index)
        if anchor is not None:
            self._anchor_values[anchor] = self._values - before + 1
        return node

    def _count(self, values: int, mark: Any) -> None:
        self._values += values
        if self._values > self._limit:
            raise self._too_many(f"more than {self._limit:,} YAML values once aliases "
                                 f"(*name) are expanded, simwall's limit for one file "
                                 f"(an alias bomb or a runaway list?; see "
                                 f"docs/input-formats.md)", mark)

    def _too_many(self, problem: str, mark: Any) -> ConfigError:
        # Name the key whose value is being read, up to the first list index
        # (``plan.stage_layers``, not ``plan.stage_layers[99999]``).
        path, line = [], mark.line + 1
        for key, key_line in self._where:
            if isinstance(key, int):
                break
            path.append(key)
            line = key_line
        return ConfigError(None, key_path(path), problem, line=line)


# PyYAML (YAML 1.1) reads ``3e12`` and ``1e-6`` (no dot) as strings; read them as floats.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class LineDict(dict):
    """A mapping that remembers the line (1-based) of each of its keys.

    The top-level mapping of a document edited by ``--set`` also lists the edited key
    paths in ``overridden``, so errors about them do not point at a line of the file.
    """

    lines: dict[Any, int]
    overridden: tuple[tuple[str, ...], ...] = ()


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise ConfigError(None, None, "mapping keys must be plain scalars",
                              line=key_node.start_mark.line + 1) from None
        if key in out:
            raise ConfigError(None, printable(key),
                              f"duplicate key (first at line {out.lines[key]})",
                              line=key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _construct_str(loader: _Loader, node: yaml.ScalarNode) -> str:
    """A string, unless it holds a lone surrogate (``"\\ud800"`` in a quoted YAML
    string), which is not text: it could not be printed or written as UTF-8 later."""
    value = loader.construct_scalar(node)
    found = _SURROGATE_RE.search(value)
    if found:
        raise ConfigError(None, None, f"not text: {ascii(value)[:40]} holds a lone surrogate "
                          f"({ascii(found.group())[1:-1]}); write the character itself",
                          line=node.start_mark.line + 1)
    return value


_Loader.add_constructor("tag:yaml.org,2002:str", _construct_str)


class _FastLoader(yaml.cyaml.CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """The same loader on libyaml's parser, for documents above :data:`MAX_YAML_VALUES`
    (explicit cluster graphs: the pure-Python scanner reads some 30,000 values a second,
    libyaml ten times that). The composed document is measured before anything is
    constructed, each anchored node once (:func:`_expanded_values`), so the bound holds
    with aliases expanded as in :class:`_Loader`."""

    def __init__(self, stream: str) -> None:
        yaml.cyaml.CParser.__init__(self, stream)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self._limit = MAX_YAML_VALUES

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        if _expanded_values(node, {}, self._limit) > self._limit:
            raise ConfigError(None, None, f"more than {self._limit:,} YAML values once "
                              f"aliases (*name) are expanded, simwall's limit for one file "
                              f"(an alias bomb or a runaway list?; see "
                              f"docs/input-formats.md)")
        return self.construct_document(node)


def _expanded_values(node: Any, sizes: dict, limit: int) -> int:
    """Values of ``node`` with aliases expanded (each shared node measured once; a node
    inside itself is an error), counting stops past ``limit``."""
    key = id(node)
    if key in sizes:
        if sizes[key] is None:
            raise ConfigError(None, None, "invalid YAML: an alias is used inside its own "
                              "anchor, so it would expand without end",
                              line=node.start_mark.line + 1)
        return sizes[key]
    sizes[key] = None
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = ()
    for child in children:
        total += _expanded_values(child, sizes, limit)
        if total > limit:
            break
    sizes[key] = total
    return total


_FastLoader.yaml_implicit_resolvers = {k: list(v) for k, v in
                                       _Loader.yaml_implicit_resolvers.items()}
_FastLoader.yaml_constructors = dict(_Loader.yaml_constructors)


def parse_yaml(text: str, source: str, max_values: int = MAX_YAML_VALUES,
               bundled: bool = False) -> Any:
    """Parse YAML ``text`` safely; errors are :class:`ConfigError` located in ``source``.
    ``max_values``: the bound on values; above :data:`MAX_YAML_VALUES` (an explicit
    cluster graph) libyaml parses (:class:`_FastLoader`). ``bundled``: simwall's own
    package data (the hardware catalog), parsed by libyaml whatever its size: the same
    values and key lines (tests/test_config.py compares them), some 10x faster, which is
    10 ms of every start; only the wording of a syntax error differs, and a bundled file
    has none (the tests load it)."""
    try:
        fast = bundled or max_values > MAX_YAML_VALUES
        loader = (_FastLoader if fast else _Loader)(text)
        loader._limit = max_values
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except ConfigError as err:
        raise err.with_source(source) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = err.problem or err.context or "invalid YAML"
        ctx = err.context_mark
        if err.problem and err.context and ctx is not None and ctx.line + 1 != line:
            # Where the unclosed bracket or block began often is the real mistake.
            problem += f" ({err.context} at line {ctx.line + 1})"
        raise ConfigError(source, None, f"invalid YAML: {' '.join(problem.split())}",
                          line=line) from None
    except yaml.reader.ReaderError as err:
        # Control characters (NUL, ...): most likely a binary file, not YAML.
        line = text.count("\n", 0, err.position) + 1
        raise ConfigError(source, None, f"not a YAML text file (control character "
                          f"#x{err.character:04x})" if isinstance(err.character, int) else
                          f"{err.character!r})", line=line) from None
    except yaml.YAMLError as err:
        raise ConfigError(source, None, f"invalid YAML: {' '.join(str(err).split())}") from None
    except RecursionError:
        raise ConfigError(source, None, "invalid YAML: nested too deeply") from None
    except ValueError:
        # int() of a number with more than 4,300 digits (CPython's conversion limit).
        raise ConfigError(source, None, "invalid YAML: a number too long to read "
                          "(more than 4,300 digits)") from None


def load_yaml(path: str | Path, max_values: int = MAX_YAML_VALUES,
              bundled: bool = False, copy_: bool = True) -> Any:
    """Read and parse one YAML file; a missing or unreadable file is a ConfigError.
    ``bundled``: one of simwall's own files (:func:`parse_yaml`). ``copy_=False``: the
    memoised parse itself, for a caller that copies before editing
    (:func:`~simwall.config.overrides.apply_overrides`) and never mutates it."""
    source = str(path)
    p = Path(path)
    if not p.exists():
        raise ConfigError(source, None, "no such file")
    if not p.is_file():
        raise ConfigError(source, None, "not a file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(source, None, "not UTF-8 text (expected a YAML file)") from None
    except OSError as err:
        raise ConfigError(source, None, f"cannot read: {err.strerror}") from None
    # A sweep loads the same few files for every point: parse each text once, hand out
    # copies (callers apply overrides to what they get).
    doc = _parse_once(text, source, max_values, bundled)
    return copy.deepcopy(doc) if copy_ else doc


@memoized(maxsize=256)
def _parse_once(text: str, source: str, max_values: int = MAX_YAML_VALUES,
                bundled: bool = False) -> Any:
    return parse_yaml(text, source, max_values, bundled)


def key_path(path: Any) -> str | None:
    """The key path users read in errors: mapping keys joined by dots, list items as
    ``[i]`` (``("faults", "stragglers", 0, "device")`` -> ``faults.stragglers[0].device``;
    docs/errors.md). None for an empty path. Control characters in a key are escaped
    (:func:`~simwall.errors.printable`): keys are echoed from the user's input."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{printable(part)}" if out else printable(part)
    return out or None


_INDEX_RE = re.compile(r"\[(\d+)\]")


def dotted_key(key: str) -> str:
    """``faults.stragglers[0].device`` -> ``faults.stragglers.0.device`` (line lookup)."""
    return _INDEX_RE.sub(r".\1", key)


def _key_parts(node: LineDict, path: tuple) -> int:
    """How many leading parts of ``path`` name one key of ``node``: 1 for a plain key,
    more for a key written with dots (a sweep's ``grid: {plan.pp: ...}`` holds the key
    ``plan.pp``, which an error names as ``grid.plan.pp``), 0 for none."""
    if path[0] in node:
        return 1
    for n in range(len(path), 1, -1):
        parts = path[:n]
        if all(isinstance(p, str) for p in parts) and ".".join(parts) in node:
            return n
    return 0


def line_of(doc: Any, path: tuple) -> int | None:
    """The line of the deepest key of ``path`` that ``doc`` recorded, if any (a key
    written with dots matches the parts it joins)."""
    line = None
    node = doc
    i = 0
    while i < len(path):
        key = path[i]
        n = _key_parts(node, path[i:]) if isinstance(node, LineDict) else 0
        if n:
            key = key if n == 1 else ".".join(path[i:i + n])
            line = node.lines.get(key, line)
            node = node[key]
            i += n
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
            i += 1
        else:
            break
    return line


def format_number(x: Any) -> str:
    """A number as an error message shows it (``%g`` for floats)."""
    return f"{x:g}" if isinstance(x, float) else str(x)


def format_value(value: Any) -> str:
    """``value`` as the user wrote it in YAML, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null (empty)"
    elif isinstance(value, dict):
        text = "a mapping"
    elif isinstance(value, (list, tuple)):
        text = "a list"
    elif isinstance(value, str):
        text = repr(value)
    elif isinstance(value, float):
        # A whole float keeps its ".0": "expected an integer, got 4.0", not "got 4".
        text = format_number(value)
        if value.is_integer() and text.lstrip("-").isdigit():
            text += ".0"
    else:
        text = format_number(value)
    return text if len(text) <= 40 else text[:37] + "..."
