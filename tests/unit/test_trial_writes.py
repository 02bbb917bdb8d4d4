"""A trial's batched writes (``RetryingStorage.batched_trial_writes``): one commit on an RDB storage, the
same rows a plain Optuna user reads, what was set before an error kept."""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy

from tunecv.tune import open_storage
from tunecv.tune.study import _StudyStorage


def _commits(storage) -> list[int]:
    """A list that counts the commits of ``storage``'s SQLAlchemy engine."""
    seen: list[int] = []
    engine = storage._inner._backend.engine  # the RDBStorage behind the cache, for counting only
    sqlalchemy.event.listen(engine, "commit", lambda conn: seen.append(1))
    return seen


def test_a_batch_is_one_commit_and_plain_optuna_reads_every_value(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url)
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    store = _StudyStorage(study, storage)
    commits = _commits(storage)
    with store.batched():
        trial.set_user_attr("run_scores", {"0": 0.5})
        trial.set_user_attr("n_runs", 1)
        trial.report(0.5, step=0)
        store.set_system_attr(trial._trial_id, "tunecv:worker", "w1")
        assert optuna.load_study(study_name="s", storage=url).trials[0].user_attrs == {}  # held until the end
        assert trial.user_attrs["n_runs"] == 1  # the Trial's own copy is current inside the block
    assert len(commits) == 1
    seen = optuna.load_study(study_name="s", storage=url).trials[0]
    assert seen.user_attrs == {"run_scores": {"0": 0.5}, "n_runs": 1}
    assert seen.intermediate_values == {0: 0.5}
    assert seen.system_attrs["tunecv:worker"] == "w1"
    commits.clear()
    with store.batched():  # a later batch overwrites as separate calls would
        trial.set_user_attr("n_runs", 2)
        trial.report(0.25, step=1)
    assert len(commits) == 1
    study.tell(trial, 0.25)
    seen = optuna.load_study(study_name="s", storage=url).trials[0]
    assert seen.user_attrs["n_runs"] == 2 and seen.intermediate_values == {0: 0.5, 1: 0.25}


def test_a_failed_block_keeps_what_was_set_and_a_nested_block_joins_the_outer(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url)
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    store = _StudyStorage(study, storage)
    with pytest.raises(RuntimeError), store.batched():
        trial.set_user_attr("a", 1)
        raise RuntimeError("boom")
    assert optuna.load_study(study_name="s", storage=url).trials[0].user_attrs == {"a": 1}
    commits = _commits(storage)
    with store.batched():
        trial.set_user_attr("b", 1)
        with store.batched():
            trial.set_user_attr("c", 2)
        assert optuna.load_study(study_name="s", storage=url).trials[0].user_attrs == {"a": 1}
    assert len(commits) == 1
    assert optuna.load_study(study_name="s", storage=url).trials[0].user_attrs == {"a": 1, "b": 1, "c": 2}


def test_a_journal_storage_gets_the_separate_calls(tmp_path):
    url = f"journal://{tmp_path / 'journal.log'}"
    storage = open_storage(url)
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    with _StudyStorage(study, storage).batched():
        trial.set_user_attr("n_runs", 1)
        trial.report(0.5, step=0)
        assert optuna.load_study(study_name="s", storage=storage).trials[0].user_attrs == {"n_runs": 1}
