"""The package's import graph, every import counted (module level, inside functions, under
``TYPE_CHECKING``): its cycles, and private names imported across modules.

    python scripts/import_graph.py          # prints both; exit 1 if there is either

The test suite runs the same check (``tests/test_structure.py``), so a new cycle fails CI.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "fewshot_nlp"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(modules: set[str]) -> dict[str, set[tuple[str, str | None]]]:
    """``module -> {(imported module, name or None)}`` inside the package."""
    found: dict[str, set[tuple[str, str | None]]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        module = module_name(path)
        is_package = path.name == "__init__.py"
        edges = found.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(PACKAGE):
                        edges.add((alias.name, None))
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(module, is_package, node)
                if not target.startswith(PACKAGE):
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in modules:  # "from . import interrupts": the module itself
                        edges.add((sub, None))
                    else:
                        edges.add((target, alias.name))
    return found


def module_graph() -> dict[str, set[str]]:
    """Edges between modules; importing ``a.b`` runs ``a/__init__`` too, but a package's
    ``__init__`` that re-exports lazily adds nothing, so only the named module counts."""
    modules = {module_name(p) for p in ROOT.rglob("*.py")}
    graph = {}
    for module, edges in imports(modules).items():
        graph[module] = {target for target, _ in edges if target in modules and target != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def private_imports() -> list[str]:
    """``from x import _name`` across modules (a module's private name is its own)."""
    modules = {module_name(p) for p in ROOT.rglob("*.py")}
    return sorted(
        f"{module} imports {target}.{name}"
        for module, edges in imports(modules).items()
        for target, name in edges
        if name and name.startswith("_") and not name.startswith("__")
    )


def main() -> int:
    found, private = cycles(module_graph()), private_imports()
    for component in found:
        print("cycle: " + " <-> ".join(component))
    for line in private:
        print("private: " + line)
    if not found and not private:
        print("no import cycles, no private names imported across modules")
    return 1 if found or private else 0


if __name__ == "__main__":
    sys.exit(main())
