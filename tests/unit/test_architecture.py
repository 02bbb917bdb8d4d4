"""The module layers of src/tunecv: imports go one way (DESIGN.md, "Layers of code")."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("tunecv_import_graph", REPO / "assets" / "import_graph.py")
graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(graph)


def test_the_graph_is_read_from_the_code():
    modules = graph.import_graph()
    assert "tunecv.cv" in modules["tunecv.tune"]
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
