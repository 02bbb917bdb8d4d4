"""wandb tracking of real runs, read back from the offline files wandb itself wrote (no mocked wandb)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import lightning as L
import pytest

from tests import wandb_log
from tests.conftest import REPO, tiny_digits
from tunecv import tracking
from tunecv.cv import cross_validate
from tunecv.naming import split_run_dir_name
from tunecv.results import hyperparameter_columns
from tunecv.train import train
from tunecv.tune import tune

SPACE = str(REPO / "configs" / "digits" / "space_implicit.toml")
PROJECT = "tunecv-tests"


def wandb_cfg(root: Path, **extra) -> dict:
    cfg = tiny_digits(root, logging={"wandb_project": PROJECT}, **extra)
    cfg["cv"] = {**cfg["cv"], "n_folds": 2}
    return cfg


def run_folders(parent: Path) -> list[Path]:
    return sorted(p for p in parent.rglob("*") if p.is_dir() and split_run_dir_name(p.name)
                  and (p / "config.yaml").is_file())


def only_offline_run(run_dir: Path, wait: float = 15.0) -> dict:
    """The run record of the one offline run in ``run_dir``.

    wandb's service process writes the ``.wandb`` file; on a busy machine its run record can land a moment
    after ``wandb.finish`` returned in this process, so the read is retried for up to ``wait`` seconds.
    """
    (folder,) = tracking.offline_runs(run_dir)
    deadline = time.monotonic() + wait
    while True:
        try:
            return wandb_log.read_offline_run(folder)
        except ValueError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="module")
def wandb_artifacts(tmp_path_factory):
    """A tune of 2 trials x 2 folds and a one-run cv, logged to wandb offline."""
    root = tmp_path_factory.mktemp("wandb")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_RUN_GROUP", "stale-group")  # must not reach any run
        mp.setenv("WANDB_RUN_ID", "stale000")
        mp.chdir(root)
        result = tune({**wandb_cfg(root), "tune": {"search_space": SPACE, "n_trials": 2}}, name="w1",
                      progress=False)
        cv_cfg = wandb_cfg(root)
        cv_cfg["cv"]["n_folds"] = 1
        cv_result = cross_validate(cv_cfg, name="wcv", progress=False)
        leftover = {k: v for k, v in os.environ.items() if k in ("WANDB_RUN_GROUP", "WANDB_RUN_ID")}
    return root, result, cv_result, leftover


def test_tune_runs_carry_the_naming_scheme(wandb_artifacts):
    _, result, _, _ = wandb_artifacts
    rows = result.run_infos.set_index("run_id")
    folders = run_folders(result.tune_dir)
    assert len(folders) == len(rows) == 4
    for folder in folders:
        run_name, run_id = split_run_dir_name(folder.name)
        logged = only_offline_run(folder)
        row = rows.loc[run_id]
        assert logged["id"] == run_id
        assert logged["name"] == run_name == row["run_name"]
        assert logged["group"] == "w1"
        assert logged["job_type"] == row["cv_name"] == folder.parent.name
        assert logged["project"] == PROJECT
        assert logged["finished"] and logged["exit_code"] == 0 and logged["history_steps"] > 0
        # the resolved config of the trial, and the trial's hyperparameters
        assert logged["config"]["trial"] == row["trial"]
        for key in hyperparameter_columns(result.run_infos):
            assert logged["config"][key] == pytest.approx(row[key])
        lr = row["model.init_args.lr"]
        assert logged["config"]["model"]["init_args"]["lr"] == pytest.approx(lr)
        assert logged["config"]["name"] == run_name


def test_cv_alone_groups_by_cv_name(wandb_artifacts):
    _, _, cv_result, _ = wandb_artifacts
    (folder,) = run_folders(cv_result.cv_dir)
    logged = only_offline_run(folder)
    assert (logged["group"], logged["job_type"]) == ("wcv", "wcv")
    assert logged["id"] == split_run_dir_name(folder.name)[1]


def test_files_stay_in_the_run_folders_and_nothing_leaks(wandb_artifacts):
    root, _, _, leftover = wandb_artifacts
    assert not (root / "wandb").exists()  # nothing in the working directory
    assert {p.parent.parent.name for p in root.rglob("offline-run-*")} == {
        p.name for p in run_folders(root)}
    assert leftover == {"WANDB_RUN_GROUP": "stale-group", "WANDB_RUN_ID": "stale000"}  # restored after
    import wandb

    assert wandb.run is None


class SetsWandbEnv(L.Callback):
    """Changes WANDB_* variables during a run, as a user callback or a sweep agent might."""

    def on_train_start(self, trainer, pl_module):
        os.environ["WANDB_NOTES"] = "notes of the first run"
        os.environ["WANDB_TAGS"] = "first"


def test_failed_run_is_closed_and_leaks_nothing_into_the_next(tmp_path, external_pkg, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_NOTES", raising=False)
    monkeypatch.delenv("WANDB_TAGS", raising=False)
    base = {
        "artifact_dir": str(tmp_path / "artifacts"),
        "model": {"class_path": "extmodels.BlobNet", "init_args": {"hidden": 8}},
        "data": {"class_path": "extmodels.BlobData", "init_args": {"batch_size": 32}},
        "split": {"fold_method": "kfold", "total_folds": 3},
        "trainer": {"max_epochs": 1, "enable_model_summary": False, "enable_progress_bar": False},
        "accelerator": "cpu", "devices": [0], "early_stopping": None,
        "logging": {"wandb_project": PROJECT},
    }
    failing = {**base, "name": "bad", "model": {"class_path": "extmodels.BlobNet",
                                                "init_args": {"hidden": 8, "fail": True}}}
    with pytest.raises(RuntimeError, match="boom"):
        train(failing, callbacks=[SetsWandbEnv()])
    assert "WANDB_NOTES" not in os.environ and "WANDB_TAGS" not in os.environ
    good = train({**base, "name": "good"})
    (bad_dir,) = (tmp_path / "artifacts" / "_runs").glob("bad-*")
    bad = only_offline_run(bad_dir)
    assert bad["finished"] and bad["exit_code"] == 1 and bad["name"] == "bad"
    after = only_offline_run(good.run_dir)
    assert (after["id"], after["name"]) == (good.run_id, "good")
    assert after["notes"] == "" and after["tags"] == []
    assert after["finished"] and after["exit_code"] == 0


@pytest.mark.filterwarnings("ignore:Checkpoint directory")
def test_resume_continues_the_same_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = tiny_digits(tmp_path, name="again", early_stopping=None, logging={"wandb_project": PROJECT})
    cfg["trainer"]["max_epochs"] = 1
    first = train(cfg)
    (first.run_dir / "run_info.json").unlink()  # interrupted before it recorded its result
    cfg["trainer"]["max_epochs"] = 2
    second = train(cfg, resume=True)
    assert second.run_dir == first.run_dir
    logged = [wandb_log.read_offline_run(p) for p in tracking.offline_runs(first.run_dir)]
    # offline, wandb writes one file per attempt, both under the same id; `wandb sync` appends them
    assert len(logged) == 2
    assert {(r["id"], r["name"]) for r in logged} == {(first.run_id, "again")}


@pytest.fixture
def fresh_wandb():
    """wandb reads its environment once per process setup: start and end the test with a new setup."""
    import wandb

    wandb.teardown()
    yield
    wandb.teardown()


def test_unreachable_service_goes_offline_with_one_warning(tmp_path, monkeypatch, caplog, fresh_wandb):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setitem(tracking._state, "online_failed", False)
    monkeypatch.setitem(tracking._state, "warned", set())
    kwargs = {"project": PROJECT, "entity": None, "group": "g", "job_type": "j", "init_timeout": 3}
    with caplog.at_level(logging.WARNING, logger="tunecv.tracking"):
        t0 = time.perf_counter()
        first = tracking.wandb_logger(run_id="fall0001", run_name="one", save_dir=tmp_path / "one", **kwargs)
        assert time.perf_counter() - t0 < 60
        assert first is not None and first.experiment.offline
        tracking.finish_wandb()
        second = tracking.wandb_logger(run_id="fall0002", run_name="two", save_dir=tmp_path / "two", **kwargs)
        assert second.experiment.offline
        tracking.finish_wandb()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "tunecv.tracking"]
    assert len(warnings) == 1 and "cannot reach" in warnings[0].getMessage()
    assert only_offline_run(tmp_path / "one")["id"] == "fall0001"
    assert only_offline_run(tmp_path / "two")["name"] == "two"
    # the first run tried online (wandb left a run-* folder of that attempt); the second did not try again
    assert list((tmp_path / "one" / "wandb").glob("run-*-fall0001"))
    assert not list((tmp_path / "two" / "wandb").glob("run-*"))


def user_wandb_cfg(root: Path, **init_args) -> dict:
    """A 2-fold cv whose config brings its own WandbLogger in trainer.logger (as LightningCLI users write it)."""
    cfg = tiny_digits(root, early_stopping=None)
    cfg["cv"] = {**cfg["cv"], "n_folds": 2}
    cfg["trainer"]["max_epochs"] = 1
    cfg["trainer"]["logger"] = [{"class_path": "lightning.pytorch.loggers.WandbLogger",
                                 "init_args": {"project": "users-own", "save_dir": ".", **init_args},
                                 "dict_kwargs": {"tags": ["mine"], "notes": "user notes"}}]
    return cfg


def test_a_user_wandb_logger_is_one_wandb_run_per_run_with_tunecv_s_identity(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_RUN_ID", "stale000")  # must reach no run
    monkeypatch.chdir(tmp_path)
    result = cross_validate(user_wandb_cfg(tmp_path), name="ucv", progress=False)
    folders = run_folders(result.cv_dir)
    assert len(folders) == 2 and set(result.run_infos["status"]) == {"completed"}
    ids = set()
    for folder in folders:
        run_name, run_id = split_run_dir_name(folder.name)
        logged = only_offline_run(folder)  # exactly one wandb run, in the run's own folder
        assert (logged["id"], logged["name"], logged["group"], logged["job_type"]) == (run_id, run_name, "ucv", "ucv")
        assert logged["project"] == "users-own" and logged["tags"] == ["mine"] and logged["notes"] == "user notes"
        assert logged["finished"] and logged["exit_code"] == 0 and logged["history_steps"] > 0
        ids.add(logged["id"])
    assert len(ids) == 2
    assert not (tmp_path / "wandb").exists()  # save_dir '.' (the default) means the run folder
    assert os.environ["WANDB_RUN_ID"] == "stale000"
    import wandb

    assert wandb.run is None


def test_a_user_wandb_logger_with_a_wandb_project_makes_no_second_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    cfg = user_wandb_cfg(tmp_path)
    cfg["logging"] = {"wandb_project": PROJECT}
    result = cross_validate(cfg, name="both", progress=False)
    for folder in run_folders(result.cv_dir):
        run_name, run_id = split_run_dir_name(folder.name)
        logged = only_offline_run(folder)  # one, not two
        assert (logged["id"], logged["group"], logged["job_type"]) == (run_id, "both", "both")
        assert logged["project"] == "users-own"  # the user's project is kept
        assert logged["config"]["name"] == run_name  # and tunecv's config is logged into it


def test_a_failing_run_finishes_the_user_s_wandb_run(tmp_path, external_pkg, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    cfg = {
        "artifact_dir": str(tmp_path / "artifacts"), "name": "bad",
        "model": {"class_path": "extmodels.BlobNet", "init_args": {"hidden": 8, "fail": True}},
        "data": {"class_path": "extmodels.BlobData", "init_args": {"batch_size": 32}},
        "split": {"fold_method": "kfold", "total_folds": 3},
        "trainer": {"max_epochs": 1, "enable_model_summary": False, "enable_progress_bar": False,
                    "logger": {"class_path": "lightning.pytorch.loggers.WandbLogger", "init_args": {"project": "p"}}},
        "accelerator": "cpu", "devices": [0], "early_stopping": None,
    }
    with pytest.raises(RuntimeError, match="boom"):
        train(cfg)
    import wandb

    assert wandb.run is None
    (bad_dir,) = (tmp_path / "artifacts" / "_runs").glob("bad-*")
    logged = only_offline_run(bad_dir)
    assert logged["finished"] and logged["exit_code"] == 1 and logged["id"] == split_run_dir_name(bad_dir.name)[1]
