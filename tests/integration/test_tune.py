"""The tune level: Optuna studies over real cross-validations of a tiny model on CPU."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import ext_cfg
from tests.integration._processes import kill_during
from tests.integration.postgres import postgres_server, unavailable_reason
from tunecv.cli import main
from tunecv.results import read_run_infos
from tunecv.tune import tune

SPACE = {"hyperparameters": {
    "model.init_args.lr": {"distribution": "loguniform", "low": 0.01, "high": 0.3},
    "model.init_args.hidden": [4, 8],
}}
GRID = {"hyperparameters": {"model.init_args.lr": [0.05, 0.2], "model.init_args.hidden": [4, 8, 12]}}


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def tune_cfg(tmp_path: Path, space: dict = SPACE, **tune_keys) -> dict:
    space_path = write(tmp_path / "space.yaml", space)
    cfg = ext_cfg(tmp_path, split={"fold_method": "kfold", "total_folds": 2})
    cfg["trainer"]["max_epochs"] = 1
    cfg["tune"] = {"search_space": str(space_path), "n_trials": 3, **tune_keys}
    return cfg


def test_external_model_tunes_from_a_space_file(tmp_path, external_pkg):
    res = tune(tune_cfg(tmp_path), name="t", progress=False)
    tdir = tmp_path / "artifacts" / "t"
    assert res.tune_dir == tdir and (tdir / "optuna.db").is_file() and (tdir / "config.yaml").is_file()
    df = read_run_infos(tdir / "run_infos.parquet")
    assert len(df) == 3 * 2
    assert sorted(df["cv_name"].unique()) == ["t-cv0", "t-cv1", "t-cv2"]
    assert set(df["tune_name"]) == {"t"} and sorted(df["trial"].unique()) == [0, 1, 2]
    assert {"model.init_args.lr", "model.init_args.hidden", "trial_state", "score"} <= set(df.columns)
    for row in df.itertuples():
        assert (tdir / row.cv_name / f"{row.run_name}-{row.run_id}" / "config.yaml").is_file()
        assert row.run_name.startswith(f"{row.cv_name}-run-f")
        assert (tdir / row.cv_name / "run_infos.parquet").is_file()
        assert (tdir / row.cv_name / "config.yaml").is_file()
    assert res.best_trial in (0, 1, 2)
    assert res.best_score == pytest.approx(df[df["trial"] == res.best_trial]["score"].iloc[0])
    assert set(res.best_params) == {"model.init_args.lr", "model.init_args.hidden"}
    # the run config holds the tuned value
    row = df.iloc[0]
    saved = yaml.safe_load((tdir / row.cv_name / f"{row.run_name}-{row.run_id}" / "config.yaml").read_text())
    assert saved["model"]["init_args"]["lr"] == pytest.approx(row["model.init_args.lr"])
    assert res.study.direction == optuna.study.StudyDirection.MAXIMIZE  # val/acc: higher


def test_single_lower_metric_is_minimized(tmp_path, external_pkg):
    cfg = tune_cfg(tmp_path, n_trials=1)
    cfg["cv"] = {"n_seeds": 1, "scoring_metric": ["val/loss:lower"]}
    res = tune(cfg, name="low", progress=False)
    assert res.study.direction == optuna.study.StudyDirection.MINIMIZE


def test_grid_runs_every_combination_exactly_once(tmp_path, external_pkg, capsys):
    cfg = tune_cfg(tmp_path, space=GRID, n_trials="grid")
    path = write(tmp_path / "tune.yaml", cfg)
    assert main(["tune", "--config", str(path), "--name", "g", "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "grid: 6 trials" in out and "g-cv5" in out and not (tmp_path / "artifacts").exists()
    res = tune(cfg, name="g", progress=False)
    points = sorted((t.params["model.init_args.lr"], t.params["model.init_args.hidden"]) for t in res.study.trials)
    assert points == sorted((lr, h) for lr in (0.05, 0.2) for h in (4, 8, 12))
    assert res.n_finished == 6


def _worker_cmd(path: Path, name: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tunecv", "tune", "--config", str(path), "--name", name, *extra]


def test_grid_with_two_worker_processes_on_one_journal_storage(tmp_path, external_pkg):
    cfg = tune_cfg(tmp_path, space=GRID, n_trials="grid", storage=f"journal://{tmp_path / 'journal.log'}")
    path = write(tmp_path / "tune.yaml", cfg)
    procs = [subprocess.Popen(_worker_cmd(path, "shared"), cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name="shared", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "journal.log"))))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    points = sorted((t.params["model.init_args.lr"], t.params["model.init_args.hidden"]) for t in done)
    assert points == sorted((lr, h) for lr in (0.05, 0.2) for h in (4, 8, 12))  # each exactly once
    df = read_run_infos(tmp_path / "artifacts" / "shared" / "run_infos.parquet")
    assert df["run_name"].is_unique and len(df) == 12


def test_sigkill_of_the_tune_then_resume_loses_nothing(tmp_path, external_pkg):
    cfg = tune_cfg(tmp_path, n_trials=4)
    cfg["data"]["init_args"]["sleep"] = 0.3
    path = write(tmp_path / "tune.yaml", cfg)
    tdir = tmp_path / "artifacts" / "k"
    for delay in (0.0, 1.5, 2.5, 1.0):
        cmd = _worker_cmd(path, "k", *(["--resume"] if tdir.exists() else []))
        kill_during(cmd, tmp_path, tdir / "optuna.db", delay)
    out = subprocess.run(_worker_cmd(path, "k", "--resume"), cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    study = optuna.load_study(study_name="k", storage=f"sqlite:///{tdir / 'optuna.db'}")
    finished = [t for t in study.trials if t.state.is_finished() and t.state != optuna.trial.TrialState.FAIL]
    assert len(finished) == 4
    df = read_run_infos(tdir / "run_infos.parquet")
    assert df["run_name"].is_unique
    cvs = sorted(df["cv_name"].unique())
    assert len(cvs) == 4 and len(df) == 8 and set(df["status"]) == {"completed"}
    for cv in cvs:  # a re-queued trial kept its cv folder: one folder per run
        runs = [p.name.rsplit("-", 1)[0] for p in (tdir / cv).iterdir() if p.is_dir()]
        assert sorted(runs) == sorted(df[df["cv_name"] == cv]["run_name"])


@pytest.mark.postgres
def test_four_workers_on_one_postgres_study_finish_exactly_n_trials(tmp_path, external_pkg):
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="tunecv-pg-"))
    os.chmod(root, 0o755)
    try:
        with postgres_server(root / "pg") as url:
            cfg = tune_cfg(tmp_path, n_trials=6, storage=url)
            path = write(tmp_path / "tune.yaml", cfg)
            procs = [subprocess.Popen(_worker_cmd(path, "pg"), cwd=tmp_path, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True) for _ in range(4)]
            for p in procs:
                _, err = p.communicate(timeout=900)
                assert p.returncode == 0, err[-2000:]
            study = optuna.load_study(study_name="pg", storage=url)
            finished = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                               optuna.trial.TrialState.PRUNED)]
            assert len(finished) == 6
            cv_names = [t.user_attrs["cv_name"] for t in finished]
            assert len(set(cv_names)) == 6  # none twice
            df = read_run_infos(tmp_path / "artifacts" / "pg" / "run_infos.parquet")
            assert df["run_name"].is_unique and df["cv_name"].nunique() == 6
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_fold_level_pruning_stops_a_cv_and_keeps_its_runs(tmp_path, external_pkg):
    # a grid in this order: two good trials (the median pruner's startup), then a hopeless one
    space = {"hyperparameters": {"model.init_args.lr": [0.3, 0.25, 0.00001], "model.init_args.hidden": 8}}
    cfg = tune_cfg(tmp_path, space=space, n_trials="grid", pruner="median")
    cfg["split"] = {"fold_method": "kfold", "total_folds": 4}
    res = tune(cfg, name="p", progress=False)
    states = {t.number: t.state for t in res.study.trials}
    pruned = [n for n, s in states.items() if s == optuna.trial.TrialState.PRUNED]
    assert pruned, states
    df = read_run_infos(tmp_path / "artifacts" / "p" / "run_infos.parquet")
    for n in pruned:
        rows = df[df["trial"] == n]
        assert len(rows) == 4 and set(rows["trial_state"]) == {"pruned"}  # every planned run has a row
        done = rows[rows["status"] == "completed"]
        assert 0 < len(done) < 4 and set(rows["status"]) == {"completed", "pruned"}
        assert rows[rows["status"] == "pruned"]["checkpoint"].isna().all()
    steps = res.study.trials[0].intermediate_values
    assert sorted(steps) == [0, 1, 2, 3]  # one report per run, the run index as step


def test_retrain_and_test(tmp_path, external_pkg):
    cfg = tune_cfg(tmp_path, n_trials=2, retrain_and_test=True)
    cfg["split"] = {"test_split": "random", "test_split_by": [0.2], "fold_method": "kfold", "total_folds": 2}
    res = tune(cfg, name="r", progress=False)
    assert res.retrain is not None and res.retrain.status == "completed"
    assert res.retrain.run_dir.parent == tmp_path / "artifacts" / "r"
    assert res.retrain.run_dir.name.startswith("r-retrain-")
    assert "test/acc" in res.retrain.metrics


def test_multi_objective_marks_the_pareto_front(tmp_path, external_pkg):
    cfg = tune_cfg(tmp_path, n_trials=3, objectives=["val/acc", "val/loss:lower"])
    res = tune(cfg, name="mo", progress=False)
    assert len(res.study.directions) == 2 and res.pareto_trials
    df = read_run_infos(tmp_path / "artifacts" / "mo" / "run_infos.parquet")
    assert df["is_pareto_optimal"].any()


@pytest.mark.parametrize("strategy", ["tune-parallel", "cv-parallel"])
def test_parallel_strategies_on_two_cpu_workers(tmp_path, external_pkg, strategy):
    cfg = tune_cfg(tmp_path, n_trials=4)
    cfg.update(strategy=strategy, devices=[0, 1])
    res = tune(cfg, name="tp", progress=False)
    assert res.n_finished == 4
    df = read_run_infos(tmp_path / "artifacts" / "tp" / "run_infos.parquet")
    assert len(df) == 8 and df["run_name"].is_unique


def test_an_executor_with_session_per_job_gets_each_cv_of_a_tune_as_one_job(tmp_path, external_pkg):
    """What ``executor: slurm`` does under tune-parallel (one SLURM job per trial's cv), on the local pool:
    drive() hands each cv's runs to one job, which runs them in series, and records every run."""
    from tunecv.config import load_config
    from tunecv.executors import make_executor_from_config

    cfg = tune_cfg(tmp_path, n_trials=3)
    cfg.update(strategy="tune-parallel", devices=[0, 1])
    jobs: list[list[Path]] = []
    with make_executor_from_config(load_config(cfg), parallel=True, accelerator="cpu") as ex:
        ex.session_per_job = True
        submit_runs = ex.submit_runs

        def record(folders, fn, *args):
            jobs.append([Path(f) for f in folders])
            return submit_runs(folders, fn, *args)

        ex.submit_runs = record
        res = tune(cfg, name="grouped", progress=False, executor=ex)
    assert res.n_finished == 3
    df = read_run_infos(tmp_path / "artifacts" / "grouped" / "run_infos.parquet")
    assert len(df) == 6 and set(df["status"]) == {"completed"} and df["run_name"].is_unique
    assert len(jobs) == 3 and all(len(folders) == 2 for folders in jobs)  # one job per cv, both its runs
    assert all(len({f.parent for f in folders}) == 1 for folders in jobs)
    assert sorted(f.name.rsplit("-", 1)[0] for folders in jobs for f in folders) == sorted(df["run_name"])


BAD_SPACES = [
    ({"hyperparameters": {"model.init_args.nope": [1, 2]}}, "model.init_args.nope"),
    ({"hyperparameters": {"model.init_args.lr": {"distribution": "logunifrom", "low": 1, "high": 2}}},
     "logunifrom"),
    ({"hyperparameters": {"model.init_args.lr": {"distribution": "uniform", "low": 2, "high": 1}}}, "low"),
    ({"hyperparameters": {"model.init_args.lr": {"distribution": "loguniform", "low": 0, "high": 1}}}, "low"),
    ({"nothing": {}}, "hyperparameters"),
]


@pytest.mark.parametrize(("space", "needle"), BAD_SPACES, ids=[n for _, n in BAD_SPACES])
def test_bad_search_space_is_rejected_before_training(tmp_path, external_pkg, capsys, space, needle):
    path = write(tmp_path / "tune.yaml", tune_cfg(tmp_path, space=space))
    assert main(["tune", "--config", str(path), "--name", "bad"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err
    assert not (tmp_path / "artifacts").exists()


def test_grid_over_a_continuous_range_is_rejected(tmp_path, external_pkg, capsys):
    path = write(tmp_path / "tune.yaml", tune_cfg(tmp_path, n_trials="grid"))
    assert main(["tune", "--config", str(path), "--name", "bad"]) == 2
    assert "model.init_args.lr" in capsys.readouterr().err


def test_unreachable_storage_names_it_without_password(tmp_path, external_pkg, capsys):
    url = "postgresql+psycopg://alice:s3cret@127.0.0.1:1/nowhere"
    path = write(tmp_path / "tune.yaml", tune_cfg(tmp_path, storage=url))
    assert main(["tune", "--config", str(path), "--name", "bad"]) == 2
    err = capsys.readouterr().err
    assert "127.0.0.1:1" in err and "s3cret" not in err and "alice" in err


def test_tune_parallel_with_cv_parallel_is_rejected(tmp_path, external_pkg, capsys):
    cfg = tune_cfg(tmp_path)
    cfg["strategy"] = "tune-parallel"
    cfg["trainer"]["strategy"] = "cv-parallel"
    path = write(tmp_path / "tune.yaml", cfg)
    assert main(["tune", "--config", str(path), "--name", "bad"]) == 2
    assert "cv-parallel" in capsys.readouterr().err


def test_changed_search_space_on_resume_is_an_error(tmp_path, external_pkg, capsys):
    cfg = tune_cfg(tmp_path, n_trials=1)
    tune(cfg, name="ch", progress=False)
    write(Path(cfg["tune"]["search_space"]), {"hyperparameters": {"model.init_args.lr": [0.1, 0.2]}})
    path = write(tmp_path / "tune.yaml", cfg)
    assert main(["tune", "--config", str(path), "--name", "ch", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "search space changed" in err and "model.init_args" in err


def test_retrain_trains_the_best_cvs_epochs_and_keeps_the_last_checkpoint(tmp_path, external_pkg, capsys,
                                                                         monkeypatch):
    """Issue 29, findings 6 and 3: the retrain's val/* is on its own training data, so it must not pick its
    epochs or checkpoint by it; and the tune ends with the retrain's test metrics and the report command."""
    import re
    import statistics

    import torch

    cfg = tune_cfg(tmp_path, n_trials=2, retrain_and_test=True)
    cfg["split"] = {"test_split": "random", "test_split_by": [0.2], "fold_method": "kfold", "total_folds": 2}
    cfg["trainer"]["max_epochs"] = 3
    # the best checkpoint of every cv run is its worst val/loss: in practice its first epoch, before max_epochs
    cfg["checkpoint"] = {"monitor": "val/loss", "mode": "max"}
    cfg["early_stopping"] = {"monitor": "val/loss", "mode": "max", "patience": 2}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")  # the best's lines unwrapped (tunecv's own closing lines never wrap)
    res = tune(cfg, name="re", progress=True)
    best_cv = res.run_infos[res.run_infos["trial"] == res.best_trial]
    best_epochs = [int(re.search(r"epoch(\d+)", Path(p).name).group(1)) + 1 for p in best_cv["checkpoint"]]
    expected = math.floor(statistics.median(best_epochs) + 0.5)
    assert expected < 3
    assert res.retrain.status == "completed"
    last = torch.load(res.retrain.last_checkpoint, map_location="cpu", weights_only=False)
    assert last["epoch"] + 1 == expected  # trained the best cv's epochs, not max_epochs or an early stop
    assert Path(res.retrain.checkpoint).name.startswith(f"epoch{expected - 1}-")  # the last one, not a "best"
    saved = yaml.safe_load((res.retrain.run_dir / "config.yaml").read_text())
    assert saved["early_stopping"] is None and saved["trainer"]["max_epochs"] == expected
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "next: tunecv report artifacts/re"
    test_acc = res.retrain.metrics["test/acc"]
    assert any(line.startswith(f"retrain: test test/acc={test_acc:.4g}") for line in out)
    assert any(f"trained {expected} epoch{'s' if expected > 1 else ''} (the median epochs to the best checkpoint" in line for line in out)
    assert any(line.startswith("  the best trial ") and "95% paired t interval over 2 (fold, seed) pairs" in line
               for line in out)
