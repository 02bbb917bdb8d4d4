"""Tunes of the null model (milliseconds per run): the tune table's parts, and many workers on one study."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from tunecv.results import PARTS_DIR, RUN_INFOS_FILE, load_run_infos, read_run_infos, run_infos_frame
from tunecv.tune import tune

SPACE = {"hyperparameters": {"model.init_args.x": {"low": -1.0, "high": 1.0}}}


def null_cfg(tmp_path: Path, n_trials: int, **tune_keys) -> dict:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    return {
        "artifact_dir": str(tmp_path / "artifacts"),
        "model": {"class_path": "tunecv.examples.null.NullModel"},
        "data": {"class_path": "tunecv.examples.null.NullDataModule"},
        "split": {"fold_method": "kfold", "total_folds": 2},
        "trainer": {"max_epochs": 1, "enable_progress_bar": False, "enable_model_summary": False},
        "accelerator": "cpu",
        "devices": [0],
        "cv": {"n_seeds": 1, "scoring_metric": ["val/loss:lower"]},
        "tune": {"search_space": str(space), "n_trials": n_trials, "sampler": "random", **tune_keys},
    }


def reference_table(tdir: Path, study: optuna.Study) -> pd.DataFrame:
    """The tune table as it was built before parts: every cv file, trial states from the study."""
    states = {t.number: t.state.name.lower() for t in study.get_trials(deepcopy=False)}
    frames = [read_run_infos(p) for p in sorted(tdir.glob(f"*/{RUN_INFOS_FILE}"))]
    df = pd.concat([f for f in frames if len(f)], ignore_index=True)
    df["trial_state"] = [states.get(int(t), s) if pd.notna(t) else s for t, s in zip(df["trial"], df["trial_state"])]
    return run_infos_frame(df.to_dict("records"))


def test_tune_table_is_the_cv_files_and_a_resume_rewrites_lost_parts(tmp_path):
    res = tune(null_cfg(tmp_path, 7), name="t", progress=False)
    tdir = res.tune_dir
    expected = reference_table(tdir, res.study)
    assert len(expected) == 14 and set(expected["trial_state"]) == {"complete"}
    for frame in (read_run_infos(tdir / RUN_INFOS_FILE), load_run_infos(tdir), load_run_infos(tmp_path),
                  res.run_infos):
        pd.testing.assert_frame_equal(frame, expected)
    assert len(list((tdir / PARTS_DIR).glob("*.parquet"))) == 7
    # A crash after a trial was told and before its part was written (and before any compaction):
    for p in list((tdir / PARTS_DIR).glob("t-cv[35].*")):
        p.unlink()
    (tdir / RUN_INFOS_FILE).unlink()
    again = tune(null_cfg(tmp_path, 7), name="t", resume=True, progress=False)
    assert len(again.study.trials) == 7  # nothing ran again
    pd.testing.assert_frame_equal(read_run_infos(tdir / RUN_INFOS_FILE), expected)
    pd.testing.assert_frame_equal(load_run_infos(tdir), expected)


@pytest.mark.timeout(900)  # ~40 s on an idle 2-core machine; much more when it is shared
def test_eight_workers_on_one_journal_file_finish_exactly_n_trials(tmp_path):
    n_trials = 200
    cfg = null_cfg(tmp_path, n_trials, storage=f"journal://{tmp_path / 'journal.log'}")
    cfg["split"] = {"fold_method": "none"}
    cfg["checkpoint"] = {"save_top_k": 0}
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "tunecv", "tune", "--config", str(path), "--name", "w", "--quiet"]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    for p in procs:
        _, err = p.communicate(timeout=850)
        assert p.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name="w", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "journal.log"))))
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == n_trials
    assert optuna.trial.TrialState.RUNNING not in states and optuna.trial.TrialState.WAITING not in states
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len({t.user_attrs["cv_name"] for t in done}) == n_trials  # no cv twice
    tdir = tmp_path / "artifacts" / "w"
    df = load_run_infos(tdir)
    assert len(df) == n_trials and df["run_name"].is_unique and df["cv_name"].nunique() == n_trials
    assert set(df["trial"]) == {t.number for t in done}
    cv_dirs = [p for p in tdir.iterdir() if p.is_dir() and p.name.startswith("w-cv")]
    assert len(cv_dirs) == n_trials  # no trial started a cv it did not finish
    assert all(len([r for r in d.iterdir() if r.is_dir()]) == 1 for d in cv_dirs)  # one run each, never twice
    pd.testing.assert_frame_equal(df, reference_table(tdir, study))
