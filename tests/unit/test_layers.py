"""The layers of src/tunecv (docs/architecture.md, "Layers"), read from the AST of every module: imports go down
the layers, no private module is imported from outside its package, and an import of tunecv's own modules inside
a function says why (``# lazy: ...`` or ``# cycle: a -> b``)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "tunecv"

# Top to bottom. A module may import a module of its own layer or of a layer below (never one above); cycles
# inside a layer are kept out by tests/unit/test_architecture.py. A module is placed by its room: its name under
# tunecv, else the package it sits in (``tunecv.executors._pool`` -> ``executors``, ``tunecv.tune.plan`` -> ``tune``).
LAYERS: list[tuple[str, set[str]]] = [
    ("entry", {"", "__main__", "cli"}),  # "": the package itself (its public names, loaded lazily)
    ("levels", {"report", "nested", "tune", "cv", "train"}),
    ("level parts", {"_study_rebuild", "_trial_records", "progress", "pruning", "terminator", "_storage_retry",
                     "search_space", "conditional", "scheduler", "_callbacks", "_disk",
                     "_run_folder", "_run_trainer"}),
    ("runs' objects and results", {"build", "task", "datasets", "examples", "fold_data", "_fold_pool",
                                   "_fold_labels", "data", "splits", "scoring", "results"}),
    ("placement", {"placement"}),
    ("config", {"config", "constraints", "user_cli"}),
    ("extensions", {"executors", "folds", "aggregations", "trackers", "tracking", "registry"}),
    ("artifacts", {"artifacts", "naming"}),
    ("leaves", {"errors", "stats", "_io", "_chatter"}),
]

SPLITTING: set[str] = set()  # modules exempt while being split (none now)

WHY = ("# lazy:", "# cycle:")


def module_name(path: Path, src: Path = SRC) -> str:
    parts = path.relative_to(src.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room_name(module: str) -> str:
    """``tunecv.executors._pool`` -> ``executors._pool``; ``tunecv`` -> ``""``."""
    return module.partition(".")[2]


def layer_of(module: str) -> int | None:
    """The index in LAYERS of ``module``'s room (or of the nearest package above it that has one)."""
    room = room_name(module)
    while True:
        for index, (_, rooms) in enumerate(LAYERS):
            if room in rooms:
                return index
        if not room:
            return None
        room = room.rpartition(".")[0]


def splitting(module: str) -> bool:
    room = room_name(module)
    return room in SPLITTING or any(room.startswith(s) for s in SPLITTING if s.endswith("."))


class Import:
    """One import of a tunecv module: where, what, and whether it sits inside a function."""

    def __init__(self, importer: str, target: str, line: int, in_function: bool, why: bool):
        self.importer, self.target, self.line, self.in_function, self.why = importer, target, line, in_function, why

    def __repr__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.target}"


def _targets(node: ast.AST, here: str, is_package: bool, known: set[str]) -> list[str]:
    """The tunecv modules one import statement loads (a name imported from a module counts as that module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = (here if is_package else here.rpartition(".")[0]).split(".")
            anchor = anchor[:len(anchor) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    found = []
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != here and name not in found:
            found.append(name)
    return found


def _file_imports(path: Path, src: Path, known: set[str]) -> list[Import]:
    """Every import of a tunecv module in the file ``path`` (inside functions too)."""
    text = path.read_text()
    lines = text.splitlines()
    here = module_name(path, src)
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            said = " ".join(lines[max(node.lineno - 2, 0):node.end_lineno])  # its lines and the one above
            for target in _targets(node, here, path.name == "__init__.py", known):
                found.append(Import(here, target, node.lineno, in_function, any(w in said for w in WHY)))
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(ast.parse(text, filename=str(path)), False)
    return found


@functools.cache
def _imports(src: Path) -> tuple[Import, ...]:
    files = sorted(src.rglob("*.py"))
    known = {module_name(f, src) for f in files}
    return tuple(imp for path in files for imp in _file_imports(path, src, known))


def imports(src: Path = SRC) -> list[Import]:
    """Every import of a tunecv module in ``src`` (inside functions too), read once per test session."""
    return list(_imports(src))


def private_package(module: str) -> str | None:
    """The package a private module (a ``_x`` part) belongs to, or None: ``tunecv.executors._pool`` ->
    ``tunecv.executors``; ``tunecv._io`` -> ``tunecv``."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def package_of(module: str, src: Path = SRC) -> str:
    path = src.parent.joinpath(*module.split("."))
    return module if path.is_dir() else module.rpartition(".")[0]


