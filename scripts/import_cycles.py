"""Import cycles between the modules of a package, read from the source (nothing is imported).

How this works: every `import x` / `from x import y` of each module under the package counts as
an edge, including imports under `if TYPE_CHECKING:` and inside functions (a cycle hidden
from the interpreter is still a cycle in the design). `from pkg import name` counts as an
edge to `pkg.name` when that is a module, else to `pkg`. Cycles are the strongly connected
components of more than one module (Tarjan), or a module importing itself.

    python scripts/import_cycles.py            # mediasrv/: prints the cycles, exit 1 if any
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def module_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module name -> the package's modules it imports."""
    files = {_name(path, root, package): path for path in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _targets(node, name, path.name == "__init__.py"):
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target.startswith(package):
                    edges.add(target)
        graph[name] = edges - {name} if path.name == "__init__.py" else edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


PACKAGE = Path(__file__).resolve().parent.parent / "mediasrv"


def package_cycles(root: Path = PACKAGE) -> list[list[str]]:
    return cycles(module_graph(root, root.name))


def _name(path: Path, root: Path, package: str) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        parent = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package
                                                                            else 0)]
        base = ".".join([*parent, base] if base else parent)
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


if __name__ == "__main__":
    found = package_cycles()
    for cycle in found:
        print("cycle:", " <-> ".join(cycle))
    print(f"{len(found)} import cycle(s) in mediasrv/")
    sys.exit(1 if found else 0)
