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


def test_a_tune_killed_mid_trial_whose_study_is_deleted_resumes_to_its_end(tmp_path, external_pkg, caplog):
    import signal
    import subprocess

    from tests.integration.test_faults import tunecv, write

    cfg = tune_cfg(tmp_path, 5)
    cfg["data"]["init_args"]["sleep"] = 0.3
    path = write(tmp_path / "tune.yaml", cfg)
    tdir = tmp_path / "artifacts" / "k"
    proc = subprocess.Popen(tunecv("tune", "--config", str(path), "--name", "k", "--quiet"), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline and not (
                len(list(tdir.glob("run_infos.parts/*.parquet"))) >= 3 and len(finished_runs(tdir)) >= 7):
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)  # mid-trial: three trials told, the fourth has a finished run
        proc.wait()
    kept = finished_runs(tdir)
    assert len(kept) >= 7
    (tdir / "optuna.db").unlink()
    cfg["data"]["init_args"]["sleep"] = 0.0
    with caplog.at_level("WARNING", logger="tunecv.tune"):
        result = tune(cfg, name="k", resume=True, progress=False)
    assert any("rebuilt it from the tune's folder" in r.getMessage() for r in caplog.records)
    study = optuna.load_study(study_name="k", storage=f"sqlite:///{tdir / 'optuna.db'}")
    seen = points(study)
    assert result.n_finished == 5 and len(seen) == 5 and len(set(seen)) == 5
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    after = finished_runs(tdir)
    assert {k: after[k] for k in kept} == kept  # no finished run was trained again, the cut trial's included
    assert len(after) == 10 and len(run_dirs(tdir)) == 10
    df = read_run_infos(tdir / "run_infos.parquet")
    assert df["run_name"].is_unique and len(df) == 10 and df["cv_name"].nunique() == 5


# -- 2. a run killed for memory, or stopped by a memory limit, is recorded as failed --------------------------

MEMORY_HOG = '''

class MemoryHogData(BlobData):
    """Fold ``oom_on_fold`` allocates 4 GiB under an address-space limit of 1 GiB above what it uses."""
    def __init__(self, oom_on_fold: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.oom_on_fold = oom_on_fold

    def setup(self, stage=None):
        if self.fold == self.oom_on_fold:
            import resource
            with open("/proc/self/status") as fh:
                vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize"))
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), hard))
            try:
                torch.ones(1 << 30, dtype=torch.float32)
            finally:
                resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        super().setup(stage)
'''


def test_a_run_killed_for_memory_or_over_its_limit_fails_alone_on_the_pool(tmp_path, external_pkg):
    from tests.integration.test_faults import cv_cfg
    from tunecv.cv import cross_validate

    init = external_pkg / "extmodels" / "__init__.py"
    init.write_text(init.read_text() + MEMORY_HOG)
    cfg = cv_cfg(tmp_path, split={"fold_method": "kfold", "total_folds": 4}, strategy="cv-parallel", devices=[0, 1])
    cfg["data"] = {"class_path": "extmodels.MemoryHogData",
                   "init_args": {"batch_size": 32, "kill_on_fold": 1, "oom_on_fold": 2}}
    result = cross_validate(cfg, name="mem", progress=False)
    df = result.run_infos.set_index("fold")
    assert list(df["status"].sort_index()) == ["completed", "failed", "failed", "completed"], df["error"].tolist()
    assert "killed (out of memory?)" in df.loc[1, "error"] and "SIGKILL" in df.loc[1, "error"], df.loc[1, "error"]
    assert "can't allocate memory" in df.loc[2, "error"], df.loc[2, "error"]  # the limit's own message
    assert result.n_completed == 2


def test_slurm_out_of_memory_is_said_as_a_kill_for_memory():
    from tunecv.executors._slurm import ended_message

    line = ended_message("17", "c-run-f0s42", "OUT_OF_MEMORY", "None", "/logs/17.out")
    assert line.startswith("SLURM job 17 (c-run-f0s42) killed (out of memory?)") and "OUT_OF_MEMORY" in line
    assert "/logs/17.out" in line
    assert ended_message("18", "r", "CANCELLED", "", "l") == "SLURM job 18 (r) ended CANCELLED without a result; its log: l"


# -- 3. a full disk stops the cv; --resume after freeing space finishes it ---------------------------------------