def upward(found: list[Import]) -> list[str]:
    bad = []
    for imp in found:
        low, high = layer_of(imp.importer), layer_of(imp.target)
        if low is not None and high is not None and high < low:
            bad.append(f"{imp} ({LAYERS[low][0]} -> {LAYERS[high][0]})")
    return bad


def outside_private(found: list[Import], src: Path = SRC) -> list[str]:
    bad = []
    for imp in found:
        owner = private_package(imp.target)
        package = package_of(imp.importer, src)
        if owner is not None and package != owner and not package.startswith(owner + "."):
            bad.append(f"{imp} (private to {owner})")
    return bad


def unexplained(found: list[Import]) -> list[str]:
    return [str(imp) for imp in found if imp.in_function and not imp.why]


def checked(found: list[Import]) -> list[Import]:
    return [imp for imp in found if not splitting(imp.importer)]


# -- the checks find what they should ------------------------------------------------------------------------


@pytest.fixture
def toy(tmp_path):
    src = tmp_path / "tunecv"
    (src / "executors").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "errors.py": "from tunecv import cli\n",  # upward
        "_io.py": "",
        "cli.py": "from tunecv import errors\n",
        "cv.py": ("from tunecv.executors._pool import Pool\n"  # private, from outside
                  "from tunecv import _io\n"  # private, same package: fine
                  "def f():\n    from tunecv import errors\n"  # no reason given
                  "def g():\n    from tunecv import errors  # lazy: a reason\n"
                  "def h():\n    # cycle: cv -> errors -> cv\n    from .errors import X\n"),
        "executors/__init__.py": "from ._pool import Pool\n",  # inside its package: fine
        "executors/_pool.py": "import tunecv.errors\n",
    }
    for name, text in files.items():
        (src / name).write_text(text)
    return src


def test_an_upward_import_is_found(toy):
    assert upward(imports(toy)) == ["tunecv.errors:1 imports tunecv.cli (leaves -> entry)"]


def test_a_private_module_imported_from_outside_its_package_is_found(toy):
    assert outside_private(imports(toy), toy) == ["tunecv.cv:1 imports tunecv.executors._pool "
                                                  "(private to tunecv.executors)"]


def test_an_import_inside_a_function_without_a_reason_is_found(toy):
    assert unexplained(imports(toy)) == ["tunecv.cv:4 imports tunecv.errors"]


def test_a_room_is_found_through_its_package():
    assert LAYERS[layer_of("tunecv.executors._pool")][0] == "extensions"
    assert LAYERS[layer_of("tunecv.tune.plan")][0] == "levels"
    assert LAYERS[layer_of("tunecv")][0] == "entry"


# -- the code keeps them -------------------------------------------------------------------------------------


def test_every_module_has_a_layer():
    missing = sorted({m for imp in imports() for m in (imp.importer, imp.target) if layer_of(m) is None})
    assert not missing, f"give each module a layer in LAYERS (tests/unit/test_layers.py and the Layers section " \
                        f"of docs/architecture.md): {missing}"


def test_imports_go_down_the_layers():
    bad = upward(checked(imports()))
    assert not bad, f"a module imports one of a layer above it (move the shared part down): {bad}"


def test_no_private_module_is_imported_from_outside_its_package():
    bad = outside_private(checked(imports()))
    assert not bad, f"import these through their package's public names: {bad}"


def test_an_import_inside_a_function_says_why():
    bad = unexplained(checked(imports()))
    assert not bad, ("move these imports to the module's top, or say why on the import line "
                     f"(`# lazy: <heavy dependency>` or `# cycle: <a> -> <b>`): {bad}")


def test_the_architecture_page_lists_the_layers():
    """docs/architecture.md's "Layers" table names each layer in order, with the modules that exist today."""
    page = (SRC.parents[1] / "docs" / "architecture.md").read_text()
    rows = [line for line in page.split("## Layers", 1)[1].split("\n## ", 1)[0].splitlines()
            if line.startswith("| ") and not line.startswith(("| layer", "| ---"))]
    assert [row.split("|")[1].strip() for row in rows] == [name for name, _ in LAYERS]
    existing = {room_name(m) for imp in imports() for m in (imp.importer, imp.target)}
    for row, (name, rooms) in zip(rows, LAYERS):
        listed = set(row.split("|")[2].replace("`", " ").replace(",", " ").split())
        missing = sorted(r for r in rooms if r and r in existing and r not in listed)
        assert not missing, f"the {name} row of the Layers table misses {missing}"
