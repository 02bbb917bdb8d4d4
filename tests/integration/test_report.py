"""`tunecv report` and `load_run_infos` over real artifacts: two tunes and a cv of the digits example."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from rich.console import Console

from tests.conftest import REPO, tiny_digits
from tunecv.cli import main
from tunecv.cv import CrossValidation, cross_validate
from tunecv.errors import ConfigError
from tunecv.report import report
from tunecv.results import RUN_INFO_COLUMNS, hyperparameter_columns, load_run_infos
from tunecv.tune import tune

SPACE = str(REPO / "configs" / "digits" / "space_implicit.toml")
TUNE_PLOTS = {"paired_differences", "optimization_history", "param_importances", "parallel_coordinate", "slice",
              "score_per_fold_seed", "learning_curves"}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """Tune t1 (3 trials x 2 folds), tune t2 (1 trial x 1 fold, other hyperparameters), cv c1 (2 folds).

    While t1 runs, a report of it is taken right after its second cv recorded its first run.
    """
    root = tmp_path_factory.mktemp("report")
    cfg = tiny_digits(root)
    cfg["cv"]["n_folds"] = 2
    tune_dir = root / "artifacts" / "t1"
    mid: dict = {}
    write = CrossValidation.write

    def write_then_report(self, *args, **kwargs):
        write(self, *args, **kwargs)
        if self.name == "t1-cv1" and len(self.rows) == 1 and not mid:
            out = io.StringIO()
            mid["summary"] = report(tune_dir, plots=False, console=Console(file=out, width=200))
            mid["text"] = out.getvalue()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CrossValidation, "write", write_then_report)
        t1 = tune({**cfg, "tune": {"search_space": SPACE, "n_trials": 3}}, name="t1", progress=False)
    space2 = root / "space2.yaml"
    space2.write_text(yaml.safe_dump({"hyperparameters": {"model.init_args.hidden_dim": [8, 16],
                                                          "trainer.gradient_clip_val": [0.5, 1.0]}}))
    one_fold = {**cfg, "cv": {**cfg["cv"], "n_folds": 1}}
    t2 = tune({**one_fold, "tune": {"search_space": str(space2), "n_trials": 1}}, name="t2", progress=False)
    c1 = cross_validate(cfg, name="c1", progress=False)
    return SimpleNamespace(root=root / "artifacts", t1=t1, t2=t2, c1=c1, mid=mid)


def assert_real_image(path: Path) -> None:
    import matplotlib.image

    assert path.is_file() and path.suffix == ".png"
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] >= 200 and img.shape[1] >= 300
    rgb = img[..., :3].reshape(-1, 3)
    assert rgb.std() > 0.02, f"{path.name} looks blank"
    assert len(np.unique(rgb, axis=0)) > 20, f"{path.name} has almost no colors"


def test_finished_tune_prints_the_leaderboard_and_writes_every_plot(artifacts, capsys):
    t1 = artifacts.t1
    summary = report(t1.tune_dir)
    out = capsys.readouterr().out
    assert summary["kind"] == "tune" and summary["tune_name"] == "t1"
    assert summary["counts"] == {"completed": 3, "pruned": 0, "failed": 0, "running": 0, "total": 3}
    board = summary["leaderboard"]
    assert {e["cv_name"] for e in board} == {"t1-cv0", "t1-cv1", "t1-cv2"}
    scores = [e["score"] for e in board]
    assert scores == sorted(scores, reverse=True)  # two scoring metrics: the score is maximized
    best = summary["best"]
    assert best["trial"] == t1.best_trial and best["score"] == pytest.approx(t1.best_score)
    assert best["params"] == pytest.approx(t1.best_params)
    top = board[0]
    assert top["runs_completed"] == 2 and set(top["metrics"]) == {"val/acc", "val/loss"}
    accs = t1.run_infos.loc[t1.run_infos["cv_name"] == top["cv_name"], "val/acc"]
    assert top["metrics"]["val/acc"]["mean"] == pytest.approx(accs.mean())
    assert top["metrics"]["val/acc"]["std"] == pytest.approx(accs.std())
    for cv_name in ("t1-cv0", "t1-cv1", "t1-cv2"):
        assert cv_name in out
    assert "best: " in out and "±" in out and "hidden_dim" in out

    assert set(summary["plots"]) == TUNE_PLOTS, summary["skipped_plots"]
    for path in summary["plots"].values():
        assert Path(path).parent == t1.tune_dir / "report"
        assert_real_image(Path(path))


def test_json_format_prints_only_json(artifacts, capsys):
    assert main(["report", str(artifacts.t1.tune_dir), "--format", "json", "--no-plots"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # the whole of stdout is one JSON document
    assert data["kind"] == "tune" and data["best"]["trial"] == artifacts.t1.best_trial
    assert data["plots"] == {} and len(data["leaderboard"]) == 3


def test_cv_report_shows_runs_mean_std_and_score(artifacts, capsys):
    c1 = artifacts.c1
    summary = report(c1.cv_dir)
    out = capsys.readouterr().out
    assert summary["kind"] == "cv" and summary["cv_name"] == "c1"
    assert summary["score"] == pytest.approx(c1.score)
    assert summary["score_is_unstable"] == c1.score_is_unstable
    assert [(r["fold"], r["seed"], r["status"]) for r in summary["runs"]] == [(0, 42, "completed"),
                                                                               (1, 42, "completed")]
    assert summary["counts"]["completed"] == 2 and summary["counts"]["planned"] == 2
    assert summary["metrics"]["val/acc"]["mean"] == pytest.approx(c1.run_infos["val/acc"].mean())
    assert "c1-run-f0s42" in out and "mean ± std" in out and "stable" in out
    assert set(summary["plots"]) == {"score_per_fold_seed", "learning_curves"}
    for path in summary["plots"].values():
        assert_real_image(Path(path))


def test_run_report_shows_metrics_and_status(artifacts, capsys):
    row = artifacts.c1.run_infos.iloc[0]
    run_dir = artifacts.c1.cv_dir / f"{row['run_name']}-{row['run_id']}"
    summary = report(run_dir)
    out = capsys.readouterr().out
    assert summary["kind"] == "run" and summary["status"] == "completed"
    assert summary["run_id"] == row["run_id"]
    assert summary["metrics"]["val/acc"] == pytest.approx(row["val/acc"])
    assert "val/acc" in out and "completed" in out
    assert_real_image(Path(summary["plots"]["learning_curves"]))


def test_report_of_a_tune_still_running(artifacts):
    summary, text = artifacts.mid["summary"], artifacts.mid["text"]
    assert summary["counts"]["completed"] == 1 and summary["counts"]["running"] == 1
    states = {e["cv_name"]: (e["state"], e["runs_completed"]) for e in summary["leaderboard"]}
    assert states == {"t1-cv0": ("complete", 2), "t1-cv1": ("running", 1)}
    assert summary["best"]["cv_name"] == "t1-cv0"
    assert "t1-cv1" in text and "running" in text


def test_a_bad_path_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"^`PATH` must be a run, cv or tune folder \(one holding "
                                          r"run_info.json or run_infos.parquet\); got"):
        report(tmp_path)
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tunecv: error: `PATH` must be") and "does not exist" in err and "\n" not in err


def test_bad_path_lists_the_folders_below_that_can_be_reported(artifacts):
    with pytest.raises(ConfigError, match="t1, t2, _cross_validations/c1"):
        report(artifacts.root)


def test_load_run_infos_over_several_tunes_and_a_cv(artifacts):
    df = load_run_infos(artifacts.root)
    assert len(df) == 6 + 1 + 2 and df["run_id"].is_unique
    assert list(df.columns[:len(RUN_INFO_COLUMNS)]) == list(RUN_INFO_COLUMNS)
    hyper = {*hyperparameter_columns(artifacts.t1.run_infos), *hyperparameter_columns(artifacts.t2.run_infos)}
    assert set(hyperparameter_columns(df)) == hyper
    assert {"trainer.gradient_clip_val", "model.init_args.lr", "score", "trial", "val/acc"} <= set(df.columns)
    by_tune = df.groupby(df["tune_name"].fillna("-"))["run_id"].count().to_dict()
    assert by_tune == {"t1": 6, "t2": 1, "-": 2}
    cv_rows = df[df["cv_name"] == "c1"]
    assert cv_rows["trial"].isna().all() and cv_rows["model.init_args.lr"].isna().all()
    t1_rows = df[df["tune_name"] == "t1"]
    assert t1_rows["trainer.gradient_clip_val"].isna().all() and t1_rows["model.init_args.lr"].notna().all()
    assert str(df["fold"].dtype) == "Int64" and str(df["started_at"].dtype).startswith("datetime64")
    assert df["val/acc"].notna().all() and (df["status"] == "completed").all()
    one_tune = load_run_infos(artifacts.t1.tune_dir)
    assert set(one_tune["run_id"]) == set(artifacts.t1.run_infos["run_id"])


def test_docs_example_of_load_run_infos_runs(artifacts, monkeypatch):
    text = (REPO / "docs" / "tracking.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "load_run_infos(" in b)
    monkeypatch.chdir(artifacts.root.parent)  # the example reads ./artifacts
    exec(compile(block, "docs/tracking.md", "exec"), {})
