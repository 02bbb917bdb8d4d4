"""A finished tune as a plain Optuna user sees it, paired statistics on a real tune, budgets, warm start."""

from __future__ import annotations

import json
import math
import statistics

import optuna
import pytest
import yaml

from tests.conftest import ext_cfg
from tunecv.cli import main
from tunecv.report import report
from tunecv.results import read_run_infos
from tunecv.tune import tune

LR = "model.init_args.lr"
HIDDEN = "model.init_args.hidden"
# lr = 1 - x with x log-uniform: the sampler draws x, Optuna records the used 1 - x
SPACE = {"hyperparameters": {LR: {"distribution": "reversed-loguniform", "low": 1e-5, "high": 0.5},
                             HIDDEN: [4, 8]}}
GOOD = {LR: 0.3, HIDDEN: 8}
BAD = {LR: 1e-5, HIDDEN: 4}  # learns nothing in 2 epochs: chance accuracy on every fold


def cfg_of(tmp_path, folds=3, seeds=2, **tune_keys) -> dict:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    cfg = ext_cfg(tmp_path, split={"fold_method": "kfold", "total_folds": folds})
    cfg["cv"]["n_seeds"] = seeds
    cfg["tune"] = {"search_space": str(space), "sampler": "random", "seed": 0, **tune_keys}
    return cfg


def load(tmp_path, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'artifacts' / name / 'optuna.db'}")


def test_plain_optuna_sees_the_tune_and_paired_statistics_tell_copies_apart(tmp_path, external_pkg, capsys):
    # warm start: the best values, a copy of them, and a clearly worse trial; then one sampled trial
    cfg = cfg_of(tmp_path, n_trials=4, warm_start=[GOOD, dict(GOOD), BAD])
    res = tune(cfg, name="t", progress=False)
    study = load(tmp_path, "t")
    trials = study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4
    df = read_run_infos(tmp_path / "artifacts" / "t" / "run_infos.parquet")
    for t in trials:
        rows = df[df["trial"] == t.number]
        # one intermediate value per run: the cv score so far; the last one is the trial's value
        assert sorted(t.intermediate_values) == list(range(6))
        assert t.intermediate_values[5] == pytest.approx(t.value) == pytest.approx(rows["score"].iloc[0])
        run_scores = t.user_attrs["run_scores"]
        assert len(run_scores) == 6 and t.user_attrs["n_runs"] == 6
        assert t.intermediate_values[0] == pytest.approx(run_scores["0"])
        assert t.value == pytest.approx(statistics.mean(run_scores.values()))
        # the values the model used: config_values, run_infos and params alike (issue 29, finding 7)
        used = t.user_attrs["config_values"]
        assert used[LR] == t.params[LR] == pytest.approx(rows[LR].iloc[0])
        assert used[HIDDEN] == t.params[HIDDEN]
        assert t.user_attrs["score"] == pytest.approx(t.value) and t.user_attrs["cv_name"] == f"t-cv{t.number}"
    for t, values in zip(trials[:3], [GOOD, GOOD, BAD], strict=True):
        assert t.user_attrs["config_values"] == pytest.approx(values)
    assert trials[0].user_attrs["warm_start"] == "tune.warm_start[0]"
    best = study.user_attrs["tunecv:best_trial"]
    assert best["number"] == res.best_trial == study.best_trial.number
    assert "same as study.best_trial" in best["reason"]
    assert best["runner_up"]["number"] in (0, 1) and best["runner_up"]["p_value"] == 1.0  # the copy
    assert best["runner_up"]["distinguishable"] is False
    assert res.best_params[LR] == pytest.approx(trials[res.best_trial].user_attrs["config_values"][LR])

    summary = report(tmp_path / "artifacts" / "t", fmt="json")
    assert json.loads(capsys.readouterr().out)["statistics"]["best"] == summary["statistics"]["best"]
    board = {e["trial"]: e for e in summary["leaderboard"]}
    assert summary["best"]["trial"] in (0, 1)  # the two copies score the same, the first wins ties
    copy = board[1 - summary["best"]["trial"]]
    assert copy["vs_best"]["n_pairs"] == 6 and copy["vs_best"]["p_value"] == 1.0
    assert copy["indistinguishable_from_best"] is True
    worse = board[2]
    assert worse["vs_best"]["p_value"] == pytest.approx(2 / 64)  # 6 pairs, all worse: exact Wilcoxon
    assert worse["indistinguishable_from_best"] is False and worse["vs_best"]["difference"]["high"] < 0
    interval = board[2]["score_interval"]
    assert interval["n"] == 6 and interval["low"] <= board[2]["score"] <= interval["high"]
    assert summary["statistics"]["runner_up"]["cv_name"] == copy["cv_name"]
    assert "paired_differences" in summary["plots"]
    report(tmp_path / "artifacts" / "t", fmt="table", plots=False)
    out = capsys.readouterr().out
    assert "cannot be told apart from the runner-up" in out and "≈" in out