BALLAST = '''

class BallastData(BlobData):
    """Fold ``fill_on_fold`` fills the disk of ``ballast`` once (``marker`` remembers it), then trains."""
    def __init__(self, ballast: str = "", marker: str = "", fill_on_fold: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.ballast, self.marker, self.fill_on_fold = ballast, marker, fill_on_fold

    def setup(self, stage=None):
        import os
        if self.fold == self.fill_on_fold and stage == "fit" and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            with open(self.ballast, "wb") as fh:
                try:
                    while True:
                        fh.write(b"\\0" * 65536)
                        fh.flush()
                except OSError:
                    pass
        super().setup(stage)
'''


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs (root only; skipped where mount is not permitted)."""
    import subprocess

    mnt = tmp_path / "disk"
    mnt.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24M", "tmpfs", str(mnt)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here (needs root and CAP_SYS_ADMIN): {out.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_disk_stops_the_cv_with_one_line_and_resume_finishes_it(tmp_path, external_pkg, small_disk):
    import shlex
    import subprocess

    from tests.integration.test_faults import cv_cfg, tunecv, write

    init = external_pkg / "extmodels" / "__init__.py"
    init.write_text(init.read_text() + BALLAST)
    ballast = small_disk / "ballast"
    cfg = cv_cfg(tmp_path, artifact_dir=str(small_disk / "artifacts"))
    cfg["data"] = {"class_path": "extmodels.BallastData",
                   "init_args": {"batch_size": 32, "ballast": str(ballast), "marker": str(tmp_path / "filled"),
                                 "fill_on_fold": 1}}
    path = write(tmp_path / "c.yaml", cfg)
    out = subprocess.run(tunecv("cv", "--config", str(path), "--name", "full", "--quiet"), cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr[-3000:]
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("tunecv: error: the disk is full: no space left on device writing "), line
    assert str(small_disk) in line and " free there)" in line, line
    cv_dir = small_disk / "artifacts" / "_cross_validations" / "full"
    df = read_run_infos(cv_dir / "run_infos.parquet")  # whole: written atomically, old or new
    assert set(df["fold"]) <= {0, 1} and df.set_index("fold").loc[0, "status"] == "completed", df
    assert not (df["fold"] == 2).any()  # the cv started no run after the disk was full
    kept = {p.parent.name: p.stat().st_mtime_ns for p in cv_dir.glob("*/run_info.json")
            if '"completed"' in p.read_text()}
    assert len(kept) == 1
    ballast.unlink()
    words = shlex.split(line.split("finish with: ", 1)[1])
    assert words[:2] == ["tunecv", "cv"] and words[-1] == "--resume"
    again = subprocess.run(tunecv(*words[1:]), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    df = read_run_infos(cv_dir / "run_infos.parquet")
    assert len(df) == 3 and set(df["status"]) == {"completed"} and df["run_name"].is_unique
    assert {p.parent.name: p.stat().st_mtime_ns for p in cv_dir.glob("*/run_info.json") if p.parent.name in kept} \
        == kept  # the completed run was not trained again


def test_a_full_disk_stops_a_tune_and_resume_finishes_it_with_its_runs(tmp_path, external_pkg, small_disk):
    from tests.integration.test_faults import write
    from tunecv._disk import DiskFullError

    init = external_pkg / "extmodels" / "__init__.py"
    init.write_text(init.read_text() + BALLAST)
    ballast = small_disk / "ballast"
    cfg = tune_cfg(tmp_path, 3)
    cfg["artifact_dir"] = str(small_disk / "artifacts")
    cfg["data"] = {"class_path": "extmodels.BallastData",
                   "init_args": {"batch_size": 32, "ballast": str(ballast), "marker": str(tmp_path / "filled"),
                                 "fill_on_fold": 1}}
    write(tmp_path / "tune.yaml", cfg)
    with pytest.raises(DiskFullError) as info:
        tune(cfg, name="tf", progress=False)
    line = str(info.value)
    assert "\n" not in line and line.startswith("the disk is full: no space left on device writing ") and \
        "the tune stopped starting runs" in line and line.endswith("--name tf --resume"), line
    tdir = small_disk / "artifacts" / "tf"
    kept = {p.parent.name: p.stat().st_mtime_ns for p in tdir.glob("*-cv*/*-run-*/run_info.json")
            if '"completed"' in p.read_text()}
    assert len(kept) == 1  # fold 0 of the first trial
    ballast.unlink()
    result = tune(cfg, name="tf", resume=True, progress=False)
    assert result.n_finished == 3
    after = {p.parent.name: p.stat().st_mtime_ns for p in tdir.glob("*-cv*/*-run-*/run_info.json")}
    assert {k: after[k] for k in kept} == kept and len(after) == 6
    df = read_run_infos(tdir / "run_infos.parquet")
    assert df["run_name"].is_unique and len(df) == 6 and set(df["status"]) == {"completed"}


# -- 4. storage connections that survive a database restart ------------------------------------------------------

def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.postgres
def test_workers_of_a_postgres_tune_ride_out_two_server_restarts(tmp_path, external_pkg):
    import os
    import shutil
    import subprocess
    import tempfile

    from tests.integration.postgres import postgres_server, start_server, stop_server, unavailable_reason
    from tests.integration.test_faults import tunecv, write

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="tunecv-pg-"))
    os.chmod(root, 0o755)
    procs: list[subprocess.Popen] = []
    try:
        with postgres_server(root / "pg") as url:
            cfg = tune_cfg(tmp_path, 4, storage=url)
            cfg["data"]["init_args"]["sleep"] = 0.3
            path = write(tmp_path / "tune.yaml", cfg)
            procs += [subprocess.Popen(tunecv("tune", "--config", str(path), "--name", "pg"), cwd=tmp_path,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env={**os.environ, "TUNECV_STORAGE_RETRY_S": "120"}) for _ in range(4)]
            tdir = tmp_path / "artifacts" / "pg"
            for finished in (1, 3):  # down twice: after the first run, and after two more
                _wait_for(lambda n=finished: len(list(tdir.glob("*/*/run_info.json"))) >= n
                          or any(p.poll() is not None for p in procs), 300, f"{finished} finished runs")
                stop_server(root / "pg")
                time.sleep(3)  # the server is down for a while: nothing to poll for
                start_server(root / "pg")
            errs = []
            for p in procs:
                err, _ = p.communicate(timeout=600)
                errs.append(err)
                assert p.returncode == 0, err[-3000:]
            assert any("retrying" in e for e in errs), [e[-2000:] for e in errs]  # the restarts were met
            study = optuna.load_study(study_name="pg", storage=url)
            done = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                           optuna.trial.TrialState.PRUNED)]
            assert len(done) == 4 and len({t.user_attrs["cv_name"] for t in done}) == 4
            assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
            df = read_run_infos(tdir / "run_infos.parquet")
            assert df["run_name"].is_unique and len(df) == 8 and df["cv_name"].nunique() == 4
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(root, ignore_errors=True)
