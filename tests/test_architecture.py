"""Import structure of ``fisherlab``: no cycles, and the layers import only downwards.

Every module under ``src/fisherlab`` is parsed with :mod:`ast`; every import counts
(module level, inside functions, under ``if TYPE_CHECKING:``). Relative imports are
resolved; ``from pkg import name`` is an edge to ``pkg.name`` when that is a module and to
``pkg`` (its ``__init__``) otherwise, plus, for a name the package exports lazily (a
literal ``_EXPORTS = {name: module}`` table read by its PEP 562 ``__getattr__``), an edge
to that module; importing a package is an edge to the package's ``__init__`` only (not to
its submodules, and ``import a.b`` is not counted as an import of ``a``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
TOP = "fisherlab"

# the lower layers and what they must not import
FORBIDDEN = {
    ("fisherlab.representations", "fisherlab.linalg"): (
        "fisherlab.curvature",
        "fisherlab.quantities",
        "fisherlab.engine",
        "fisherlab.forms",
        "fisherlab.problem",
    ),
    ("fisherlab.optim",): ("fisherlab.engine",),
}


# -- the graph ---------------------------------------------------------------------------------
def _modules(src: Path, top: str) -> dict[str, tuple[Path, bool]]:
    """``{module name: (file, is_package)}`` for every ``.py`` file of package ``top``."""
    out = {}
    for path in sorted((src / top).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module of ``from <level dots><name> import ...`` inside ``module``."""
    if level == 0:
        return name or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _lazy_exports(path: Path) -> dict[str, str]:
    """The literal ``_EXPORTS = {name: module}`` table of a package ``__init__``, if any."""
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if "_EXPORTS" in names and isinstance(node.value, ast.Dict):
            pairs = zip(node.value.keys, node.value.values, strict=True)
            return {k.value: v.value for k, v in pairs}
    return {}


def _imports(
    module: str, path: Path, is_package: bool, known: set[str], lazy: dict[str, dict[str, str]]
) -> set[str]:
    """All modules of ``known`` that ``module`` imports, anywhere in its source."""
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    targets.add(sub)
                else:
                    targets.add(base)
                    targets.add(lazy.get(base, {}).get(alias.name, base))
    # importing ``a.b.c`` runs the packages ``a`` and ``a.b`` first, unless the importer
    # is inside them (then they are being imported already)
    for target in list(targets):
        parts = target.split(".")
        for depth in range(1, len(parts)):
            parent = ".".join(parts[:depth])
            if not (module == parent or module.startswith(parent + ".")):
                targets.add(parent)
    return {t for t in targets if t in known and t != module}


def import_graph(src: Path, top: str) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}``."""
    modules = _modules(src, top)
    known = set(modules)
    lazy = {m: _lazy_exports(path) for m, (path, pkg) in modules.items() if pkg}
    return {m: _imports(m, path, pkg, known, lazy) for m, (path, pkg) in modules.items()}


def components(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while not component or w != v:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found, key=min)


def _shortest_cycle(graph: dict[str, set[str]], component: set[str], start: str) -> list[str]:
    """A shortest cycle ``[start, ..., start]`` inside ``component`` (breadth-first)."""
    parents, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            if start in graph[v]:
                path = [v]
                while parents[path[-1]] is not None:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            for w in sorted(graph[v] & component):
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    raise ValueError(f"{start} is on no cycle of {sorted(component)}")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle through the first module of every strongly connected component."""
    return [_shortest_cycle(graph, c, min(c)) for c in components(graph)]


def _violations(graph: dict[str, set[str]]) -> list[str]:
    def inside(module: str, prefix: str) -> bool:
        return module == prefix or module.startswith(prefix + ".")

    out = []
    for layers, forbidden in FORBIDDEN.items():
        for module, targets in sorted(graph.items()):
            if not any(inside(module, layer) for layer in layers):
                continue
            for target in sorted(targets):
                if any(inside(target, f) for f in forbidden):
                    out.append(f"{module} imports {target}")
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(SRC, TOP)


# -- the checker on a synthetic package ---------------------------------------------------------
PACKAGE = {
    "pkg/__init__.py": "from pkg.a import f\n_EXPORTS = {'G': 'pkg.sub.d'}\n",
    "pkg/a.py": "def f():\n    from . import b\n    return b\n",
    "pkg/b.py": (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub import c\n"
    ),
    "pkg/sub/__init__.py": "",
    "pkg/sub/c.py": "from .. import a\nfrom ..sub import d\nimport os\n",
    "pkg/sub/d.py": "from pkg import sub\nfrom pkg.sub import CONSTANT\n",
    "pkg/e.py": "from pkg import G\n",
}


def test_graph_and_cycles_of_a_synthetic_package(tmp_path):
    for name, text in PACKAGE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    g = import_graph(tmp_path, "pkg")
    assert g == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.b"},  # function-local, relative
        "pkg.b": {"pkg.sub", "pkg.sub.c"},  # under TYPE_CHECKING; the package runs first
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg.a", "pkg.sub.d"},  # two levels up; `import os` is outside
        "pkg.sub.d": {"pkg.sub"},  # a package (its __init__), and a name from it
        "pkg.e": {"pkg", "pkg.sub", "pkg.sub.d"},  # a lazily exported name: its module
    }
    assert cycles(g) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]]
    assert cycles({"x": {"y"}, "y": set()}) == []


def test_a_cycle_through_a_package_init_is_found(tmp_path):
    # low.py imports eng.functional; importing it runs eng/__init__, which imports eng.hooks,
    # which imports low: a circular import at run time although eng.functional imports nothing
    files = {
        "p/__init__.py": "",
        "p/low.py": "from p.eng.functional import F\n",
        "p/eng/__init__.py": "from p.eng import hooks\n",
        "p/eng/functional.py": "F = 1\n",
        "p/eng/hooks.py": "from p.low import F\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cycles(import_graph(tmp_path, "p")) == [["p.eng", "p.eng.hooks", "p.low", "p.eng"]]
    assert _violations({"fisherlab.optim.sgd": {"fisherlab.engine.hooks"}}) == [
        "fisherlab.optim.sgd imports fisherlab.engine.hooks"
    ]


# -- fisherlab itself ----------------------------------------------------------------------------
def test_every_module_is_in_the_graph(graph):
    assert {"fisherlab", "fisherlab.linalg", "fisherlab.representations.operator"} <= set(graph)
    assert "fisherlab.representations.operator" in graph["fisherlab.linalg"]


def test_no_import_cycles(graph):
    found = [
        f"{' -> '.join(cycle)}  (component: {', '.join(sorted(component))})"
        for cycle, component in zip(cycles(graph), components(graph), strict=True)
    ]
    assert not found, "import cycles:\n" + "\n".join(found)


def test_lower_layers_do_not_import_upper_ones(graph):
    assert _violations(graph) == []
