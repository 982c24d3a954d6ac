"""The sandbox's imports: no cycle inside it (function-local and TYPE_CHECKING imports count), and
nothing of the package outside ``stripe_identity_mcp.sandbox`` (it must run without the server)."""

from __future__ import annotations

import ast
from pathlib import Path

import stripe_identity_mcp.sandbox as sandbox_pkg

SANDBOX_DIR = Path(sandbox_pkg.__file__).parent
PACKAGE = "stripe_identity_mcp"


def _module_name(root: Path, prefix: str, path: Path) -> str:
    parts = [prefix, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, prefix: str) -> dict[str, set[str]]:
    """Module → the modules of the same tree it imports (every import statement, wherever it stands).

    ``from .x import y`` counts as importing ``x`` and, when it exists, ``x.y``; ``from . import y``
    counts the package itself too (its ``__init__`` runs first).
    """
    files = {_module_name(root, prefix, p): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            graph[mod] |= {n for n in names if n in files and n != mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_inside_the_sandbox() -> None:
    graph = import_graph(SANDBOX_DIR, f"{PACKAGE}.sandbox")
    assert len(graph) > 20  # the whole tree was read (api/ and scim/ included)
    assert cycles(graph) == []


def test_the_sandbox_imports_nothing_of_the_package_outside_it() -> None:
    outside = []
    for path in SANDBOX_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                depth = len(path.relative_to(SANDBOX_DIR).parts)  # 1: sandbox/x.py, 2: sandbox/scim/x.py
                names = [node.module or ""] if node.level == 0 else ([PACKAGE] if node.level > depth else [])
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            outside += [
                f"{path.relative_to(SANDBOX_DIR)}:{node.lineno}"
                for n in names
                if (n == PACKAGE or n.startswith(PACKAGE + ".")) and not n.startswith(f"{PACKAGE}.sandbox")
            ]
    assert outside == []


def test_the_cycle_check_finds_a_function_local_cycle(tmp_path: Path) -> None:
    # The check itself can fail: a pair like the old scim.py <-> scim_groups.py (one side importing lazily).
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import B\n")
    (pkg / "b.py").write_text("class B:\n    def f(self):\n        from .a import x\n")
    (pkg / "c.py").write_text("from . import a\n")
    assert cycles(import_graph(pkg, "pkg")) == [["pkg.a", "pkg.b"]]
