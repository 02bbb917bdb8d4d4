"""The cv level: real cross-validations of tiny models on CPU, serial and on a 2-worker pool."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import ext_cfg, tiny_digits
from tests.integration._processes import kill_during
from tunecv import naming
from tunecv.cli import main
from tunecv.config import load_config
from tunecv.cv import cross_validate
from tunecv.errors import RunFailedError
from tunecv.results import RUN_INFO_COLUMNS, read_run_infos
from tunecv.splits import split_indices


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_region_stratified_cv_of_external_model_writes_the_design_schema(tmp_path, external_pkg):
    cfg = ext_cfg(tmp_path, split={"fold_method": "region-stratified", "total_folds": 3,
                                   "group_column": "region", "stratify_column": "label"},
                  cv={"n_seeds": 2, "scoring_metric": ["val/acc", "val/loss:lower"],
                      "multi_score_strategy": "geometric"})
    res = cross_validate(cfg, name="rs", progress=False)
    df = read_run_infos(tmp_path / "artifacts" / "_cross_validations" / "rs" / "run_infos.parquet")
    assert len(df) == 6 and set(df["status"]) == {"completed"}
    assert list(df.columns[: len(RUN_INFO_COLUMNS)]) == list(RUN_INFO_COLUMNS)
    assert {"val/acc", "val/loss", "score", "score_is_unstable"} <= set(df.columns)
    assert sorted(zip(df["fold"], df["seed"], strict=False)) == sorted((f, s) for f in range(3) for s in (42, 21))
    assert set(df["run_name"]) == {naming.run_name("rs", f, s) for f in range(3) for s in (42, 21)}
    assert df["score"].nunique() == 1 and df["score"].iloc[0] == pytest.approx(res.score)
    assert df["cv_name"].unique().tolist() == ["rs"] and df["tune_name"].isna().all()
    for row in df.itertuples():
        assert Path(row.checkpoint).is_file()
        assert (tmp_path / "artifacts" / "_cross_validations" / "rs" / f"{row.run_name}-{row.run_id}").is_dir()
    # groups: never in train and val of one fold; each validated in exactly one fold (per seed)
    import extmodels

    meta = extmodels.BlobData().load()[1]
    split = load_config(cfg).split
    for seed in (42, 21):
        validated = []
        for fold in range(3):
            idx = split_indices(meta, split, fold, seed)
            train_groups = set(meta["region"].iloc[idx.train])
            val_groups = set(meta["region"].iloc[idx.val])
            assert not train_groups & val_groups
            validated += sorted(val_groups)
        assert sorted(validated) == sorted(meta["region"].unique())


def test_parallel_cv_gives_the_same_runs_as_serial(tmp_path):
    cfg = tiny_digits(tmp_path, cv={"n_seeds": 2, "scoring_metric": ["val/acc"]})
    serial = cross_validate(cfg, name="serial", progress=False)
    par = cross_validate({**cfg, "strategy": "cv-parallel", "devices": [0, 1]}, name="par", progress=False)
    key = ["fold", "seed", "status"]
    a = serial.run_infos[key].sort_values(key).reset_index(drop=True)
    b = par.run_infos[key].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert par.n_completed == 6
    # same fold and seed give the same data split and the same seed, so close metrics
    merged = serial.run_infos.merge(par.run_infos, on=["fold", "seed"])
    assert np.allclose(merged["val/acc_x"], merged["val/acc_y"], atol=0.05)


def test_a_failing_run_is_recorded_and_the_others_finish(tmp_path, external_pkg):
    cfg = ext_cfg(tmp_path)
    cfg["data"]["init_args"]["fail_on_fold"] = 1
    res = cross_validate(cfg, name="flaky", progress=False)
    df = res.run_infos.sort_values("fold")
    assert df["status"].tolist() == ["completed", "failed", "completed"]
    assert "fold 1 is broken on purpose" in df["error"].iloc[1]
    assert np.isfinite(res.score)
    # resume reruns only the failed run
    before = df.set_index("fold")["run_id"].to_dict()
    cfg["data"]["init_args"]["fail_on_fold"] = -1
    again = cross_validate(cfg, name="flaky", resume=True, progress=False)
    df2 = again.run_infos.sort_values("fold")
    assert df2["status"].tolist() == ["completed"] * 3
    assert df2.set_index("fold")["run_id"].to_dict() == before  # same folders, nothing duplicated
    assert df2["started_at"].iloc[0] == df["started_at"].iloc[0]  # fold 0 was kept, not rerun


def test_every_run_failing_is_an_error_grouped_by_message(tmp_path, external_pkg, capsys):
    cfg = ext_cfg(tmp_path)
    cfg["model"]["init_args"]["fail"] = True
    with pytest.raises(RunFailedError, match=r"every run .* failed \(3 runs\): 3x RuntimeError: boom"):
        cross_validate(cfg, name="doomed", progress=False)
    assert read_run_infos(tmp_path / "artifacts" / "_cross_validations" / "doomed" / "run_infos.parquet")[
        "status"].tolist() == ["failed"] * 3
    path = write(tmp_path / "doomed.yaml", {**cfg, "name": "doomed2"})
    assert main(["cv", "--config", str(path)]) != 0


def test_killed_worker_is_recorded_and_its_device_returns(tmp_path, external_pkg):
    cfg = ext_cfg(tmp_path, strategy="cv-parallel", devices=[0, 1], split={"fold_method": "kfold", "total_folds": 4})
    cfg["data"]["init_args"]["kill_on_fold"] = 1
    res = cross_validate(cfg, name="killed", progress=False)
    df = res.run_infos.sort_values("fold")
    assert df["status"].tolist() == ["completed", "failed", "completed", "completed"]
    assert "SIGKILL" in df["error"].iloc[1] or "signal" in df["error"].iloc[1]


def test_dry_run_prints_the_plan_and_creates_nothing(tmp_path, capsys):
    path = write(tmp_path / "cv.yaml", tiny_digits(tmp_path, cv={"n_seeds": 2}))
    assert main(["cv", "--config", str(path), "--name", "plan", "--dry_run", "--strategy", "cv-parallel",
                 "--devices", "[0, 1]"]) == 0
    out = capsys.readouterr().out
    assert "plan-run-f2s21" in out and "dry run" in out
    assert not (tmp_path / "artifacts").exists()


def test_cv_name_exists_needs_resume_or_reset(tmp_path, capsys):
    path = write(tmp_path / "cv.yaml", tiny_digits(tmp_path, name="twice", cv={"n_seeds": 1, "n_folds": 2}))
    assert main(["cv", "--config", str(path)]) == 0
    capsys.readouterr()
    assert main(["cv", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "--reset" in err
    assert main(["cv", "--config", str(path), "--reset"]) == 0
    runs = [p for p in (tmp_path / "artifacts" / "_cross_validations" / "twice").iterdir() if p.is_dir()]
    assert len(runs) == 2




def test_sigkill_at_any_moment_then_resume_runs_every_run_once(tmp_path):
    cfg = tiny_digits(tmp_path, name="crashy", cv={"n_seeds": 2, "scoring_metric": ["val/acc"]})
    cfg["trainer"]["max_epochs"] = 3
    path = write(tmp_path / "cv.yaml", cfg)
    cv_dir = tmp_path / "artifacts" / "_cross_validations" / "crashy"
    base = [sys.executable, "-m", "tunecv", "cv", "--config", str(path)]
    for delay in (0.0, 0.7, 1.9, 1.3, 2.6):
        kill_during(base + (["--resume"] if cv_dir.exists() else []), tmp_path, cv_dir, delay)
        if (cv_dir / "run_infos.parquet").exists():
            df = read_run_infos(cv_dir / "run_infos.parquet")  # readable after every kill
            assert df["run_name"].is_unique
    out = subprocess.run([*base, "--resume"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    df = read_run_infos(cv_dir / "run_infos.parquet")
    assert len(df) == 6 and df["run_name"].is_unique and set(df["status"]) == {"completed"}
    folders = [p.name.rsplit("-", 1)[0] for p in cv_dir.iterdir() if p.is_dir()]
    assert sorted(folders) == sorted(df["run_name"])  # one folder per run, none twice


def test_an_executor_added_by_one_registry_line_runs_a_cv(tmp_path, monkeypatch):
    """The seam: a new executor is one module plus one registry entry; cross_validate and tune use it."""
    from tunecv.executors import _registry
    from tunecv.executors import _testing as T

    monkeypatch.setitem(_registry.EXECUTORS, "recording", "tunecv.executors._testing:recording_from_config")
    T.RECORDED_FOLDERS.clear()
    cfg = tiny_digits(tmp_path, executor="recording", trainer={"max_epochs": 1, "enable_progress_bar": False})
    res = cross_validate(cfg, name="seam", progress=False)
    assert res.n_completed == 3
    assert sorted(Path(f).name for f in T.RECORDED_FOLDERS) == sorted(
        f"{r.run_name}-{r.run_id}" for r in res.run_infos.itertuples())
    # the executor chose the devices of each run (pinned): the run's config says so
    for folder in T.RECORDED_FOLDERS:
        assert yaml.safe_load((Path(folder) / "config.yaml").read_text())["devices"] == [0]
