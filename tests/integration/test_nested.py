"""The nested level: outer folds, a whole tune on each outer training part, its winner tested on the outer fold."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

import tunecv.tune as tune_mod
from tests.conftest import tiny_digits
from tunecv.cli import main
from tunecv.data import SplitDataModule
from tunecv.nested import nested
from tunecv.report import report
from tunecv.results import load_run_infos

SPACE = {"hyperparameters": {"model.init_args.lr": {"distribution": "loguniform", "low": 0.001, "high": 0.1},
                             "model.init_args.hidden_dim": [8, 16]}}
# many knobs for few samples: a tune can fit its own cv's noise
WIDE_SPACE = {"hyperparameters": {
    "model.init_args.lr": {"distribution": "loguniform", "low": 0.001, "high": 0.3},
    "model.init_args.hidden_dim": [4, 8, 16, 32, 64],
    "model.init_args.dropout": {"distribution": "uniform", "low": 0.0, "high": 0.5},
    "model.init_args.weight_decay": {"distribution": "loguniform", "low": 1.0e-6, "high": 1.0e-1},
    "data.init_args.batch_size": [4, 8, 16],
}}


class RandomLabels(SplitDataModule):
    """Noise features with coin-flip labels: nothing to learn, so any cv score above chance is luck."""

    def __init__(self, n: int = 60, batch_size: int = 8, num_workers: int = 0) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        self.n = n

    def load(self):
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(self.n, 64, generator=g), torch.randint(0, 2, (self.n,), generator=g)
        return TensorDataset(x, y), pd.DataFrame({"label": y.numpy()})


class PlainDigits(L.LightningDataModule):
    """A plain LightningDataModule (no metadata, no test set): digits in its own train and val sets."""

    def __init__(self, n_train: int = 180, n_val: int = 60, batch_size: int = 32) -> None:
        super().__init__()
        self.n_train, self.n_val, self.batch_size = n_train, n_val, batch_size

    def setup(self, stage=None):
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
        cut, end = self.n_train, self.n_train + self.n_val
        self.train_set, self.val_set = TensorDataset(x[:cut], y[:cut]), TensorDataset(x[cut:end], y[cut:end])
        self.train_set.targets, self.val_set.targets = y[:cut], y[cut:end]

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.batch_size)


def nested_cfg(tmp_path: Path, *, outer: int = 3, n_trials: int = 2, space: dict = SPACE) -> dict:
    space_path = tmp_path / "space.yaml"
    space_path.write_text(yaml.safe_dump(space))
    cfg = tiny_digits(tmp_path)
    cfg["data"]["init_args"]["limit"] = 240
    cfg["split"] = {"fold_method": "stratified", "total_folds": 2, "stratify_column": "label"}
    cfg["trainer"]["max_epochs"] = 1
    cfg.pop("early_stopping")
    cfg["cv"] = {"n_seeds": 1, "scoring_metric": ["val/acc"]}
    cfg["tune"] = {"search_space": str(space_path), "n_trials": n_trials}
    cfg["nested"] = {"fold_method": "stratified", "total_folds": outer}
    return cfg


def _tree_mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_nested_tunes_each_outer_training_part_and_tests_its_winner_on_the_outer_fold(tmp_path, capsys):
    res = nested(nested_cfg(tmp_path), name="n")
    out = capsys.readouterr().out
    folder = tmp_path / "artifacts" / "n"
    assert res.nested_dir == folder and (folder / "config.yaml").is_file() and (folder / "nested.json").is_file()
    # one normal tune folder per outer fold, its config holding out exactly that fold
    held_out = []
    for k in range(3):
        tdir = folder / f"n-outer{k}"
        assert (tdir / "optuna.db").is_file() and (tdir / "run_infos.parquet").is_file()
        saved = yaml.safe_load((tdir / "config.yaml").read_text())
        assert saved["split"]["test_split"] == "sample" and saved["tune"]["retrain_and_test"] is True
        held_out.append(set(saved["split"]["test_split_by"]))
        assert list(tdir.glob("n-outer*-retrain-*"))
    assert sum(map(len, held_out)) == 240 and set.union(*held_out) == set(range(240))  # a partition
    # one table over everything: every run of every outer tune and each retrain, with the outer fold
    df = load_run_infos(folder)
    assert sorted(df["outer_fold"].unique()) == [0, 1, 2]
    assert len(df) == 3 * (2 * 2 + 1) and (df["run_name"].str.endswith("-retrain")).sum() == 3
    assert set(df["tune_name"]) == {"n-outer0", "n-outer1", "n-outer2"}
    # the per-outer-fold summary and the optimism of the inner best
    folds = [res.summary["folds"][str(k)] for k in range(3)]
    for f in folds:
        assert f["test_score"] == pytest.approx(f["test_metrics"]["test/acc"])
        assert f["optimism"] == pytest.approx(f["inner_score"] - f["test_score"])  # val/acc: higher is better
        assert set(f["best_params"]) == {"model.init_args.lr", "model.init_args.hidden_dim"}
    assert res.test_score["n"] == 3
    assert res.test_score["mean"] == pytest.approx(sum(f["test_score"] for f in folds) / 3)
    assert res.optimism["mean"] == pytest.approx(sum(f["optimism"] for f in folds) / 3)
    assert 0 < res.summary["agreement"]["model.init_args.hidden_dim"]["share"] <= 1
    assert "outer test score:" in out and "optimism of the inner best" in out and "n-outer2" in out
    # tunecv report of the nested folder: the same section
    summary = report(folder, fmt="none")
    assert summary["kind"] == "nested" and summary["test_score"]["n"] == 3
    assert summary["optimism"]["mean"] == pytest.approx(res.optimism["mean"])
    assert main(["report", str(folder)]) == 0
    assert "optimism of the inner best" in capsys.readouterr().out


def test_resume_after_an_interrupt_keeps_the_finished_outer_tune(tmp_path, monkeypatch, capsys):
    path = tmp_path / "nested.yaml"
    path.write_text(yaml.safe_dump(nested_cfg(tmp_path, outer=2, n_trials=2)))
    original = tune_mod.TuneDriver.cv_ended

    def interrupt_in_the_second_outer_tune(self, session):
        original(self, session)
        if self.plan.tune_name.endswith("-outer1"):
            raise KeyboardInterrupt  # Ctrl-C after outer fold 1's first cv: outer fold 0's tune had finished

    monkeypatch.setattr(tune_mod.TuneDriver, "cv_ended", interrupt_in_the_second_outer_tune)
    assert main(["nested", "--config", str(path), "--quiet", "--name", "r"]) == 130
    assert "finish with: tunecv nested --config" in (err := capsys.readouterr().err) and "--name r --resume" in err
    folder = tmp_path / "artifacts" / "r"
    state = json.loads((folder / "nested.json").read_text())
    assert list(state["folds"]) == ["0"] and (folder / "r-outer1").is_dir()
    first = _tree_mtimes(folder / "r-outer0")
    monkeypatch.setattr(tune_mod.TuneDriver, "cv_ended", original)
    assert main(["nested", "--config", str(path), "--name", "r", "--resume", "--quiet"]) == 0
    assert _tree_mtimes(folder / "r-outer0") == first  # not a file of the finished outer tune touched
    state = json.loads((folder / "nested.json").read_text())
    assert sorted(state["folds"]) == ["0", "1"] and state["test_score"]["n"] == 2
    df = load_run_infos(folder)
    assert len(df[df["outer_fold"] == 1]) == 2 * 2 + 1  # outer fold 1's first cv was kept, not run twice
    assert df["run_id"].is_unique


def test_a_tune_that_fits_its_own_cv_noise_shows_a_positive_optimism(tmp_path):
    cfg = nested_cfg(tmp_path, n_trials=5, space=WIDE_SPACE)
    cfg["data"] = {"class_path": f"{__name__}.RandomLabels", "init_args": {"n": 60}}
    cfg["split"] = {"fold_method": "kfold", "total_folds": 2}
    cfg["trainer"]["max_epochs"] = 3
    cfg["nested"] = {"fold_method": "kfold", "total_folds": 3, "n_folds": 2}
    res = nested(cfg, name="noise", progress=False)
    folds = list(res.summary["folds"].values())
    assert len(folds) == 2 and all(math.isfinite(f["optimism"]) for f in folds)
    # the best of 5 cvs on coin flips looks better than chance; the held-out outer folds do not agree
    assert res.optimism["mean"] > 0


def test_nested_config_errors_are_one_line(tmp_path):
    from tunecv.errors import ConfigError

    cfg = nested_cfg(tmp_path)
    cfg["split"] = {**cfg["split"], "test_split": "random", "test_split_by": [0.2]}
    with pytest.raises(ConfigError, match=r"split\.test_split` must be none for nested"):
        nested(cfg, name="x")
    cfg = nested_cfg(tmp_path)
    cfg["nested"] = {"fold_method": "none"}
    with pytest.raises(ConfigError, match=r"nested\.fold_method"):
        nested(cfg, name="x")
    assert not (tmp_path / "artifacts" / "x").exists()


def _trial_span(tune_dir: Path) -> tuple:
    """When the outer tune's first trial was asked and its last trial told (its Optuna study)."""
    import optuna

    storage = f"sqlite:///{tune_dir / 'optuna.db'}"
    (name,) = optuna.get_all_study_names(storage)
    trials = optuna.load_study(study_name=name, storage=storage).trials
    return min(t.datetime_start for t in trials), max(t.datetime_complete for t in trials)


