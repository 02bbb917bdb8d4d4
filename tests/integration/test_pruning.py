"""In-run pruning (tunecv.pruning) and the convergence stop (tunecv.terminator) on real tunes of a tiny model.

Trial 0 learns (lr 0.05), trial 1 cannot (lr 1e-6): successive halving compares trial 1's run with the same
fold and seed of trial 0 at the first rung (epoch 1) and stops it there.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import REPO, tiny_digits
from tunecv.cli import main
from tunecv.pruning import EPOCH_SCORES_ATTR, EPOCH_SCORES_FILE, read_epoch_scores
from tunecv.results import load_run_infos
from tunecv.tune import tune

GOOD_THEN_BAD = {"hyperparameters": {"model.init_args.lr": [0.05, 1e-6]}}


def pruning_cfg(tmp_path: Path, space: dict = GOOD_THEN_BAD, **extra) -> dict:
    space_path = tmp_path / "space.yaml"
    space_path.write_text(yaml.safe_dump(space))
    cfg = tiny_digits(tmp_path, **extra)
    cfg["split"]["total_folds"] = 2
    cfg["trainer"]["max_epochs"] = 4
    cfg["early_stopping"] = None
    cfg["tune"] = {"search_space": str(space_path), "n_trials": "grid", "pruner": "successive_halving",
                   "rung_min_epochs": 1, "rung_reduction_factor": 3}
    return cfg


def assert_pruned_inside(tdir: Path, study: optuna.Study) -> None:
    df = load_run_infos(tdir)
    good, bad = df[df["trial"] == 0], df[df["trial"] == 1]
    assert set(good["status"]) == {"completed"} and good["pruned_at_epoch"].isna().all()
    inside = bad[bad["pruned_at_epoch"].notna()]
    assert len(inside) >= 1 and set(inside["status"]) == {"pruned"}
    assert set(inside["pruned_at_epoch"]) == {1}  # stopped at the first rung, not trained to epoch 4
    run = inside.iloc[0]
    run_dir = tdir / run["cv_name"] / f"{run['run_name']}-{run['run_id']}"
    curve, pruned_at = read_epoch_scores(run_dir)
    assert sorted(curve) == [1] and pruned_at == 1
    assert list(run_dir.rglob("*.ckpt")), "a pruned run keeps its checkpoint"
    trials = study.get_trials(deepcopy=False)
    assert trials[0].state.name == "COMPLETE" and trials[1].state.name == "PRUNED"
    assert sorted(trials[0].user_attrs[EPOCH_SCORES_ATTR]["f0s42"]["curve"]) == ["1", "2", "3", "4"]
    assert trials[1].user_attrs[EPOCH_SCORES_ATTR]["f0s42"]["pruned_at_epoch"] == 1


@pytest.mark.parametrize("strategy", ["serial", "cv-parallel"])
def test_a_hopeless_run_is_pruned_inside_at_the_first_rung(tmp_path, strategy):
    extra = {"strategy": "cv-parallel", "devices": [0, 1]} if strategy == "cv-parallel" else {}
    res = tune(pruning_cfg(tmp_path, **extra), name="p", progress=False)
    assert_pruned_inside(tmp_path / "artifacts" / "p", res.study)
    assert res.best_trial == 0


def test_tune_parallel_prunes_against_finished_trials(tmp_path):
    # three trials on two slots: the third (hopeless) starts once the first has finished its runs
    space = {"hyperparameters": {"model.init_args.lr": [0.05, 0.051, 1e-6]}}
    cfg = pruning_cfg(tmp_path, space=space, strategy="tune-parallel", devices=[0, 1])
    cfg["cv"]["n_seeds"] = 1
    res = tune(cfg, name="tp", progress=False)
    df = load_run_infos(tmp_path / "artifacts" / "tp")
    hopeless = df[(df["trial"] == 2) & df["pruned_at_epoch"].notna()]
    assert len(hopeless) >= 1 and set(hopeless["status"]) == {"pruned"}
    assert res.study.trials[2].state.name == "PRUNED"


def test_dry_run_shows_the_rungs(tmp_path, capsys):
    cfg = pruning_cfg(tmp_path)
    cfg["trainer"]["max_epochs"] = 27
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["tune", "--config", str(path), "--name", "d", "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "pruning inside runs: successive_halving, rungs at epochs 1, 3, 9 of 27" in out
    assert "between runs: none" in out


@pytest.mark.parametrize("key, value, said", [
    ("rung_reduction_factor", 1, "`tune.rung_reduction_factor` must be an integer >= 2; got 1"),
    ("rung_min_epochs", 0, "`tune.rung_min_epochs` must be an integer >= 1; got 0"),
    ("stop_min_trials", 1, "`tune.stop_min_trials` must be an integer >= 2; got 1"),
])
def test_bad_pruning_keys_are_one_line_errors(tmp_path, capsys, key, value, said):
    cfg = pruning_cfg(tmp_path)
    cfg["tune"][key] = value
    cfg["tune"]["stop_when"] = "converged"
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["tune", "--config", str(path), "--name", "bad", "--dry_run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(said) and len(err) == 1


def test_bad_run_pruner_is_a_one_line_error(tmp_path, capsys):
    cfg = pruning_cfg(tmp_path)
    cfg["tune"]["run_pruner"] = "asha"
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["tune", "--config", str(path), "--name", "bad", "--dry_run"]) == 2
    err = capsys.readouterr().err
    assert "tune.run_pruner" in err and "asha" in err
