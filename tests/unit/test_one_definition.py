"""Each fact of issue #24 has one definition: the fold count (its default, and how many folds a cv runs) and
the device arguments a run gets (file names: tests/unit/test_artifacts.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tunecv import folds
from tunecv.config import NestedConfig, SplitConfig
from tunecv.config.schema import DEFAULT_TOTAL_FOLDS

SRC = Path(__file__).resolve().parents[2] / "src" / "tunecv"

# How many folds: `cv.n_folds or <all of them>`, `total_folds if <it makes folds> else 1`, a literal default.
FOLD_COUNT = re.compile(r"\bn_folds\s+or\b|\btotal_folds\s+if\b|total_folds\s*:\s*int\s*=\s*\d")
FOLD_COUNT_OWNERS = {
    "folds/__init__.py",  # FoldMethod.fold_count and folds_run: the definition
    # a config.yaml of another tunecv version that SplitConfig cannot read: its own numbers, as they were written
    "report/summaries.py",
}


def fold_count_spellings(source: str) -> list[int]:
    return [n for n, line in enumerate(source.splitlines(), 1)
            if FOLD_COUNT.search(line.split("#")[0])]


def test_the_scan_finds_a_fold_count_worked_out_elsewhere():
    planted = ("n = cfg.cv.n_folds or 5\n"
               "k = sp.total_folds if method.makes_folds else 1\n"
               "total_folds: int = 5\n"
               "n = folds_run(sp, cfg.cv.n_folds)  # n_folds or all: folds_run\n")
    assert fold_count_spellings(planted) == [1, 2, 3]


def test_the_fold_count_has_one_definition():
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel not in FOLD_COUNT_OWNERS and (lines := fold_count_spellings(path.read_text())):
            found[rel] = lines
    assert not found, f"ask tunecv.folds.folds_run (or FoldMethod.fold_count) instead: {found}"


def test_folds_run_is_the_first_n_folds_or_every_fold_of_the_split():
    assert SplitConfig().total_folds == NestedConfig().total_folds == DEFAULT_TOTAL_FOLDS
    assert folds.folds_run(SplitConfig(total_folds=4)) == 4
    assert folds.folds_run(SplitConfig(total_folds=4), 2) == 2
    assert folds.folds_run(SplitConfig(fold_method="none", total_folds=4)) == 1


def dict_literals_with(key: str) -> list[str]:
    """``{"devices": ...}`` and ``dict(devices=...)`` in src/tunecv, as ``module:function``."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                literal = isinstance(node, ast.Dict) and any(
                    isinstance(k, ast.Constant) and k.value == key for k in node.keys)
                call = (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict"
                        and any(kw.arg == key for kw in node.keywords))
                if literal or call:
                    found.append(f"{path.relative_to(SRC).as_posix()}:{fn.name}")
    return sorted(set(found))


def test_the_device_arguments_of_a_run_are_written_in_one_place_each():
    # the Trainer device arguments of a run from its config, and the overrides of a job pinned to its devices
    owners = ["executors/_base.py:job_overrides", "placement.py:trainer_device_kwargs"]
    assert dict_literals_with("devices") == owners
    assert dict_literals_with("strategy") == owners
