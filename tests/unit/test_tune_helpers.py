"""Pieces of the tune level that need no training: best-trial choice, storage URLs, overflow."""

from __future__ import annotations

import optuna
import pytest

from tunecv.errors import StorageError
from tunecv.tune import open_storage, redact
from tunecv.tune.result import _best_trial
from tunecv.tune.study import _overflow

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


class _Result:
    def __init__(self, score: float, unstable: bool = False) -> None:
        self.score, self.score_is_unstable = score, unstable


class _Session:
    """What _BestWatch reads of a cv: its result."""

    def __init__(self, score: float, unstable: bool = False) -> None:
        self._result = _Result(score, unstable)

    def result(self) -> _Result:
        return self._result


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_best_watch_flags_exactly_the_trials_that_change_best_or_runner_up(direction):
    from tunecv.tune.scores import _BestWatch

    sign = 1 if direction == "maximize" else -1
    study = optuna.create_study(direction=direction)
    watch = _BestWatch([direction])
    rng = __import__("random").Random(0)
    top: list[tuple[float, int]] = []  # (signed value, -number) of the stable trials, best first
    for number in range(60):
        value, unstable = rng.uniform(-1, 1), rng.random() < 0.2
        state = "complete" if rng.random() < 0.9 else "pruned"
        trial = study.ask()
        trial.set_user_attr("score_is_unstable", unstable)
        if state == "complete":
            study.tell(trial, value)
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        before = top[:2]
        if state == "complete" and not unstable:
            top = sorted([*top, (sign * value, -number)], reverse=True)
        changed = top[:2] != before
        flagged = watch.may_change(state, _Session(value, unstable))
        assert flagged or not changed, number  # never misses a change of best or runner-up
        if flagged:
            watch.update(study)
    assert watch.top == [v for v, _ in top[:2]]


def test_counts_kept_by_the_driver_match_the_storage():
    from tunecv.tune.study import _Counts

    study = optuna.create_study()
    for x in (1, 2, 3):
        study.enqueue_trial({"x": x})
    alone, shared = _Counts(study, shared=False), _Counts(study, shared=True)
    for i, state in enumerate(["complete", "fail", "pruned", "complete", "fail"]):
        trial = study.ask()
        trial.suggest_float("x", 0, 5)
        alone.asked()
        assert (alone.finished(), alone.live(), alone.waiting()) == (shared.finished(), shared.live(),
                                                                    shared.waiting()), i
        study.tell(trial, 1.0 if state == "complete" else None,
                   state={"complete": optuna.trial.TrialState.COMPLETE, "fail": optuna.trial.TrialState.FAIL,
                          "pruned": optuna.trial.TrialState.PRUNED}[state])
        alone.told(state)
        assert (alone.finished(), alone.live(), alone.waiting()) == (shared.finished(), shared.live(),
                                                                    shared.waiting()), i
    assert alone.finished() == 3 and alone.waiting() == 0


def test_the_tune_bar_shows_the_jobs_in_flight():
    from tunecv.progress import TuneProgress

    bar = TuneProgress("t", 4, enabled=False, directions=["maximize"], refresh_every=60)
    assert "jobs" not in bar._info()
    bar.job_states({"running": 2, "queued": 1, "finished": 3})
    assert bar.jobs == "2 running, 1 queued" and bar._info().endswith("| jobs: 2 running, 1 queued")
    bar.job_states({})
    assert "jobs" not in bar._info()


def test_waiting_for_other_workers_returns_when_their_trials_finished_before_the_wait():
    """A worker saw another worker's trial RUNNING, and that trial finished before the wait began.

    Found by bench_tune_workers (32 workers on PostgreSQL): the wait compared the counts with its own first
    look, which already held the finished trial, so nothing ever changed and the worker slept forever
    with the study complete. The wait must hand back to the caller, which counts again.
    """
    import threading

    from tunecv.tune.study import _StudyStorage, _wait_for_others

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    study.tell(trial, 1.0)  # the last trial: another worker told it just now
    store = _StudyStorage(study, storage)
    waiter = threading.Thread(target=_wait_for_others, args=(store, 1, 4.0, None), daemon=True)
    waiter.start()
    waiter.join(timeout=10)
    assert not waiter.is_alive(), "the worker kept waiting for trials that had already finished"


def test_retrain_epochs_is_the_median_epochs_to_the_best_checkpoint(tmp_path):
    """Issue 29, finding 6: the epochs the retrain trains come from the best cv's runs."""
    from pathlib import Path

    import pandas as pd

    from tunecv.tune import TuneResult, checkpoint_epoch, retrain_epochs

    study = optuna.create_study()
    for cv in ("t-cv0", "t-cv1"):
        trial = study.ask()
        trial.set_user_attr("cv_name", cv)
        study.tell(trial, 1.0)
    ckpt = "/x/checkpoints/best-epoch{}-step9.ckpt"
    df = pd.DataFrame({"cv_name": ["t-cv1"] * 4 + ["t-cv0"], "trial": [1, 1, 1, 1, 0],
                       "status": ["completed", "completed", "completed", "failed", "completed"],
                       "checkpoint": [ckpt.format(2), ckpt.format(6), "/x/epoch=4-step=50.ckpt", ckpt.format(0),
                                      ckpt.format(9)]})
    result = TuneResult("t", Path(tmp_path), {}, 1.0, 1, df, study)
    n, why = retrain_epochs(result)
    assert n == 5 and why.startswith("5 epochs (") and "t-cv1's 3 runs: 3, 5, 7" in why
    assert checkpoint_epoch(None) is None and checkpoint_epoch(str(tmp_path / "last.ckpt")) is None
    empty = TuneResult("t", Path(tmp_path), {}, 1.0, 1, df.assign(checkpoint=None), study)
    assert retrain_epochs(empty)[0] is None