def test_outer_folds_run_side_by_side_on_a_device_pool_and_each_tune_has_its_own_recorded_seed(tmp_path):
    cfg = nested_cfg(tmp_path, outer=2, n_trials=2)
    cfg["strategy"] = "tune-parallel"  # a pool of 2 CPU slots: the two outer tunes share it
    cfg["runs_per_device"] = 2
    cfg["local"] = {"threads_per_worker": 1}
    res = nested(cfg, name="par", progress=False)
    folder = tmp_path / "artifacts" / "par"
    df = load_run_infos(folder)
    assert len(df) == 2 * (2 * 2 + 1) and df["run_id"].is_unique
    # the scheduler drove both outer tunes at once: each one's first trial was asked before the other's last
    # trial was told (in series, outer fold 1's first trial would wait for outer fold 0's whole tune); which
    # runs then trained at the same moment depends on how fast each pool worker starts, so it is not asserted
    (s0, f0), (s1, f1) = (_trial_span(folder / f"par-outer{k}") for k in range(2))
    assert s0 < f1 and s1 < f0
    assert sorted(res.summary["folds"]) == ["0", "1"] and res.test_score["n"] == 2
    # each outer tune's sampler got its own seed, derived from the base seed, recorded in nested.json and its config
    seeds = res.summary["sampler_seeds"]
    assert len(set(seeds)) == 2 and cfg.get("seed", 42) not in seeds
    for k in range(2):
        assert res.summary["folds"][str(k)]["sampler_seed"] == seeds[k]
        saved = yaml.safe_load((folder / f"par-outer{k}" / "config.yaml").read_text())
        assert saved["tune"]["seed"] == seeds[k]
    # the first (random startup) points differ between the outer tunes: they do not replay each other
    first = [df[(df["outer_fold"] == k) & (df["trial"] == 0)]["model.init_args.lr"].iloc[0] for k in range(2)]
    assert first[0] != first[1]


