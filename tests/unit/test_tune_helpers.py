"""Pieces of the tune level that need no training: best-trial choice, storage URLs, overflow."""

from __future__ import annotations

import optuna
import pytest

from tunecv.errors import StorageError
from tunecv.tune import _best_trial, _overflow, open_storage, redact

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(direction: str, values: list[tuple[float, bool]]) -> optuna.Study:
    study = optuna.create_study(direction=direction)
    for value, unstable in values:
        trial = study.ask()
        trial.set_user_attr("score_is_unstable", unstable)
        study.tell(trial, value)
    return study


def test_an_unstable_cv_is_never_chosen_as_best():
    study = _study("maximize", [(0.5, False), (0.9, True), (0.7, False)])
    assert _best_trial(study, ["maximize"]).number == 2
    study = _study("minimize", [(0.5, False), (0.1, True), (0.7, False)])
    assert _best_trial(study, ["minimize"]).number == 0


def test_no_stable_trial_means_no_best():
    assert _best_trial(_study("maximize", [(0.9, True)]), ["maximize"]) is None


def test_negative_scores_are_compared_correctly():
    study = _study("maximize", [(-3.0, False), (-1.0, False)])
    assert _best_trial(study, ["maximize"]).number == 1


def test_redact_hides_the_password_only():
    assert redact("postgresql+psycopg://alice:s3cret@db:5432/x") == "postgresql+psycopg://alice:***@db:5432/x"
    assert redact("sqlite:///tmp/a.db") == "sqlite:///tmp/a.db"


def test_unreachable_storage_is_a_one_line_error_without_password():
    with pytest.raises(StorageError) as info:
        open_storage("postgresql+psycopg://bob:pw123@127.0.0.1:1/db")
    text = str(info.value)
    assert "pw123" not in text and "127.0.0.1:1" in text and "\n" not in text


def test_journal_storage_url(tmp_path):
    storage = open_storage(f"journal://{tmp_path / 'j.log'}")
    optuna.create_study(study_name="s", storage=storage)
    assert (tmp_path / "j.log").exists()


def test_trials_past_n_trials_give_way():
    study = optuna.create_study()
    trials = [study.ask() for _ in range(4)]
    assert [_overflow(study, t, 3) for t in trials] == [False, False, False, True]


def test_an_overflow_trial_can_be_marked_and_failed():
    study = optuna.create_study()
    for _ in range(3):
        study.ask()
    extra = study.ask()
    assert _overflow(study, extra, 3)
    extra.set_user_attr("overflow", True)
    study.tell(extra, state=optuna.trial.TrialState.FAIL)
    assert study.trials[-1].user_attrs["overflow"] is True
