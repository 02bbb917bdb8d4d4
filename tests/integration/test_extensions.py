"""The extension points are open: a fold method, a scoring aggregation, a tracker and an executor written
outside the package (tests/extensions/, one module each) are added with one registration line each, and a
real cv uses every one of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import tunecv
from tests.conftest import tiny_digits
from tunecv import aggregations, folds, trackers
from tunecv.errors import ConfigError
from tunecv.executors import _registry

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def registries(monkeypatch):
    """Registrations made by a test are undone after it (other tests see the built-ins only)."""
    for registry in (folds.FOLD_METHODS, aggregations.AGGREGATIONS, trackers.TRACKERS):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    monkeypatch.setattr(_registry, "EXECUTORS", dict(_registry.EXECUTORS))


def _register_all() -> None:
    from tests.extensions.every_other import EveryOther
    from tests.extensions.jsonl_tracker import JsonlTracker
    from tests.extensions.ledger_executor import LedgerExecutor
    from tests.extensions.worst_twice import WorstTwice

    tunecv.register_fold_method("every-other", EveryOther)
    tunecv.register_aggregation("worst-twice", WorstTwice)
    tunecv.register_tracker("jsonl", JsonlTracker)
    tunecv.register_executor("ledger", LedgerExecutor)


def _extended(tmp_path: Path, **extra) -> dict:
    cfg = tiny_digits(tmp_path, trainer={"max_epochs": 1, "enable_model_summary": False,
                                         "enable_progress_bar": False})
    cfg["split"] = {"test_split": "none", "fold_method": "every-other", "total_folds": 3}
    cfg["cv"] = {"n_seeds": 1, "scoring_metric": ["val/acc", "val/loss:lower"], "multi_score_strategy": "worst-twice"}
    cfg["logging"] = {"trackers": ["csv", "wandb", "jsonl"]}
    cfg["executor"] = "ledger"
    cfg["ledger"] = {"label": "from-the-section"}
    cfg.pop("early_stopping")
    cfg.update(extra)
    return cfg


def _check_tracker_files(run_dirs: list[Path]) -> None:
    for run_dir in run_dirs:
        events = [json.loads(line) for line in (run_dir / "tracker.jsonl").read_text().splitlines()]
        kinds = [e["event"] for e in events]
        assert kinds[0] == "start" and kinds[-1] == "finish" and events[-1]["exit_code"] == 0
        assert "metrics" in kinds and any("val/acc" in e for e in events)  # its logger got the run's metrics
        assert events[0]["loggers"] == ["CSVLogger", "JsonlLogger"]  # csv first, as logging.trackers orders them
        assert (run_dir / "csv" / "metrics.csv").is_file()  # the built-in tracker still ran


def test_four_extensions_each_one_module_and_one_line_run_a_cv(tmp_path, registries):
    from tests.extensions import every_other

    _register_all()
    every_other.CALLS.clear()
    res = tunecv.cross_validate(_extended(tmp_path), name="ext", progress=False)
    assert res.n_completed == 3

    # the fold method cut the folds: its folds, with the cv's seed
    assert every_other.CALLS and {seed for _, seed in every_other.CALLS} == {42}
    n = every_other.CALLS[0][0]
    from tunecv.config import load_config
    from tunecv.splits import split_folds

    split = load_config(_extended(tmp_path)).split
    made = split_folds(_metadata(n), split, 42)
    assert [v.tolist() for _, v in made] == [list(range(i, n, 3)) for i in range(3)]

    # the aggregation computed the score: twice the worst metric of each run, averaged
    df = res.run_infos
    expected = float(np.mean(2 * np.minimum(df["val/acc"].to_numpy(), 1 / df["val/loss"].to_numpy())))
    assert res.score == pytest.approx(expected)

    # the executor ran every run, with its section's option
    cv_dir = Path(res.cv_dir)
    ledger = (tmp_path / "artifacts" / "ledger.txt").read_text().splitlines()
    assert sorted(ledger) == sorted(f"from-the-section {r.run_name}-{r.run_id}" for r in df.itertuples())
    assert yaml.safe_load((cv_dir / "config.yaml").read_text())["ledger"] == {"file": "ledger.txt",
                                                                              "label": "from-the-section"}

    # the tracker followed every run
    _check_tracker_files([p for p in cv_dir.iterdir() if p.is_dir()])


def _metadata(n: int):
    import pandas as pd

    return pd.DataFrame(index=pd.RangeIndex(n))


def test_an_extension_section_is_typed_and_checked_and_unknown_names_list_the_registered(tmp_path, registries):
    from tunecv.config import load_config

    _register_all()
    with pytest.raises(ConfigError) as err:
        load_config(_extended(tmp_path, ledger={"file": "a/b"}))
    assert str(err.value) == "`ledger.file` must be a file name (no folder); got 'a/b'"
    with pytest.raises(ConfigError) as err:
        load_config(_extended(tmp_path, ledger={"lable": "x"}))
    assert str(err.value).startswith("unknown config key `ledger.lable`; valid keys of `ledger`: file, label")
    for key, value, names in [("split", {"fold_method": "every-othr"}, "region-stratified, every-other"),
                              ("cv", {"multi_score_strategy": "worst"}, "min, worst-twice"),
                              ("logging", {"trackers": ["jsonl", "jsnl"]}, "csv, wandb, jsonl"),
                              ("executor", "legder", "local, slurm, ray, ledger")]:
        with pytest.raises(ConfigError) as err:
            load_config(_extended(tmp_path, **{key: value}))
        message = str(err.value)
        assert "\n" not in message and names in message, message


def test_the_cli_takes_an_extension_by_its_class_path(tmp_path):
    """No registration: a dotted path names the class, in the command's own process."""
    cfg = _extended(tmp_path, executor="local")
    cfg.pop("ledger")
    cfg["split"]["fold_method"] = "tests.extensions.every_other.EveryOther"
    cfg["cv"]["multi_score_strategy"] = "tests.extensions.worst_twice.WorstTwice"
    cfg["logging"]["trackers"] = ["csv", "tests.extensions.jsonl_tracker.JsonlTracker"]
    path = tmp_path / "ext.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    out = subprocess.run([sys.executable, "-m", "tunecv", "cv", "--config", str(path), "--name", "bypath"],
                         capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    cv_dir = tmp_path / "artifacts" / "_cross_validations" / "bypath"
    df = tunecv.load_run_infos(cv_dir)
    assert len(df) == 3 and set(df["status"]) == {"completed"}
    expected = float(np.mean(2 * np.minimum(df["val/acc"].to_numpy(), 1 / df["val/loss"].to_numpy())))
    assert df["score"].iloc[0] == pytest.approx(expected)
    run_dirs = [p for p in cv_dir.iterdir() if p.is_dir()]
    for run_dir in run_dirs:
        fold = yaml.safe_load((run_dir / "config.yaml").read_text())["fold"]
        events = (run_dir / "tracker.jsonl").read_text()
        assert '"event": "finish", "exit_code": 0' in events, (fold, events)
