"""run_infos.parquet: columns and dtypes, atomic writes, reading and loading a tree of files."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tunecv import results
from tunecv.config import config_keys
from tunecv.errors import TunecvError
from tunecv.results import (
    RUN_INFO_COLUMNS,
    RUN_INFOS_FILE,
    SCORE_COLUMNS,
    hyperparameter_columns,
    is_hyperparameter_column,
    load_run_infos,
    metric_columns,
    read_run_infos,
    run_infos_frame,
    write_parquet_atomic,
)
from tunecv.scoring import summarize_metrics

FIXED = [
    "run_name", "run_id", "cv_name", "tune_name", "fold", "seed", "started_at", "finished_at",
    "duration", "checkpoint", "status", "error", "is_unstable",
]
UTC = dt.timezone.utc


def row(run_id: str, cv: str | None = None, tune: str | None = None, fold: int = 0, seed: int = 42,
        status: str = "completed", **extra: object) -> dict:
    start = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    return {
        "run_name": f"{cv or 'solo'}-run-f{fold}s{seed}", "run_id": run_id, "cv_name": cv, "tune_name": tune,
        "fold": fold, "seed": seed, "started_at": start, "finished_at": start + dt.timedelta(seconds=90),
        "duration": 90.0, "checkpoint": f"/ckpt/{run_id}.ckpt", "status": status, "error": None,
        "is_unstable": False, **extra,
    }


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- columns ----------------------------------------------------------------------------------------------

def test_fixed_columns_in_order():
    assert list(RUN_INFO_COLUMNS) == FIXED
    assert SCORE_COLUMNS == ("score", "score_is_unstable")


def test_config_keys_follow_the_config():
    assert set(results.config_keys()) == set(config_keys())


@pytest.mark.parametrize(("name", "expected"), [
    ("model.init_args.lr", True), ("data.init_args.batch_size", True), ("trainer.gradient_clip_val", True),
    ("optimizer.init_args.weight_decay", True), ("val/loss", False), ("val/acc", False), ("seed", False),
    ("fold", False), ("checkpoint", False), ("score", False), ("trial", False), ("epoch", False),
    ("model/acc", False), ("lr-Adam", False),
])
def test_is_hyperparameter_column(name, expected):
    assert is_hyperparameter_column(name) is expected


def test_empty_frame_has_fixed_and_score_columns():
    df = run_infos_frame([])
    assert list(df.columns) == [*FIXED, *SCORE_COLUMNS]
    assert len(df) == 0
    assert str(df["fold"].dtype) == "Int64"
    assert str(df["started_at"].dtype) == "datetime64[ns, UTC]"
    assert str(df["is_unstable"].dtype) == "boolean"


def test_frame_orders_and_types_columns():
    rows = [
        row("aaaaaaa1", "t-cv0", "t", fold=0, **{"val/loss": 0.5, "val/acc": 0.8, "trial": 0,
                                              "model.init_args.lr": 0.01, "trial_state": "COMPLETE"}),
        {"run_id": "aaaaaaa2", "status": "failed", "error": "CUDA out of memory", "epoch": 3,
         "model.init_args.lr": 0.1, "trial": 1},
    ]
    df = run_infos_frame(rows)
    assert list(df.columns) == [*FIXED, "val/loss", "val/acc", "epoch", *SCORE_COLUMNS, "trial",
                                "trial_state", "model.init_args.lr"]
    assert metric_columns(df) == ["val/loss", "val/acc", "epoch"]
    assert hyperparameter_columns(df) == ["model.init_args.lr"]
    dtypes = {c: str(t) for c, t in df.dtypes.items()}
    assert dtypes["fold"] == dtypes["seed"] == dtypes["trial"] == "Int64"
    assert dtypes["started_at"] == dtypes["finished_at"] == "datetime64[ns, UTC]"
    assert dtypes["is_unstable"] == dtypes["score_is_unstable"] == "boolean"
    assert dtypes["duration"] == dtypes["score"] == dtypes["val/loss"] == dtypes["epoch"] == "float64"
    assert df.loc[1, "error"] == "CUDA out of memory"
    assert pd.isna(df.loc[0, "error"]) and pd.isna(df.loc[1, "fold"]) and pd.isna(df.loc[1, "val/loss"])


def test_frame_converts_times_and_paths():
    naive = dt.datetime(2024, 5, 1, 12, 0)
    paris = dt.datetime(2024, 5, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    df = run_infos_frame([{"run_id": "a", "started_at": naive, "finished_at": paris,
                           "checkpoint": Path("/ckpt/best.ckpt")}])
    # a naive time is taken as UTC; an aware one is converted to UTC
    assert df.loc[0, "started_at"] == pd.Timestamp("2024-05-01 12:00", tz="UTC")
    assert df.loc[0, "finished_at"] == pd.Timestamp("2024-05-01 12:00", tz="UTC")
    assert df.loc[0, "checkpoint"] == "/ckpt/best.ckpt"


# -- atomic writes ------------------------------------------------------------------------------------------

def test_atomic_write_leaves_only_the_target(tmp_path):
    target = tmp_path / "sub" / RUN_INFOS_FILE
    write_parquet_atomic(run_infos_frame([row("aaaaaaa1")]), target)
    write_parquet_atomic(run_infos_frame([row("aaaaaaa1"), row("aaaaaaa2")]), target)
    assert files_in(target.parent) == [RUN_INFOS_FILE]
    assert len(read_run_infos(target)) == 2


def test_atomic_write_fsyncs_file_and_folder(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    write_parquet_atomic(run_infos_frame([row("aaaaaaa1")]), tmp_path / RUN_INFOS_FILE)
    assert len(synced) == 2  # the temp file, then the folder after the rename


def _previous(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    target = tmp_path / RUN_INFOS_FILE
    old = run_infos_frame([row("aaaaaaa1", **{"val/loss": 0.25})])
    write_parquet_atomic(old, target)
    return target, old


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_crash_while_writing_keeps_the_previous_file(tmp_path, monkeypatch, error):
    target, old = _previous(tmp_path)

    def half_write(table, where, **kwargs):
        where.write(b"PAR1 half a table")  # a writer killed mid-file
        raise error

    monkeypatch.setattr(results.pq, "write_table", half_write)
    with pytest.raises(type(error)):
        write_parquet_atomic(run_infos_frame([row("bbbbbbb1")]), target)
    assert files_in(tmp_path) == [RUN_INFOS_FILE]
    pd.testing.assert_frame_equal(read_run_infos(target), old)


def test_crash_at_replace_keeps_the_previous_file(tmp_path, monkeypatch):
    target, old = _previous(tmp_path)

    def fail(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(results.os, "replace", fail)
    with pytest.raises(OSError, match="rename failed"):
        write_parquet_atomic(run_infos_frame([row("bbbbbbb1")]), target)
    assert files_in(tmp_path) == [RUN_INFOS_FILE]
    pd.testing.assert_frame_equal(read_run_infos(target), old)


def test_garbage_at_a_temp_name_does_not_disturb_the_target(tmp_path):
    target, old = _previous(tmp_path)
    garbage = tmp_path / f".{RUN_INFOS_FILE}.{os.getpid()}.tmp"
    garbage.write_bytes(b"PAR1\x00\x01truncated")  # what a killed writer could leave behind
    pd.testing.assert_frame_equal(read_run_infos(target), old)
    pd.testing.assert_frame_equal(load_run_infos(tmp_path), old)
    new = run_infos_frame([row("bbbbbbb1")])
    write_parquet_atomic(new, target)
    pd.testing.assert_frame_equal(read_run_infos(target), new)
    assert garbage.read_bytes() == b"PAR1\x00\x01truncated"


# -- reading ----------------------------------------------------------------------------------------------

def test_round_trip_keeps_dtypes_with_all_null_columns(tmp_path):
    df = run_infos_frame([
        {"run_id": "aaaaaaa1", "status": "completed", "val/loss": None, "trial": None,
         "model.init_args.lr": 0.1, "model.init_args.act": None},
        {"run_id": "aaaaaaa2", "status": "pruned", "val/loss": None, "model.init_args.lr": None},
    ])
    # every fixed column but run_id/status is all missing here
    target = tmp_path / RUN_INFOS_FILE
    write_parquet_atomic(df, target)
    back = read_run_infos(target)
    pd.testing.assert_frame_equal(back, df)
    assert str(back["val/loss"].dtype) == "float64"
    assert str(back["fold"].dtype) == "Int64"
    assert str(back["started_at"].dtype) == "datetime64[ns, UTC]"
    # plain pandas reads the same dtypes
    pd.testing.assert_frame_equal(pd.read_parquet(target), df, check_dtype=True)


def test_round_trip_full_frame(tmp_path):
    df = run_infos_frame([row("aaaaaaa1", "c", **{"val/loss": 0.5, "score": 0.5, "score_is_unstable": False}),
                          row("aaaaaaa2", "c", fold=1, status="failed", error="boom")])
    write_parquet_atomic(df, tmp_path / RUN_INFOS_FILE)
    pd.testing.assert_frame_equal(read_run_infos(tmp_path / RUN_INFOS_FILE), df)


def test_read_missing_file_is_empty(tmp_path):
    df = read_run_infos(tmp_path / RUN_INFOS_FILE)
    assert list(df.columns) == [*FIXED, *SCORE_COLUMNS]
    assert df.empty


def test_read_truncated_file_names_it(tmp_path):
    target = tmp_path / RUN_INFOS_FILE
    target.write_bytes(b"PAR1 not a table")
    with pytest.raises(TunecvError, match=str(target)):
        read_run_infos(target)


# -- loading a tree -------------------------------------------------------------------------------------------

@pytest.fixture
def artifacts(tmp_path) -> Path:
    """A tune (with its cvs' own files below it), a standalone cv and a standalone run."""
    root = tmp_path / "artifacts"
    tune_rows = []
    for trial, lr in enumerate([0.1, 0.01]):
        cv = f"t-cv{trial}"
        cv_rows = [row(f"t{trial}f{f}xxxxx"[:8], cv, "t", fold=f,
                       **{"val/loss": 0.5 + trial + f / 10, "val/acc": 0.8, "score": 1.0,
                          "score_is_unstable": False})
                   for f in range(2)]
        write_parquet_atomic(run_infos_frame(cv_rows), root / "t" / cv / RUN_INFOS_FILE)
        tune_rows += [{**r, "trial": trial, "trial_state": "COMPLETE", "model.init_args.lr": lr}
                      for r in cv_rows]
    # the tune's own file is the one to read: mark its rows so the test can tell
    tune_rows = [{**r, "val/acc": 0.9} for r in tune_rows]
    write_parquet_atomic(run_infos_frame(tune_rows), root / "t" / RUN_INFOS_FILE)
    cv_rows = [row(f"cvb{f}xxxx"[:8], "b", fold=f, **{"val/loss": 0.3, "val/f1": 0.7}) for f in range(3)]
    write_parquet_atomic(run_infos_frame(cv_rows), root / "_cross_validations" / "b" / RUN_INFOS_FILE)
    solo = [row("solo0001", **{"train/loss": 0.2})]
    write_parquet_atomic(run_infos_frame(solo), root / "_runs" / "solo-solo0001" / RUN_INFOS_FILE)
    (root / "_runs" / "empty-run00002").mkdir()
    return root


def test_load_tree_gives_one_row_per_run(artifacts):
    df = load_run_infos(artifacts)
    assert len(df) == 4 + 3 + 1
    assert df["run_id"].is_unique
    # files are read outermost first (the tune, then the cv and the run), metrics in order of appearance
    assert list(df.columns) == [*FIXED, "val/loss", "val/acc", "val/f1", "train/loss", *SCORE_COLUMNS,
                                "trial", "trial_state", "model.init_args.lr"]
    assert df.dtypes.equals(run_infos_frame(df.to_dict("records")).dtypes)
    tune = df[df["tune_name"] == "t"]
    assert (tune["val/acc"] == 0.9).all()  # rows from the tune's file, not its cvs'
    assert sorted(tune["model.init_args.lr"]) == [0.01, 0.01, 0.1, 0.1]
    assert tune["val/f1"].isna().all()
    others = df[df["tune_name"].isna()]
    assert len(others) == 4 and others["trial"].isna().all() and others["model.init_args.lr"].isna().all()
    assert df.loc[df["run_id"] == "solo0001", "train/loss"].item() == 0.2


def test_load_each_level(artifacts):
    assert len(load_run_infos(artifacts / "t")) == 4
    cv = load_run_infos(artifacts / "t" / "t-cv1")
    assert len(cv) == 2 and (cv["val/acc"] == 0.8).all() and "trial" not in cv.columns
    assert len(load_run_infos(artifacts / "_cross_validations")) == 3
    assert len(load_run_infos(artifacts / "_runs" / "solo-solo0001")) == 1
    assert len(load_run_infos(artifacts / "t" / RUN_INFOS_FILE)) == 4
    empty = load_run_infos(artifacts / "_runs" / "empty-run00002")
    assert empty.empty and list(empty.columns) == [*FIXED, *SCORE_COLUMNS]


def test_load_missing_path_is_an_error(tmp_path):
    with pytest.raises(TunecvError, match="does not exist"):
        load_run_infos(tmp_path / "nope")


def test_load_keeps_the_outermost_row_of_a_duplicated_run(tmp_path):
    write_parquet_atomic(run_infos_frame([row("dup00001", **{"val/loss": 1.0})]),
                         tmp_path / "z" / RUN_INFOS_FILE)
    write_parquet_atomic(run_infos_frame([row("dup00001", **{"val/loss": 2.0}), row("other001")]),
                         tmp_path / "a" / "deeper" / RUN_INFOS_FILE)
    df = load_run_infos(tmp_path)
    assert sorted(df["run_id"]) == ["dup00001", "other001"]
    assert df.loc[df["run_id"] == "dup00001", "val/loss"].item() == 1.0


def test_load_unifies_incompatible_hyperparameter_types(tmp_path):
    write_parquet_atomic(run_infos_frame([row("a0000001", **{"model.init_args.act": 1})]),
                         tmp_path / "a" / RUN_INFOS_FILE)
    write_parquet_atomic(run_infos_frame([row("b0000001", **{"model.init_args.act": "relu"})]),
                         tmp_path / "b" / RUN_INFOS_FILE)
    df = load_run_infos(tmp_path)
    assert sorted(map(str, df["model.init_args.act"])) == ["1", "relu"]
    assert str(df["fold"].dtype) == "Int64"


def test_load_100_files_is_consistent(tmp_path):
    for k in range(100):
        write_parquet_atomic(run_infos_frame([row(f"r{k:07d}", f"cv{k}", **{f"val/m{k % 3}": float(k)})]),
                             tmp_path / f"cv{k}" / RUN_INFOS_FILE)
    df = load_run_infos(tmp_path)
    assert len(df) == 100 and df["run_id"].is_unique
    assert set(metric_columns(df)) == {"val/m0", "val/m1", "val/m2"}
    assert df["val/m1"].notna().sum() == 33


def test_parquet_written_by_plain_pandas_loads(tmp_path):
    pd.DataFrame({"run_id": ["x"], "fold": [1], "val/loss": [0.1]}).to_parquet(tmp_path / RUN_INFOS_FILE)
    df = load_run_infos(tmp_path)
    assert list(df.columns[: len(FIXED)]) == FIXED and df.loc[0, "fold"] == 1
    assert pq.read_schema(tmp_path / RUN_INFOS_FILE).names == ["run_id", "fold", "val/loss"]


# -- summaries ------------------------------------------------------------------------------------------------

def test_summarize_metrics_over_completed_runs():
    df = run_infos_frame([
        row("a", **{"val/loss": 0.2, "val/acc": 0.9}),
        row("b", **{"val/loss": 0.4, "val/acc": np.nan}),
        row("c", status="failed", **{"val/loss": 100.0, "val/acc": 0.0}),
    ])
    summary = summarize_metrics(df)
    assert list(summary.index) == ["val/loss", "val/acc"]
    assert list(summary.columns) == ["mean", "std", "count"]
    # val/loss over the completed runs 0.2, 0.4: mean 0.3; sample std sqrt(((-0.1)^2 + 0.1^2) / 1) = 0.1414
    assert summary.loc["val/loss", "mean"] == pytest.approx(0.3)
    assert summary.loc["val/loss", "std"] == pytest.approx(0.1 * np.sqrt(2))
    assert summary.loc["val/loss", "count"] == 2
    # val/acc: only 0.9 is finite: mean 0.9, std undefined for one value
    assert summary.loc["val/acc", "mean"] == pytest.approx(0.9) and np.isnan(summary.loc["val/acc", "std"])
    specs = summarize_metrics(df, ["val/loss:lower", "val/f1"])
    assert list(specs.index) == ["val/loss", "val/f1"]
    assert specs.loc["val/f1", "count"] == 0 and np.isnan(specs.loc["val/f1", "mean"])
