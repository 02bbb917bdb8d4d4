"""The cv's plan and bookkeeping, without training."""

from __future__ import annotations

import warnings

import pytest

from tunecv.config import load_config
from tunecv.cv import CrossValidation, plan_rows, plan_seeds
from tunecv.placement import lightning_devices, resolve
from tunecv.train import TrainResult


def cfg(**kw):
    base = {"split": {"fold_method": "kfold", "total_folds": 3}, "cv": {"n_seeds": 2, "scoring_metric": ["val/acc"]}}
    base.update(kw)
    return load_config(base)


def test_seeds_start_with_42_21_69_then_are_deterministic():
    assert plan_seeds(1) == [42]
    assert plan_seeds(3) == [42, 21, 69]
    assert plan_seeds(5) == plan_seeds(5) == [42, 21, 69, 1000, 1001]
    assert len(set(plan_seeds(50))) == 50


def test_plan_names_folds_and_seeds(tmp_path):
    cv = CrossValidation(cfg(), "mycv", tmp_path / "mycv")
    names = [r.name for r in cv.runs]
    assert names == [f"mycv-run-f{f}s{s}" for s in (42, 21) for f in range(3)]
    assert [r.index for r in cv.runs] == list(range(6))
    assert all(r.run_dir.parent == tmp_path / "mycv" for r in cv.runs)
    assert len({r.run_dir.name.rsplit("-", 1)[1] for r in cv.runs}) == 6  # fresh 8-char ids


def test_n_folds_limits_the_folds(tmp_path):
    cv = CrossValidation(cfg(cv={"n_folds": 2, "n_seeds": 1}), "c", tmp_path)
    assert [(r.fold, r.seed) for r in cv.runs] == [(0, 42), (1, 42)]


def test_fold_method_none_plans_one_fold(tmp_path):
    cv = CrossValidation(cfg(split={"fold_method": "none"}, cv={"n_seeds": 3}), "c", tmp_path)
    assert [(r.fold, r.seed) for r in cv.runs] == [(0, 42), (0, 21), (0, 69)]


@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_ddp_under_cv_becomes_ddp_fork_with_a_warning(tmp_path, strategy):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cv = CrossValidation(cfg(strategy=strategy), "c", tmp_path)
    assert cv.cfg.device_setting("strategy") == "ddp_fork"
    assert any("ddp_fork" in str(w.message) for w in caught)


def test_ddp_under_trainer_section_also_becomes_ddp_fork(tmp_path):
    cv = CrossValidation(cfg(trainer={"strategy": "ddp"}), "c", tmp_path)
    assert cv.cfg.device_setting("strategy") == "ddp_fork"


def test_plan_rows_spread_runs_over_device_slots(tmp_path):
    c = cfg(strategy="cv-parallel", devices=[0, 2, 5, 6])
    cv = CrossValidation(c, "c", tmp_path)
    rows = plan_rows(cv, resolve(c))
    assert [r["device"] for r in rows] == [0, 2, 5, 6, 0, 2]


def test_record_failed_and_completed_runs_and_score(tmp_path):
    cv = CrossValidation(cfg(cv={"n_seeds": 1, "scoring_metric": ["val/acc"]}), "c", tmp_path / "c")
    runs = [cv.next_run() for _ in range(3)]
    assert cv.next_run() is None and cv.in_flight == 3
    ok = TrainResult(name=runs[0].name, run_id=runs[0].run_dir.name[-8:], run_dir=runs[0].run_dir,
                     metrics={"val/acc": 0.5}, fold=0, seed=42)
    cv.record(runs[0], ok)
    cv.record(runs[1], error=RuntimeError("out of memory"))
    cv.record(runs[2], TrainResult(name=runs[2].name, run_id=runs[2].run_dir.name[-8:], run_dir=runs[2].run_dir,
                                   metrics={"val/acc": 0.7}, fold=2, seed=42))
    df = cv.frame()
    assert df["status"].tolist() == ["completed", "failed", "completed"]
    assert df["error"].iloc[1] == "RuntimeError: out of memory"
    assert df["score"].iloc[0] == pytest.approx(0.6)
    assert cv.failure_summary() == "1x RuntimeError: out of memory"
    assert (tmp_path / "c" / "run_infos.parquet").is_file()


def test_prune_stops_launching(tmp_path):
    cv = CrossValidation(cfg(), "c", tmp_path)
    first = cv.next_run()
    cv.stop("pruned")
    assert cv.next_run() is None and not cv.done
    cv.record(first, error=RuntimeError("x"))
    assert cv.done


@pytest.mark.parametrize(("devices", "accelerator", "expected"), [
    (["auto"], "auto", "auto"), ([0], "cpu", 1), ([0, 1], "cpu", 2), ([0, 2, 5, 6], "gpu", [0, 2, 5, 6]),
    ([-1], "gpu", -1), (4, "gpu", 4), ("auto", "cpu", "auto"),
])
def test_lightning_devices(devices, accelerator, expected):
    assert lightning_devices(devices, accelerator) == expected