def _job_ids(run_dir: Path) -> list[int]:
    info = json.loads((run_dir / "run_info.json").read_text())
    return [int(str(j).split("_")[0]) for j in (info.get("executor") or {}).get("job_ids", [])]


@pytest.mark.slurm
@pytest.mark.timeout(600)
def test_nested_on_slurm_runs_each_inner_run_as_a_job_and_the_outer_tunes_side_by_side(tmp_path, slurm_cluster):
    cfg = nested_cfg(tmp_path, outer=2, n_trials=2)  # 2 outer folds x 2 trials x 2 inner folds, 1 epoch
    cfg.update(executor="slurm", slurm={"time": 10, "poll_interval": 0.3, "max_jobs": 4})
    res = nested(cfg, name="ns", progress=False)
    folder = tmp_path / "artifacts" / "ns"
    df = load_run_infos(folder)
    assert len(df) == 2 * (2 * 2 + 1) and (df["status"] == "completed").all()
    assert res.test_score["n"] == 2 and all(math.isfinite(f["optimism"]) for f in res.summary["folds"].values())
    jobs = {}
    for k in range(2):
        inner = df[(df["outer_fold"] == k) & ~df["run_name"].str.endswith("-retrain")]
        dirs = [folder / f"ns-outer{k}" / cv / f"{name}-{rid}"
                for cv, name, rid in zip(inner["cv_name"], inner["run_name"], inner["run_id"], strict=True)]
        jobs[k] = [j for d in dirs for j in _job_ids(d)]
        assert len(jobs[k]) == 4  # each inner run one SLURM job
    assert len(set(jobs[0]) | set(jobs[1])) == 8
    # side by side: the second outer tune's first job was submitted before the first outer tune's last one
    assert min(jobs[1]) < max(jobs[0]) and min(jobs[0]) < max(jobs[1])


