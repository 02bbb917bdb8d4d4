"""No private attribute of another object is set from outside it (issue #24).

A write of ``obj._name`` (assignment, augmented assignment, ``del``, ``setattr`` / ``delattr`` /
``object.__setattr__`` with a literal name, an item stored into ``obj._name[...]``, or a container method that
changes ``obj._name`` in place: ``append``, ``update``, ``pop``, ...) is allowed only where ``obj`` is ``self``
or ``cls``, or where a comment on the same line names the upstream issue that forces it:
``# upstream: owner/repo#N why``. Module globals count too (``other_module._STATE = ...``).

What a static check cannot see is left to review: a write through an alias (``d = obj._d; d[k] = v``) and
``setattr`` with a computed name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "tunecv"
UPSTREAM = re.compile(r"#.*\bupstream: [\w.-]+/[\w.-]+#\d+")
MUTATORS = frozenset({"append", "extend", "insert", "update", "pop", "popitem", "clear", "setdefault", "add",
                      "discard", "remove", "sort", "reverse"})
SETTERS = frozenset({"setattr", "delattr"})


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _own(node: ast.expr) -> bool:
    """``self`` or ``cls``: the object's own class writes its own attributes."""
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def _foreign_private(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and _private(node.attr) and not _own(node.value)


def _written(target: ast.expr) -> list[ast.AST]:
    """The private attributes of other objects that an assignment or ``del`` target writes."""
    out: list[ast.AST] = []
    for sub in ast.walk(target):
        if not isinstance(getattr(sub, "ctx", None), (ast.Store, ast.Del)):
            continue
        if (isinstance(sub, ast.Attribute) and _foreign_private(sub)) or \
                (isinstance(sub, ast.Subscript) and _foreign_private(sub.value)):
            out.append(sub)
    return out


def _called(call: ast.Call) -> bool:
    """``setattr(obj, "_x", ...)``, ``object.__setattr__(obj, "_x", ...)``, ``obj._x.append(...)`` and the like."""
    func = call.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if name in SETTERS or name in ("__setattr__", "__delattr__"):
        if len(call.args) >= 2 and not _own(call.args[0]):
            literal = call.args[1]
            return isinstance(literal, ast.Constant) and isinstance(literal.value, str) and _private(literal.value)
        return False
    return isinstance(func, ast.Attribute) and func.attr in MUTATORS and _foreign_private(func.value)


def private_writes(source: str) -> list[int]:
    """The lines of ``source`` that write a private attribute of an object other than ``self`` / ``cls`` and
    carry no ``# upstream: owner/repo#N`` comment."""
    lines = source.splitlines()
    hits: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        else:
            targets = []
        found = [w for t in targets for w in _written(t)]
        if isinstance(node, ast.Call) and _called(node):
            found.append(node)
        hits.update(w.lineno for w in found if not UPSTREAM.search(lines[w.lineno - 1]))
    return sorted(hits)


def test_no_private_attribute_of_another_object_is_set_in_tunecv():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        offenders += [f"{path.relative_to(SRC.parent)}:{n}: {lines[n - 1].strip()}" for n in private_writes(source)]
    assert not offenders, "private attributes set from outside their object (use public API, or name the " \
                          "upstream issue on the line: `# upstream: owner/repo#N why`):\n" + "\n".join(offenders)


PLANTED = '''\
import other

class Box:
    def __init__(self, inner):
        self._inner = inner
        self._items = []
        self._items.append(1)

    @classmethod
    def make(cls):
        cls._count = 0

    def poke(self, logger, computed):
        logger._name = "x"  # caught
        self._inner._version = 2  # caught
        logger._seen += 1  # caught
        del logger._cache  # caught
        setattr(logger, "_id", 3)  # caught
        object.__setattr__(logger, "_id", 3)  # caught
        logger._init["mode"] = "offline"  # caught
        logger._init.update(mode="offline")  # caught
        a, logger._b = 1, 2  # caught
        other._STATE = None  # caught
        logger._x: int = 1  # caught
        logger._x = 2  # upstream: someone said so (no owner/repo#N: caught)
        logger._x = 1  # upstream: owner/repo#12 no setter
        logger.name = "public"
        logger.__doc__ = "dunder"
        setattr(logger, "name", 1)
        setattr(logger, computed, 1)
        value = logger._name
        logger._init.get("mode")
        return value
'''


def test_the_check_catches_each_kind_of_private_write_planted_in_a_source():
    marked = [n for n, line in enumerate(PLANTED.splitlines(), 1) if "caught" in line]
    assert len(marked) == 12
    assert private_writes(PLANTED) == marked
    # the same write with the upstream comment passes; the object's own writes and reads never count
    assert private_writes("logger._x = 1  # upstream: Lightning-AI/pytorch-lightning#1 no setter\n") == []
    assert private_writes("logger._x = 1\n") == [1]
    assert private_writes("class A:\n    def f(self):\n        self._x = 1\n        self._d[1] = 2\n") == []
    assert private_writes("x = logger._x\n") == []
