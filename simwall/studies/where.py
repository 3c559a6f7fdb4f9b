"""A small, safe filter language for result rows (``simwall plot --where``).

``memory.fits == true``, ``plan.tp >= 2 and step_time_s < 10``, ``not plan.zero == 3``,
``plan.schedule != "gpipe"``, ``1 <= plan.pp <= 4``. The expression is parsed with
Python's :mod:`ast` and only these are allowed: comparisons (``== != < <= > >=``,
chained), ``and`` / ``or`` / ``not``, parentheses, column names (dotted, as in the
file's header), numbers (a leading ``-`` too), quoted strings and ``true`` / ``false``.
Nothing is ever evaluated by Python: the tree is walked here.

Values compare as numbers when both sides are numbers (true/false count as 1/0, and
the text "true"/"false" as booleans); as strings when both are strings. A row whose
value cannot be compared (an empty cell, a string against a number) fails ``==`` and
the orderings and passes ``!=``.
"""

from __future__ import annotations

import ast
import difflib
import operator
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ConfigError

__all__ = ["compile_where"]

_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
    ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
_LITERALS = {"true": True, "false": False, "True": True, "False": False}

Row = dict[str, Any]
Getter = Callable[[Row], Any]


def _value(v: Any) -> Any:
    """A row's or literal's value in comparable form: bool, float, str or None."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        low = v.strip().lower()
        if low in ("true", "false"):
            return low == "true"
        try:
            return float(v)
        except ValueError:
            return v
    return str(v)


def _compare(op: type, a: Any, b: Any) -> bool:
    a, b = _value(a), _value(b)
    if isinstance(a, (bool, float)) and isinstance(b, (bool, float)):
        return _COMPARE[op](float(a), float(b))
    if isinstance(a, str) and isinstance(b, str):
        return _COMPARE[op](a, b)
    return op is ast.NotEq  # not comparable: only "differs" holds


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def compile_where(expr: str, columns: Iterable[str], flag: str = "--where"
                  ) -> Callable[[Row], bool]:
    """A predicate on rows for ``expr`` (see the module doc). ``columns``: the names a
    row may have; any other name is a ConfigError (with the nearest column)."""
    cols = list(columns)
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as err:
        raise ConfigError(flag, None, f"cannot parse '{expr}': {err.msg}") from None

    def bad(node: ast.AST, what: str = "") -> ConfigError:
        text = ast.get_source_segment(expr.strip(), node) or type(node).__name__
        return ConfigError(flag, None, f"not allowed in a filter: '{text}'{what} (allowed: "
                           "comparisons, and/or/not, column names, numbers, strings, "
                           "true/false)")

    def operand(node: ast.AST) -> Getter:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
            val = node.value
            return lambda row: val
        if (isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd))
                and isinstance(node.operand, ast.Constant)
                and isinstance(node.operand.value, (int, float))
                and not isinstance(node.operand.value, bool)):
            num = -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
            return lambda row: num
        name = _dotted(node)
        if name is None:
            raise bad(node)
        if name in cols:
            return lambda row: row.get(name)
        if name in _LITERALS:
            lit = _LITERALS[name]
            return lambda row: lit
        near = difflib.get_close_matches(name, cols, n=1, cutoff=0.5)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise ConfigError(flag, None, f"no column '{name}'{hint}")

    def predicate(node: ast.AST) -> Callable[[Row], bool]:
        if isinstance(node, ast.BoolOp):
            parts = [predicate(v) for v in node.values]
            if isinstance(node.op, ast.And):
                return lambda row: all(p(row) for p in parts)
            return lambda row: any(p(row) for p in parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = predicate(node.operand)
            return lambda row: not inner(row)
        if isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _COMPARE:
                    raise bad(node, f" (operator {type(op).__name__})")
            getters = [operand(node.left)] + [operand(c) for c in node.comparators]
            ops = [type(op) for op in node.ops]

            def test(row: Row) -> bool:
                vals = [g(row) for g in getters]
                return all(_compare(op, a, b) for op, a, b in zip(ops, vals, vals[1:]))
            return test
        # a bare boolean column or literal: "memory.fits", "true"
        get = operand(node)
        return lambda row: _compare(ast.Eq, get(row), True)

    return predicate(tree.body)
