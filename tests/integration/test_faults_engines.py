"""Faults from the engines' side (issue 28): a lost study, a run killed for memory, a full disk, a database
that restarts. Real tunes and cvs, real files, real signals."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest

from tests.integration.test_faults import points, tune_cfg
from tunecv.results import read_run_infos
from tunecv.tune import tune


def run_dirs(tdir: Path) -> set[str]:
    return {p.name for p in tdir.glob("*-cv*/*-run-*") if p.is_dir()}


def finished_runs(tdir: Path) -> dict[str, float]:
    """Run folder → mtime of its run_info.json (a run trained again would write it again)."""
    return {p.parent.name: p.stat().st_mtime_ns for p in tdir.glob("*-cv*/*-run-*/run_info.json")}


# -- 1. a study rebuilt from the artifacts ------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["deleted", "garbage"])
def test_a_lost_study_is_rebuilt_from_the_tune_folder_and_the_tune_finishes(tmp_path, external_pkg, damage, caplog):
    first = tune(tune_cfg(tmp_path, 3), name="t", progress=False)
    tdir = tmp_path / "artifacts" / "t"
    before = {t.number: t for t in first.study.trials}
    kept = finished_runs(tdir)
    assert len(kept) == 6
    db = tdir / "optuna.db"
    if damage == "deleted":
        db.unlink()
    else:
        db.write_bytes(b"this is not a database" * 100)
    with caplog.at_level("WARNING", logger="tunecv.tune"):
        more = tune(tune_cfg(tmp_path, 5), name="t", resume=True, progress=False)
    said = [r.getMessage() for r in caplog.records if "rebuilt it from the tune's folder" in r.getMessage()]
    assert len(said) == 1 and "3 complete" in said[0], said
    # what a plain Optuna user sees: the earlier trials as they were, then the new ones
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{db}")
    assert len(study.trials) == 5
    for number, old in before.items():
        new = study.trials[number]
        assert (new.state, new.params, new.distributions) == (old.state, old.params, old.distributions)
        assert new.value == pytest.approx(old.value)
        assert new.intermediate_values == pytest.approx(old.intermediate_values)
        for key in ("run_scores", "n_runs", "config_values", "score", "score_is_unstable", "cv_name", "cv_index"):
            assert new.user_attrs[key] == pytest.approx(old.user_attrs[key]) if key == "score" else \
                new.user_attrs[key] == old.user_attrs[key], key
    seen = points(study)
    assert len(seen) == 5 and len(set(seen)) == 5  # the sampler proposed no evaluated point again
    assert more.n_finished == 5
    after = finished_runs(tdir)
    assert {k: after[k] for k in kept} == kept  # no finished run was trained again
    assert len(after) == 10 and len(run_dirs(tdir)) == 10
    df = read_run_infos(tdir / "run_infos.parquet")
    assert df["run_name"].is_unique and len(df) == 10 and set(df["status"]) == {"completed"}
    if damage == "garbage":
        assert len(list(tdir.glob("optuna.db.damaged-*"))) == 1
