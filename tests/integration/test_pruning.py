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
from tunecv.pruning import EPOCH_SCORES_ATTR, read_epoch_scores
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


def test_resume_after_a_kill_never_reruns_a_pruned_run(tmp_path):
    import json
    import signal
    import time

    space = {"hyperparameters": {"model.init_args.lr": [0.05, 1e-6, 0.04]}}
    cfg = pruning_cfg(tmp_path, space=space)
    cfg["cv"]["n_seeds"] = 1
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "tunecv", "tune", "--config", str(path), "--name", "k"]
    tdir = tmp_path / "artifacts" / "k"

    def pruned_runs() -> list[Path]:
        out = []
        for info in tdir.glob("k-cv*/*/run_info.json"):
            with_status = json.loads(info.read_text() or "null") if info.stat().st_size else None
            if with_status and with_status.get("status") == "pruned":
                out.append(info.parent)
        return out

    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not pruned_runs() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # right after the pruned run ended: its trial may not be told yet
    proc.wait()
    (pruned,) = pruned_runs()
    before = (pruned / "run_info.json").read_text()
    subprocess.run([*cmd, "--resume"], cwd=REPO, check=True, capture_output=True, timeout=300)
    assert (pruned / "run_info.json").read_text() == before  # never trained again
    assert read_epoch_scores(pruned) == ({1: pytest.approx(read_epoch_scores(pruned)[0][1])}, 1)
    df = load_run_infos(tdir)
    assert len(df[df["run_name"] == pruned.name.rsplit("-", 1)[0]]) == 1  # one folder, one row
    study = optuna.load_study(study_name="k", storage=f"sqlite:///{tdir / 'optuna.db'}")
    states = [t.state.name for t in study.trials if t.state.name != "FAIL"]
    assert states[:2] == ["COMPLETE", "PRUNED"] and len(states) == 3, states  # the tune finished after the kill


def test_a_study_rebuilt_on_resume_keeps_the_curves_in_run_pruning_compares_with(tmp_path, caplog):
    # trial 0 (learns) alone, then the study is lost: on --resume trial 1 (hopeless) is still pruned at the
    # first rung, which needs trial 0's per-epoch curve of the same fold and seed (alone, it would be promoted)
    cfg = pruning_cfg(tmp_path)
    cfg["cv"]["n_seeds"] = 1
    cfg["tune"]["max_runs"] = 2
    first = tune(cfg, name="lost", progress=False)
    tdir = tmp_path / "artifacts" / "lost"
    assert [t.state.name for t in first.study.trials] == ["COMPLETE", "WAITING"]  # the grid's second point
    before = first.study.trials[0].user_attrs[EPOCH_SCORES_ATTR]
    assert sorted(before) == ["f0s42", "f1s42"] and sorted(before["f0s42"]["curve"]) == ["1", "2", "3", "4"]
    (tdir / "optuna.db").unlink()
    cfg["tune"]["max_runs"] = None
    with caplog.at_level("WARNING", logger="tunecv.tune"):
        res = tune(cfg, name="lost", resume=True, progress=False)
    assert any("rebuilt it from the tune's folder" in r.getMessage() for r in caplog.records)
    trials = res.study.get_trials(deepcopy=False)
    assert trials[0].user_attrs[EPOCH_SCORES_ATTR] == before  # restored as the run left it
    assert trials[1].state.name == "PRUNED"
    df = load_run_infos(tdir)
    bad = df[(df["trial"] == 1) & df["pruned_at_epoch"].notna()]
    assert list(bad["status"]) == ["pruned"] and list(bad["pruned_at_epoch"]) == [1]
    assert trials[1].user_attrs[EPOCH_SCORES_ATTR]["f0s42"]["pruned_at_epoch"] == 1


def test_the_terminator_stops_a_tune_whose_trials_cannot_improve(tmp_path, capsys):
    # lr hardly varies: every trial scores the same up to noise, far inside the cv's own error
    space = {"hyperparameters": {"model.init_args.lr": {"distribution": "uniform", "low": 0.05, "high": 0.0501}}}
    cfg = pruning_cfg(tmp_path, space=space)
    cfg["trainer"]["max_epochs"] = 1
    cfg["tune"] = {"search_space": cfg["tune"]["search_space"], "n_trials": 12, "stop_when": "converged",
                   "stop_min_trials": 3, "sampler": "random"}
    res = tune(cfg, name="conv", progress=True)
    assert 3 <= len(res.study.trials) < 12
    assert res.stopped_by is not None and res.stopped_by.startswith("converged after")
    assert "stopped starting new cvs: converged after" in capsys.readouterr().out


def test_without_stop_when_the_tune_runs_its_trials(tmp_path):
    space = {"hyperparameters": {"model.init_args.lr": {"distribution": "uniform", "low": 0.05, "high": 0.0501}}}
    cfg = pruning_cfg(tmp_path, space=space)
    cfg["trainer"]["max_epochs"] = 1
    cfg["tune"] = {"search_space": cfg["tune"]["search_space"], "n_trials": 4, "sampler": "random"}
    res = tune(cfg, name="all", progress=False)
    assert len(res.study.trials) == 4 and res.stopped_by is None


# -- other executors ---------------------------------------------------------------------------------------

@pytest.mark.slurm
@pytest.mark.timeout(300)
def test_a_run_in_a_slurm_job_is_pruned_inside(tmp_path, slurm_cluster):
    cfg = pruning_cfg(tmp_path, executor="slurm", slurm={"time": 10, "poll_interval": 0.3})
    cfg["cv"] = {"n_seeds": 1, "n_folds": 1, "scoring_metric": ["val/acc"]}
    cfg["data"]["init_args"]["limit"] = 300
    res = tune(cfg, name="s", progress=False)
    df = load_run_infos(tmp_path / "artifacts" / "s")
    bad = df[df["trial"] == 1]
    assert list(bad["status"]) == ["pruned"] and list(bad["pruned_at_epoch"]) == [1]
    run_dir = tmp_path / "artifacts" / "s" / bad.iloc[0]["cv_name"] / f"{bad.iloc[0]['run_name']}-{bad.iloc[0]['run_id']}"
    info = (run_dir / "run_info.json").read_text()
    assert '"job_ids"' in info  # it ran as a SLURM job
    assert res.study.trials[1].state.name == "PRUNED"


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_a_run_in_a_ray_task_is_pruned_inside(tmp_path):
    from tests.integration.ray_cluster import ray_test_cluster, unavailable_reason

    if unavailable_reason() is not None:
        pytest.skip(unavailable_reason())
    cfg = pruning_cfg(tmp_path, executor="ray", strategy="cv-parallel")
    cfg["cv"] = {"n_seeds": 1, "n_folds": 2, "scoring_metric": ["val/acc"]}
    with ray_test_cluster(n_workers=2, num_gpus_per_worker=0):
        res = tune(cfg, name="r", progress=False)
    df = load_run_infos(tmp_path / "artifacts" / "r")
    bad = df[(df["trial"] == 1) & df["pruned_at_epoch"].notna()]
    assert len(bad) >= 1 and set(bad["status"]) == {"pruned"} and set(bad["pruned_at_epoch"]) == {1}
    assert res.study.trials[1].state.name == "PRUNED"