def test_wilcoxon_pruned_trial_carries_its_cv_score_so_far(tmp_path, external_pkg):
    cfg = cfg_of(tmp_path, n_trials=2, pruner="wilcoxon", warm_start=[GOOD, BAD])
    tune(cfg, name="w", progress=False)
    study = load(tmp_path, "w")
    good, bad = study.trials
    assert study.user_attrs["tunecv:best_trial"]["number"] == good.number == study.best_trial.number
    assert good.user_attrs["config_values"] == pytest.approx(GOOD)
    assert sorted(good.intermediate_values) == list(range(6))
    assert good.state == optuna.trial.TrialState.COMPLETE
    assert bad.state == optuna.trial.TrialState.PRUNED
    n = bad.user_attrs["n_runs"]
    assert 2 <= n < 6 and sorted(bad.intermediate_values) == list(range(n))
    so_far = statistics.mean(bad.user_attrs["run_scores"].values())
    assert bad.value == pytest.approx(so_far) == pytest.approx(bad.user_attrs["score"])
    assert bad.value == pytest.approx(bad.intermediate_values[n - 1])
    assert bad.user_attrs["config_values"] == pytest.approx(BAD)


def test_multi_objective_records(tmp_path, external_pkg):
    cfg = cfg_of(tmp_path, folds=2, seeds=1, n_trials=2, objectives=["val/acc", "val/loss:lower"])
    tune(cfg, name="mo", progress=False)
    study = load(tmp_path, "mo")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for t in study.trials:
        assert len(t.values) == 2 and all(math.isfinite(v) for v in t.values)
        assert t.intermediate_values == {}  # Optuna forbids reports in multi-objective studies
        assert len(t.user_attrs["run_scores"]) == 2 and t.user_attrs["n_runs"] == 2
        assert t.user_attrs["config_values"][LR] == t.params[LR]
    best = study.user_attrs["tunecv:best_trial"]
    assert best["number"] is None and best["pareto"] == sorted(t.number for t in study.best_trials)


def test_timeout_stops_starting_cvs_and_is_kept_across_resume(tmp_path, external_pkg, capsys):
    cfg = cfg_of(tmp_path, folds=2, seeds=1, n_trials=3, timeout=0.5)
    cfg["data"]["init_args"]["sleep"] = 0.3  # each run takes > 0.3 s, so the first cv outlasts the budget
    first = tune(cfg, name="to", progress=False)
    assert len(first.study.trials) == 1 and "tune.timeout of 0.5 s reached" in first.stopped_by
    elapsed = load(tmp_path, "to").user_attrs["tunecv:elapsed"]
    assert elapsed >= 0.5
    again = tune(cfg, name="to", resume=True, progress=True)  # the stored time already spent the budget
    assert len(again.study.trials) == 1 and again.stopped_by
    assert "stopped starting new cvs: tune.timeout" in capsys.readouterr().out
    cfg["tune"]["timeout"] = 3600
    done = tune(cfg, name="to", resume=True, progress=False)
    assert done.stopped_by is None and done.n_finished == 3
    assert load(tmp_path, "to").user_attrs["tunecv:elapsed"] > elapsed


def test_max_runs_counts_training_runs(tmp_path, external_pkg):
    cfg = cfg_of(tmp_path, folds=2, seeds=1, n_trials=5, max_runs=3)
    res = tune(cfg, name="mr", progress=False)
    # trial 0 used 2 runs (< 3), so trial 1 started; then 4 >= 3: no third cv
    assert res.n_finished == 2 and len(res.run_infos) == 4
    assert "tune.max_runs of 3 reached (4 training runs started)" in res.stopped_by


def test_warm_start_from_an_earlier_tune_and_bad_values(tmp_path, external_pkg, capsys):
    first = tune(cfg_of(tmp_path, folds=2, seeds=1, n_trials=2, warm_start=[BAD, GOOD]), name="a",
                 progress=False)
    assert first.best_trial == 1
    cfg = cfg_of(tmp_path, folds=2, seeds=1, n_trials=1, warm_start=str(tmp_path / "artifacts" / "a"),
                 warm_start_top_k=1)
    res = tune(cfg, name="b", progress=False)
    t = res.study.trials[0]
    assert t.user_attrs["config_values"] == pytest.approx(GOOD) and t.user_attrs["warm_start"].endswith("a trial 1")

    bad = cfg_of(tmp_path, n_trials=1, warm_start=[{LR: 0.9, HIDDEN: 8}])
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert main(["tune", "--config", str(path), "--name", "c"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "`tune.warm_start[0]`: `model.init_args.lr` must be within reversed_loguniform" in err[0]
    assert "got 0.9" in err[0] and not (tmp_path / "artifacts" / "c").exists()
