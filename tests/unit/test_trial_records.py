"""Budgets, warm-start validation and the best-trial record, on in-memory Optuna studies."""

from __future__ import annotations

import time

import optuna
import pytest

from tunecv import _trial_records as records
from tunecv.errors import ConfigError
from tunecv.search_space import SearchSpace

SPACE = SearchSpace.from_mapping({"hyperparameters": {
    "model.init_args.lr": {"distribution": "loguniform", "low": 1e-4, "high": 0.1},
    "model.init_args.hidden": [4, 8],
}}, "space.yaml")


@pytest.mark.parametrize(("timeout", "max_runs", "needle"), [
    (0, None, "`tune.timeout` must be a number of seconds > 0, or null for no limit; got 0"),
    ("1h", None, "got '1h'"),
    (None, 0, "`tune.max_runs` must be an int > 0, or null for no limit; got 0"),
    (None, 2.5, "got 2.5"),
])
def test_bad_budgets_name_the_key(timeout, max_runs, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        records.check_budget(timeout, max_runs)
    records.check_budget(1.5, 3)


def test_warm_start_list_is_checked_against_the_space():
    points = records.warm_start_points([{"model.init_args.lr": 0.01}], 5, SPACE, load_tune=None)
    assert points == [({"model.init_args.lr": 0.01}, "tune.warm_start[0]")]
    with pytest.raises(ConfigError, match=r"`tune.warm_start\[1\]`: `model.init_args.hidden` must be one of "
                                          r"\[4, 8\]; got 16"):
        records.warm_start_points([{"model.init_args.lr": 0.01}, {"model.init_args.hidden": 16}], 5, SPACE,
                                  load_tune=None)
    with pytest.raises(ConfigError, match=r"`model.init_args.lrr` is not a key of the search space; valid: "
                                          r"model.init_args.lr, model.init_args.hidden"):
        records.warm_start_points([{"model.init_args.lrr": 0.01}], 5, SPACE, load_tune=None)
    with pytest.raises(ConfigError, match="must be an earlier tune folder or a list"):
        records.warm_start_points(3, 5, SPACE, load_tune=None)


def test_budget_keeps_elapsed_time_in_the_study():
    study = optuna.create_study()
    budget = records.Budget(study, timeout=0.05, max_runs=None)
    assert budget.exhausted([]) is None
    time.sleep(0.06)
    assert "tune.timeout of 0.05 s reached" in budget.exhausted([])
    budget.save()
    again = records.Budget(study, timeout=0.05, max_runs=None)  # a resumed tune continues the count
    assert again.base >= 0.05 and again.exhausted([])


def test_budget_counts_runs_of_each_cv_once():
    study = optuna.create_study()
    for n_runs, cv_index in [(3, 0), (2, 1), (3, 1)]:  # cv 1 re-queued after a crash: counted once
        trial = study.ask()
        trial.set_user_attr("n_runs", n_runs)
        trial.set_user_attr("cv_index", cv_index)
        study.tell(trial, 1.0)
    budget = records.Budget(study, timeout=None, max_runs=7)
    assert budget.runs_used([]) == 6 and budget.exhausted([]) is None
    budget.max_runs = 6
    assert "tune.max_runs of 6 reached (6 training runs started)" in budget.exhausted([])


def test_best_trial_record_explains_a_difference_with_optuna():
    study = optuna.create_study(direction="maximize")
    # the runner-up's runs differ from the best's by -0.1 and -0.02: the interval of 2 pairs holds 0
    for value, unstable, scores in [(0.9, True, [0.9, 0.9]), (0.8, False, [0.8, 0.8]), (0.7, False, [0.7, 0.78])]:
        trial = study.ask()
        trial.set_user_attr("score_is_unstable", unstable)
        trial.set_user_attr("run_scores", {str(i): s for i, s in enumerate(scores)})
        study.tell(trial, value)
    best = study.trials[1]
    record = records.record_best(study, best, ["maximize"])
    assert study.user_attrs[records.BEST_TRIAL_ATTR] == record
    assert record["number"] == 1 and record["value"] == 0.8
    assert "study.best_trial is trial 0" in record["reason"] and "unstable" in record["reason"]
    assert record["runner_up"]["number"] == 2 and record["runner_up"]["n_pairs"] == 2
    assert "cannot be told apart from the runner-up, trial 2" in records.runner_up_line(record)
    assert records.record_best(study, None, ["maximize"])["number"] is None


def test_runner_up_line_decides_from_the_interval_when_wilcoxon_cannot():
    """Issue 29, finding 1: 5 pairs far apart are told apart (the smallest Wilcoxon p would be 0.0625), and
    the line says why the p-value is not the judge."""
    study = optuna.create_study(direction="maximize")
    for scores in ([1.80, 1.69, 1.79, 1.79, 1.63], [0.52, 0.40, 0.66, 0.49, 0.47]):
        trial = study.ask()
        trial.set_user_attr("score_is_unstable", False)
        trial.set_user_attr("run_scores", {str(i): s for i, s in enumerate(scores)})
        study.tell(trial, sum(scores) / len(scores))
    record = records.record_best(study, study.trials[0], ["maximize"])
    runner = record["runner_up"]
    assert runner["distinguishable"] and not runner["p_can_reach_alpha"] and runner["p_value"] > 0.05
    line = records.runner_up_line(record)
    assert line.startswith("the best trial is better than the runner-up, trial 1: -1.232 [-1.332, -1.132] (")
    assert "95% paired t interval over 5 (fold, seed) pairs)" in line and "Wilcoxon p" not in line
    assert line.endswith("5 paired runs: a difference cannot be significant at 0.05 by Wilcoxon (smallest p 0.062); "
                         "≈ best is read from the 95% paired t intervals shown")
