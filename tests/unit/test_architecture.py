"""The module layers of src/tunecv: imports go one way (DESIGN.md, "Layers of code"); functions stay short."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("tunecv_import_graph", REPO / "assets" / "import_graph.py")
graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(graph)


def test_the_graph_is_read_from_the_code():
    modules = graph.import_graph()
    assert "tunecv.cv" in modules["tunecv.tune.driver"]
    assert "tunecv.results" in modules["tunecv.scoring"]
    assert graph.room("tunecv.executors._pool") == "executors"


def test_find_cycle_finds_one():
    assert graph.find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert graph.find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_modules_of_tunecv_import_each_other_without_a_cycle():
    cycle = graph.find_cycle(graph.import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_architecture_page_names_every_room():
    page = (REPO / "docs" / "architecture.md").read_text()
    missing = [r for r in graph.room_graph() if f"| `{r}` |" not in page]
    assert not missing, f"add a row for each new module to the rooms table of docs/architecture.md: {missing}"


def test_the_diagram_is_a_mermaid_flowchart_of_the_rooms():
    text = graph.mermaid()
    assert text.startswith("flowchart TD")
    assert "tune --> cv" in text



MAX_FUNCTION_LINES = 60


def long_functions(src: Path = graph.SRC) -> list[tuple[str, str, int, int]]:
    """``(file, name, line, length)`` of each function over MAX_FUNCTION_LINES lines (its docstring not
    counted) without a ``# long: why`` comment right above it (above its decorators, if any)."""
    found = []
    for path in sorted(src.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            length = node.end_lineno - node.lineno + 1
            doc = node.body[0]
            if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
                length -= doc.end_lineno - doc.lineno + 1
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            above = lines[first - 2].strip() if first >= 2 else ""
            if length > MAX_FUNCTION_LINES and not above.startswith("# long:"):
                found.append((path.relative_to(src).as_posix(), node.name, node.lineno, length))
    return found


def test_long_functions_are_found_and_a_long_comment_excuses_one(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))  # with the def: the limit
    (tmp_path / "a.py").write_text(f'def short():\n    """Doc."""\n{body}')
    (tmp_path / "b.py").write_text(f"def too_long():\n    x = 0\n{body}")
    (tmp_path / "c.py").write_text(f"# long: one table, read top to bottom\n@staticmethod\ndef excused():\n"
                                   f"    x = 0\n{body}")
    assert long_functions(tmp_path) == [("b.py", "too_long", 1, MAX_FUNCTION_LINES + 1)]


def test_no_function_is_over_60_lines_without_saying_why():
    found = [f"{f}:{line} {name} ({n} lines)" for f, name, line, n in long_functions()]
    assert not found, f"split these into named steps, or say why in a `# long: ...` comment right above each: {found}"


def _compares_a_type_by_name(source: str) -> list[int]:
    """Lines of ``source`` that compare a ``__name__`` with a string (other than ``"__main__"``)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        names = [s for s in sides if isinstance(s, ast.Attribute) and s.attr in ("__name__", "__qualname__")]
        texts = [s.value for s in sides if isinstance(s, ast.Constant) and isinstance(s.value, str)]
        if names and any(t != "__main__" for t in texts):
            lines.append(node.lineno)
    return lines


def test_a_comparison_of_a_type_by_name_is_found():
    assert _compares_a_type_by_name('if type(e).__name__ == "WorkerDiedError":\n    pass\n') == [1]
    assert _compares_a_type_by_name('if __name__ == "__main__":\n    pass\n') == []


def test_no_type_or_exception_is_recognised_by_its_name():
    """Types and exceptions are told apart with ``isinstance``, not by comparing their names."""
    found = {str(path.relative_to(graph.SRC.parent)): lines for path in sorted(graph.SRC.rglob("*.py"))
             if (lines := _compares_a_type_by_name(path.read_text()))}
    assert found == {}
