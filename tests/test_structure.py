"""The layering the design fixes: no import cycles among the project's modules, and forecaster/
never imports api/, jobs/ or cli/ (they depend on it, never the reverse)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("forecaster", "api", "jobs", "cli")


def import_graph() -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):  # lazy imports inside functions too
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_forecaster_depends_on_no_outer_package() -> None:
    graph = import_graph()
    outward = {
        (m, t)
        for m, targets in graph.items()
        if m.split(".")[0] == "forecaster"
        for t in targets
        if t.split(".")[0] != "forecaster"
    }
    assert outward == set()


def test_api_views_contain_no_sql() -> None:
    """Storage owns the queries (forecaster.storage): the API builds no statement of its own."""
    builders = {"select", "text", "func", "insert", "update", "delete", "and_", "or_", "aliased"}
    offenders = []
    for path in (ROOT / "api").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                used = {a.name for a in node.names} & builders
                if used:
                    offenders.append(f"{path.relative_to(ROOT)}: {sorted(used)}")
            if isinstance(node, ast.Attribute) and node.attr in ("execute", "scalars", "scalar"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}(")
    assert offenders == []


def test_modules_do_one_job() -> None:
    """No source file of the application over 400 lines (tests and benchmarks aside): past it, a
    module holds several jobs and is split by what each part is about."""
    long = {
        str(path.relative_to(ROOT)): n
        for package in (*PACKAGES, "migrations", "scripts")
        for path in (ROOT / package).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 400
    }
    assert not long, long