def test_a_plain_lightning_data_module_is_nested_over_its_pooled_train_and_val_data(tmp_path):
    from tunecv.config import config_from_dict
    from tunecv.fold_data import for_run

    cfg = nested_cfg(tmp_path, outer=2, n_trials=2)
    cfg["data"] = {"class_path": f"{__name__}.PlainDigits", "init_args": {"n_train": 180, "n_val": 60}}
    cfg["split"] = {"fold_method": "stratified", "total_folds": 2, "labels": "targets"}
    res = nested(cfg, name="plain", progress=False)
    folder = tmp_path / "artifacts" / "plain"
    folds = [res.summary["folds"][str(k)] for k in range(2)]
    assert [f["n_test"] for f in folds] == [120, 120] and res.test_score["n"] == 2
    assert all(math.isfinite(f["test_score"]) and f["retrain_status"] == "completed" for f in folds)
    df = load_run_infos(folder)
    assert len(df) == 2 * (2 * 2 + 1) and (df["status"] == "completed").all()
    held_out = []
    for k in range(2):
        saved = config_from_dict(yaml.safe_load((folder / f"plain-outer{k}" / "config.yaml").read_text()))
        test = sorted(saved.split.test_split_by)
        held_out.append(set(test))
        # the outer fold (positions in the pooled train + val data) is each inner run's test set, never trained
        # or validated on; the retrain trains on everything else
        for fold in range(2):
            idx = for_run(PlainDigits(), saved.split, fold, seed=42).prepare_fold()
            assert idx.test.tolist() == test and not set(idx.train.tolist() + idx.val.tolist()) & set(test)
        retrain = for_run(PlainDigits(), dataclasses.replace(saved.split, fold_method="none"), 0, seed=42)
        idx = retrain.prepare_fold()
        assert retrain.has_test and idx.test.tolist() == test and sorted(idx.train.tolist()) == sorted(
            set(range(240)) - set(test))
    assert held_out[0] | held_out[1] == set(range(240)) and not held_out[0] & held_out[1]


def test_a_killed_nested_run_resumes_without_touching_its_finished_outer_fold(tmp_path):
    import sys

    from tests.integration._processes import kill_during

    path = tmp_path / "nested.yaml"
    path.write_text(yaml.safe_dump(nested_cfg(tmp_path, outer=2, n_trials=2)))
    folder = tmp_path / "artifacts" / "kill"
    # SIGKILL once outer fold 1's tune has started its first cv (outer fold 0 finished and was recorded)
    kill_during([sys.executable, "-m", "tunecv", "nested", "--config", str(path), "--name", "kill", "--quiet"],
                tmp_path, folder / "kill-outer1" / "kill-outer1-cv0", delay=1.0)
    state = json.loads((folder / "nested.json").read_text())
    assert list(state["folds"]) == ["0"], "the kill came after outer fold 1 finished: nothing left to resume"
    first = _tree_mtimes(folder / "kill-outer0")
    assert main(["nested", "--config", str(path), "--name", "kill", "--resume", "--quiet"]) == 0
    assert _tree_mtimes(folder / "kill-outer0") == first  # the finished outer tune was not run again
    state = json.loads((folder / "nested.json").read_text())
    assert sorted(state["folds"]) == ["0", "1"] and state["optimism"]["n"] == 2
    df = load_run_infos(folder)
    assert len(df) == 2 * (2 * 2 + 1) and df["run_id"].is_unique and (df["status"] == "completed").all()
