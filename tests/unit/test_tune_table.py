"""A tune's table as parts plus a compacted file: the same frame whichever of the two holds a cv."""

from __future__ import annotations

import os
import threading

import pandas as pd
import pytest

from tests.unit.test_results import row
from tunecv.results import (
    PARTS_DIR,
    RUN_INFOS_FILE,
    compact_run_infos,
    load_run_infos,
    read_run_infos,
    read_tune_table,
    run_infos_frame,
    write_run_infos_part,
)


def cv_rows(index: int, trial: int | None = None, n_runs: int = 2, state: str = "complete", **extra) -> list[dict]:
    trial = index if trial is None else trial
    return [row(f"i{index}t{trial}r{r}", cv=f"t-cv{index}", tune="t", fold=r, score=0.5 + index / 100,
                trial=trial, trial_state=state, **{"val/acc": 0.1 * r, "model.init_args.lr": 0.01 * index},
                **extra)
            for r in range(n_runs)]


def reference(cvs: dict[str, list[dict]]) -> pd.DataFrame:
    """The table as the tune wrote it before parts: every cv file, in cv-folder order, concatenated."""
    frames = [run_infos_frame(cvs[name]) for name in sorted(cvs, key=lambda n: n + "/")]
    return run_infos_frame(pd.concat(frames, ignore_index=True).to_dict("records"))


def add(folder, cvs, index, trial=None, **kw):
    rows = cv_rows(index, trial, **kw)
    cvs[f"t-cv{index}"] = rows
    write_run_infos_part(folder, f"t-cv{index}.trial{rows[0]['trial']}", run_infos_frame(rows))


def test_parts_alone_compacted_and_mixed_read_the_same(tmp_path):
    cvs: dict[str, list[dict]] = {}
    for i in (0, 1, 2, 10, 11):  # cv10 sorts between cv1 and cv2, as the folders do
        add(tmp_path, cvs, i)
    expected = reference(cvs)
    assert not (tmp_path / RUN_INFOS_FILE).exists()
    pd.testing.assert_frame_equal(read_tune_table(tmp_path), expected)
    pd.testing.assert_frame_equal(load_run_infos(tmp_path), expected)  # parts alone make a table
    assert compact_run_infos(tmp_path) == 5
    pd.testing.assert_frame_equal(read_run_infos(tmp_path / RUN_INFOS_FILE), expected)
    add(tmp_path, cvs, 3)
    add(tmp_path, cvs, 12)
    expected = reference(cvs)
    for frame in (read_tune_table(tmp_path), load_run_infos(tmp_path), load_run_infos(tmp_path / RUN_INFOS_FILE)):
        pd.testing.assert_frame_equal(frame, expected)
    assert compact_run_infos(tmp_path) == 7
    pd.testing.assert_frame_equal(read_run_infos(tmp_path / RUN_INFOS_FILE), expected)
    assert compact_run_infos(tmp_path) == 7  # nothing new: nothing rewritten


def test_a_cv_run_again_under_a_later_trial_replaces_its_rows(tmp_path):
    cvs: dict[str, list[dict]] = {}
    add(tmp_path, cvs, 0)
    add(tmp_path, cvs, 1, trial=1, n_runs=1, state="fail")
    compact_run_infos(tmp_path)
    add(tmp_path, cvs, 1, trial=5, n_runs=2)  # re-queued after a crash: same cv, new trial
    df = read_tune_table(tmp_path)
    pd.testing.assert_frame_equal(df, reference(cvs))
    assert list(df[df["cv_name"] == "t-cv1"]["trial"]) == [5, 5]
    compact_run_infos(tmp_path)
    pd.testing.assert_frame_equal(read_run_infos(tmp_path / RUN_INFOS_FILE), reference(cvs))


def test_a_table_older_than_its_parts_loses_nothing(tmp_path):
    # Two workers compacting at once: the table written last may hold fewer parts; nothing is lost.
    cvs: dict[str, list[dict]] = {}
    add(tmp_path, cvs, 0)
    compact_run_infos(tmp_path)
    old = (tmp_path / RUN_INFOS_FILE).read_bytes()
    add(tmp_path, cvs, 1)
    compact_run_infos(tmp_path)
    (tmp_path / RUN_INFOS_FILE).write_bytes(old)
    pd.testing.assert_frame_equal(load_run_infos(tmp_path), reference(cvs))
    compact_run_infos(tmp_path)
    pd.testing.assert_frame_equal(read_run_infos(tmp_path / RUN_INFOS_FILE), reference(cvs))


def test_a_killed_part_write_leaves_no_part(tmp_path, monkeypatch):
    cvs: dict[str, list[dict]] = {}
    add(tmp_path, cvs, 0)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_run_infos_part(tmp_path, "t-cv1.trial1", run_infos_frame(cv_rows(1)))
    monkeypatch.undo()
    (tmp_path / PARTS_DIR / ".t-cv2.trial2.parquet.123.ab.tmp").write_bytes(b"PAR1 truncated")
    assert sorted(p.name for p in (tmp_path / PARTS_DIR).iterdir()) == [".t-cv2.trial2.parquet.123.ab.tmp",
                                                                        "t-cv0.trial0.parquet"]
    pd.testing.assert_frame_equal(read_tune_table(tmp_path), reference(cvs))


def test_compactions_from_several_threads_hold_every_part(tmp_path):
    cvs: dict[str, list[dict]] = {}
    errors = []

    def worker(offset: int) -> None:
        try:
            for i in range(offset, 40, 4):
                add(tmp_path, cvs, i)
                compact_run_infos(tmp_path)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert compact_run_infos(tmp_path) == 40
    pd.testing.assert_frame_equal(read_run_infos(tmp_path / RUN_INFOS_FILE), reference(cvs))


def test_artifact_folder_with_a_tune_and_a_lone_cv(tmp_path):
    tune_dir = tmp_path / "t"
    cvs: dict[str, list[dict]] = {}
    add(tune_dir, cvs, 0)
    compact_run_infos(tune_dir)
    add(tune_dir, cvs, 1)
    lone = tmp_path / "_cross_validations" / "solo"
    lone.mkdir(parents=True)
    run_infos_frame([row("lone1", cv="solo")]).to_parquet(lone / RUN_INFOS_FILE)
    # a cv folder below the tune keeps its own file; the tune's table already holds its rows
    (tune_dir / "t-cv0").mkdir()
    run_infos_frame(cvs["t-cv0"]).to_parquet(tune_dir / "t-cv0" / RUN_INFOS_FILE)
    df = load_run_infos(tmp_path)
    assert sorted(df["run_id"]) == sorted(["lone1", *(r["run_id"] for rows in cvs.values() for r in rows)])
