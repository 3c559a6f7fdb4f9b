"""The package's shape: imports point one way, down the data flow.

errors/memo/registry < config < hardware < plan < model, net < costing < report < engine
< api < studies < cli < the ``simwall`` package itself. A module may import its own
layer or a lower one; ``model`` and ``net`` are side by side and do not import each
other. No module imports another's ``_private`` names, modules form no import cycle,
and only the engine imports SimPy (cost, memory and network models stay pure functions
that the plan search and the engine share).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "simwall"

LAYERS: dict[str, int] = {
    "errors": 0, "memo": 0, "registry": 0,
    "config": 1,
    "hardware": 2,
    "plan": 3,
    "model": 4, "net": 4,
    "costing": 5,
    "report": 6,
    "engine": 7,
    "api": 8,
    "studies": 9,
    "cli": 10,
    "__init__": 11, "__main__": 11,
}
#: Packages of data files only (YAML shipped with simwall).
DATA = {"catalog", "cases", "topologies", "workloads"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(("simwall",) + parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _type_only_lines(tree: ast.Module) -> set[int]:
    """Lines of the imports under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            lines |= {n.lineno for stmt in node.body for n in ast.walk(stmt)
                      if isinstance(n, (ast.Import, ast.ImportFrom))}
    return lines


def _imports(name: str, run_time_only: bool = False) -> list[tuple[str, tuple[str, ...], int]]:
    """(imported simwall module, names taken from it, line) for every import statement
    of module ``name``, at any depth (imports inside functions count too);
    ``run_time_only`` leaves out those under ``if TYPE_CHECKING:``."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if _is_package(name) else name.rpartition(".")[0]
    skip = _type_only_lines(tree) if run_time_only else set()
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, (), node.lineno) for a in node.names
                      if a.name.split(".")[0] == "simwall"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "simwall":
                continue
            names = tuple(a.name for a in node.names)
            # ``from pkg import module`` imports the submodule.
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            if subs:
                found += [(s, (), node.lineno) for s in subs]
                rest = tuple(n for n in names if f"{target}.{n}" not in MODULES)
                if rest:
                    found.append((target, rest, node.lineno))
            else:
                found.append((target, names, node.lineno))
    return found


def _layer(module: str) -> tuple[str, int | None]:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top in DATA:
        return top, None
    return top, LAYERS.get(top)


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if _layer(m)[0] not in DATA and _layer(m)[1] is None)
    assert not missing, f"modules outside the layer map: {missing}"


def test_imports_point_down():
    back = []
    for module in MODULES:
        top, rank = _layer(module)
        if rank is None:
            continue
        for target, names, line in _imports(module):
            ttop, trank = _layer(target)
            if trank is None:
                continue
            if target == "simwall" and names == ("__version__",):
                continue                   # the version string, from the package root
            if trank > rank or (trank == rank and ttop != top):
                back.append(f"{module}:{line} imports {target} ({top} -> {ttop})")
    assert not back, "imports against the data flow:\n" + "\n".join(back)


def test_no_private_names_across_modules():
    bad = []
    for module in MODULES:
        for target, names, line in _imports(module):
            if target == module:
                continue
            for n in names:
                if n.startswith("_") and not n.startswith("__"):
                    bad.append(f"{module}:{line} imports {target}.{n}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    """Between modules, counting imports inside functions too (a lazy import hides a
    cycle from Python, not from a reader), but not those made for annotations only (under
    ``if TYPE_CHECKING:``). A package's ``__init__`` re-exporting its own modules is not
    a cycle."""
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        graph[module] = {t for t, _, _ in _imports(module, run_time_only=True)
                         if t in MODULES and t != module
                         and not (_is_package(t) and module.startswith(t + "."))
                         and not (_is_package(module) and t.startswith(module + "."))}
    # Tarjan-free check: a cycle exists iff some module reaches itself.
    cycles = []
    for start in graph:
        seen, stack = set(), list(graph[start])
        while stack:
            m = stack.pop()
            if m == start:
                cycles.append(start)
                break
            if m not in seen:
                seen.add(m)
                stack.extend(graph.get(m, ()))
    assert not cycles, f"modules on an import cycle: {sorted(cycles)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m)[0] != "engine"))
def test_only_the_engine_imports_simpy(module):
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    assert "simpy" not in names


def test_every_package_is_installed():
    """pyproject.toml lists every package of simwall (an unlisted one is missing from an
    installed wheel)."""
    tomllib = pytest.importorskip("tomllib")            # Python 3.11+
    listed = set(tomllib.loads((PKG.parent / "pyproject.toml").read_text(encoding="utf-8"))
                 ["tool"]["setuptools"]["packages"])
    found = {".".join(("simwall",) + p.parent.relative_to(PKG).parts).rstrip(".")
             for p in PKG.rglob("__init__.py")}
    assert found - listed == set()
