"""The import graph of ``src/tunecv``, read from the code with :mod:`ast` (lazy imports inside functions too).

Used by the docs (``assets/mkdocs_hooks.py`` draws it on the architecture page at build time) and by
``tests/unit/test_architecture.py`` (no cycle; every room on the page).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tunecv"
GROUPED = ("executors", "examples", "artifacts", "folds", "aggregations", "trackers", "search_space", "report",
           "tune", "config")  # packages drawn as one room each


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every tunecv module ``path`` imports (a parent package importing its own modules is not counted)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != here and not here.startswith(name + "."):
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """``{module: modules it imports}`` for every module of the package (the package itself left out)."""
    files = sorted(SRC.rglob("*.py"))
    known = {module_name(f) for f in files}
    return {module_name(f): imported_modules(f, known) - {"tunecv"} for f in files if module_name(f) != "tunecv"}


def room(module: str) -> str:
    """The room a module belongs to: ``tunecv.executors._pool`` -> ``executors``, ``tunecv.cv`` -> ``cv``."""
    parts = module.split(".")[1:]
    return parts[0] if parts[0] in GROUPED else ".".join(parts)


def room_graph() -> dict[str, set[str]]:
    """The import graph between rooms (``__main__`` left out: it only calls the CLI)."""
    rooms: dict[str, set[str]] = {}
    for module, imports in import_graph().items():
        src = room(module)
        if src == "__main__":
            continue
        rooms.setdefault(src, set()).update(room(m) for m in imports if room(m) != src)
    return rooms


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def mermaid() -> str:
    """The room graph as a Mermaid flowchart, top (cli) to bottom (leaves), transitive edges left out."""
    graph = room_graph()

    def reaches(a: str, b: str, skip: tuple[str, str]) -> bool:
        todo, seen = [a], set()
        while todo:
            node = todo.pop()
            for nxt in graph.get(node, ()):
                if (node, nxt) == skip or nxt in seen:
                    continue
                if nxt == b:
                    return True
                seen.add(nxt)
                todo.append(nxt)
        return False

    lines = ["flowchart TD"]
    for src in sorted(graph):
        lines.append(f"    {src.replace('.', '_')}[{src}]")
    for src in sorted(graph):
        for dst in sorted(graph[src]):
            if not reaches(src, dst, (src, dst)):
                lines.append(f"    {src.replace('.', '_')} --> {dst.replace('.', '_')}")
    return "\n".join(lines)
