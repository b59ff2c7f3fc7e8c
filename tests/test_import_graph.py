"""The modules of `backend/` import each other without cycles.

Read with `ast`, nothing imported (fast, torch-free). An edge A -> B is any import of backend module B
written in A: absolute (`backend.x`) or relative, `import` or `from ... import` (a name that is a
submodule counts as that submodule). Three kinds, and every kind counts:

- module level: runs when A is imported; a cycle here can break an import half-way;
- `if TYPE_CHECKING:`: for annotations only, but still a dependency of A's design on B;
- inside a function: a lazy import, often written to break a cycle, which stays a cycle in design.

What is not an edge: the implicit import of a package's `__init__` when one of its submodules is
imported (a package importing its own submodules is the normal layout, not a cycle), and modules
imported by computed name (`importlib.import_module`, as `options/defs/__init__.py` does).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

BACKEND = Path(__file__).resolve().parent.parent / "backend"
KINDS = ("module", "type-checking", "function")


def backend_modules() -> dict[str, Path]:
    """Dotted name -> file, for every module and package under backend/."""
    modules = {}
    for path in sorted(BACKEND.rglob("*.py")):
        parts = list(path.relative_to(BACKEND.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST, kind: str = "module") -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement under `node` with its kind (a function's inner imports are 'function')."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, kind
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _imports(child, "function")
        elif isinstance(child, ast.If) and _is_type_checking(child) and kind == "module":
            for statement in child.body:
                yield from _imports(ast.Module(body=[statement], type_ignores=[]), "type-checking")
            for statement in child.orelse:
                yield from _imports(ast.Module(body=[statement], type_ignores=[]), kind)
        else:
            yield from _imports(child, kind)


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The backend module `name` lies in (`backend.a.b.Thing` -> `backend.a.b`); None outside backend."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(statement: ast.Import | ast.ImportFrom, module: str, modules: dict[str, Path]) -> Iterator[str]:
    if isinstance(statement, ast.Import):
        for alias in statement.names:
            if (target := _owner(alias.name, modules)) is not None:
                yield target
        return
    if statement.level:  # relative: from the module's package, one level up per extra dot
        package = module if modules[module].name == "__init__.py" else module.rpartition(".")[0]
        base = package.split(".")[: len(package.split(".")) - statement.level + 1]
        source = ".".join(base + ([statement.module] if statement.module else []))
    else:
        source = statement.module or ""
    for alias in statement.names:
        submodule = f"{source}.{alias.name}"
        if (target := _owner(submodule if submodule in modules else source, modules)) is not None:
            yield target


def import_graph() -> dict[tuple[str, str], set[str]]:
    """(importer, imported) -> the kinds of import that make the edge."""
    modules = backend_modules()
    edges: dict[tuple[str, str], set[str]] = {}
    for module, path in modules.items():
        for statement, kind in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for target in _targets(statement, module, modules):
                if target != module:
                    edges.setdefault((module, target), set()).add(kind)
    return edges


def cycles(edges: dict[tuple[str, str], set[str]], kinds: set[str]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), over edges of `kinds`."""
    graph: dict[str, list[str]] = {}
    for (source, target), edge_kinds in sorted(edges.items()):
        if edge_kinds & kinds:
            graph.setdefault(source, []).append(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def _describe(component: list[str], edges: dict[tuple[str, str], set[str]]) -> str:
    inner = [f"    {a} -> {b} ({', '.join(k for k in KINDS if k in kinds)})"
             for (a, b), kinds in sorted(edges.items()) if a in component and b in component]
    return "  " + ", ".join(component) + "\n" + "\n".join(inner)


def test_backend_modules_import_without_cycles():
    edges = import_graph()
    found = cycles(edges, set(KINDS))
    module_level = cycles(edges, {"module"})
    assert not found, (
        f"{len(found)} import cycle(s) among backend modules ({len(module_level)} of module-level imports "
        "alone); break each by moving what both sides need into a module of its own, or by handing the "
        "importer a Protocol or a small config instead of the other module's type:\n"
        + "\n".join(_describe(component, edges) for component in found)
    )


def test_the_graph_sees_every_kind_of_import():
    """The reader finds what this test exists to catch: an edge of each kind, relative imports resolved."""
    edges = import_graph()
    assert edges[("backend.training.run_setup", "backend.training.validation")] == {"module"}
    assert edges[("backend.data.loader", "backend.data.dataset")] == {"type-checking"}
    assert edges[("backend.training.loop", "backend.training.sampling")] == {"function"}

    modules = backend_modules()  # backend has no relative imports today; a new one must not hide an edge

    def relative(code: str, module: str) -> list[str]:
        statement = ast.parse(code).body[0]
        assert isinstance(statement, ast.ImportFrom)
        return list(_targets(statement, module, modules))

    assert relative("from .noise import NoiseConfig", "backend.objectives.loss") == ["backend.objectives.noise"]
    assert relative("from .. import messages", "backend.objectives.loss") == ["backend.messages"]
    assert relative("from . import noise", "backend.objectives") == ["backend.objectives.noise"]
    assert relative("from ..data.dataset import Batch", "backend.training.validation") == ["backend.data.dataset"]


def test_cycles_are_found_by_the_kinds_asked_for():
    edges = {("a", "b"): {"function"}, ("b", "a"): {"module"}, ("b", "c"): {"module"}, ("c", "b"): {"type-checking"}}
    assert cycles(edges, set(KINDS)) == [["a", "b", "c"]]
    assert cycles(edges, {"module", "type-checking"}) == [["b", "c"]]
    assert cycles(edges, {"module"}) == []
