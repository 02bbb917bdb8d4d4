"""``executor: slurm`` against a real single-node SLURM cluster (tests/slurm/cluster.py).

The cluster has a GRES ``gpu:4`` backed by placeholder devices: SLURM hands out GPU ids and sets
``CUDA_VISIBLE_DEVICES`` per job, but there is no GPU, so the training inside each job runs on CPU
(``accelerator: cpu``). What is tested of the GPU paths is the assignment: each job gets the GPUs it
asked for, ``devices`` inside the job maps onto them, ``runs_per_device`` packing inside a job, and
one GPU per worker of the job-array template.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import REPO, tiny_digits
from tunecv.cv import cross_validate

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(240)]

SLOW = {"class_path": "tests.slurm.helpers.SlowEpochs", "init_args": {"seconds": 1.5}}


@pytest.fixture
def cluster(slurm_cluster):
    yield slurm_cluster
    slurm_cluster.run("scancel", "--full", "-u", "root", check=False)  # a failed test leaves nothing queued
    slurm_cluster.wait_idle(60)


def slurm_cfg(tmp_path: Path, *, slow: bool = False, epochs: int = 1, n_folds: int = 2, **extra) -> dict:
    trainer = {"max_epochs": epochs, "enable_model_summary": False, "enable_progress_bar": False}
    if slow:
        trainer["callbacks"] = [SLOW]
    cfg = tiny_digits(tmp_path, executor="slurm", trainer=trainer, early_stopping=None,
                      cv={"n_seeds": 1, "n_folds": n_folds, "scoring_metric": ["val/acc"]},
                      slurm={"time": 10, "poll_interval": 0.3})
    cfg["data"]["init_args"]["limit"] = 300
    cfg.update(extra)
    return cfg


def run_dirs(cv_dir: Path) -> list[Path]:
    return sorted(p for p in cv_dir.iterdir() if p.is_dir() and p.name != "slurm")


def job_ids(run_dir: Path) -> list[str]:
    data = json.loads((run_dir / "run_info.json").read_text()) if (run_dir / "run_info.json").exists() else {}
    return list((data.get("executor") or {}).get("job_ids", []))


def jobs_named(cluster, name: str) -> list[str]:
    out = cluster.run("squeue", "-h", "--states=all", "--name", name, "-o", "%i")
    return [line.strip() for line in out.splitlines() if line.strip()]


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def job_state(cluster, job_id: str) -> str:
    return cluster.run("squeue", "-h", "--states=all", "-j", job_id, "-o", "%T", check=False).strip()


def in_thread(fn, *args, **kwargs):
    out: dict = {}

    def target():
        try:
            out["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the test
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


# -- a cv and a tune on SLURM -------------------------------------------------------------------------------

def test_cv_on_slurm_runs_each_run_as_a_job_with_the_local_results(tmp_path, cluster):
    cfg = slurm_cfg(tmp_path, strategy="cv-parallel")
    res = cross_validate(cfg, name="onslurm", progress=False)
    local = cross_validate({**cfg, "executor": "local", "strategy": "auto"}, name="onlocal", progress=False)

    assert res.n_completed == 2 and len(res.run_infos) == 2
    ids = []
    for run_dir in run_dirs(res.cv_dir):
        recorded = job_ids(run_dir)
        assert len(recorded) == 1, recorded  # one job per run
        ids += recorded
        assert jobs_named(cluster, f"tunecv-{run_dir.name}") == recorded
        assert (run_dir / "slurm" / f"{recorded[0]}_0_log.out").is_file()
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["devices"] == [0]
    assert len(set(ids)) == 2
    merged = res.run_infos.merge(local.run_infos, on=["fold", "seed"], suffixes=("_slurm", "_local"))
    assert len(merged) == 2
    # same folds, same seeds, same CPU training: the same numbers
    assert np.allclose(merged["val/acc_slurm"], merged["val/acc_local"], atol=1e-6)
    assert res.score == pytest.approx(local.score, abs=1e-6)


def test_tune_parallel_tune_on_slurm_runs_each_cv_as_one_job(tmp_path, cluster, monkeypatch):
    from tunecv.progress import TuneProgress
    from tunecv.tune import tune

    shown: list[str] = []  # what the tune's bar showed of the jobs (the real bar, its text recorded)
    job_states = TuneProgress.job_states

    def record(self, counts):
        job_states(self, counts)
        shown.append(self.jobs)

    monkeypatch.setattr(TuneProgress, "job_states", record)

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"hyperparameters": {"model.init_args.lr": [0.01, 0.05]}}))
    cfg = slurm_cfg(tmp_path, n_folds=2, strategy="tune-parallel",
                    tune={"search_space": str(space), "n_trials": "grid", "sampler": "grid", "pruner": "none"})
    result = tune(cfg, name="slurmtune", progress=True)
    assert "2 running" in shown, shown  # both trials' jobs ran at once, from squeue's view
    df = result.run_infos
    assert len(df) == 4 and set(df["status"]) == {"completed"}
    assert sorted(df["model.init_args.lr"]) == [0.01, 0.01, 0.05, 0.05]
    tune_dir = tmp_path / "artifacts" / "slurmtune"
    cv_dirs = sorted(tune_dir.glob("slurmtune-cv*"))
    assert len(cv_dirs) == 2
    per_cv = []
    for cv_dir in cv_dirs:
        ids = {tuple(job_ids(r)) for r in run_dirs(cv_dir)}
        assert len(ids) == 1 and len(next(iter(ids))) == 1, ids  # both runs of the cv: one job
        (job_id,) = next(iter(ids))
        per_cv.append(job_id)
        assert (cv_dir / "slurm" / f"{job_id}_0_log.out").is_file()  # the cv's job keeps its files there
        assert job_state(cluster, job_id) == "COMPLETED"
    assert len(set(per_cv)) == 2  # one job per cv


# -- requeue, cancel, a killed driver ------------------------------------------------------------------------

def release_requeued(cluster, job_id: str, what: str) -> None:
    """Wait until SLURM holds the requeued job back (BeginTime), then release it at once, as an admin may."""
    wait_for(lambda: "BeginTime" in cluster.run("squeue", "-h", "-j", job_id, "-o", "%r", check=False), 60, what)
    cluster.run("scontrol", "update", f"JobId={job_id}", "StartTime=now")


def cv_caught_mid_run(tmp_path, cluster, cfg: dict, name: str):
    """Start the one-run cv ``name`` in a thread and wait for its first ``last.ckpt``: the run is mid-run, its
    job RUNNING. ``(thread, out, run_dir, job_id)``."""
    thread, out = in_thread(cross_validate, cfg, name=name, progress=False)
    cv_dir = tmp_path / "artifacts" / "_cross_validations" / name
    last = wait_for(lambda: next(iter(cv_dir.glob("*/checkpoints/last.ckpt")), None), 120,
                    "the first epoch's last.ckpt")
    run_dir = last.parents[1]
    (job_id,) = job_ids(run_dir)
    assert job_state(cluster, job_id) == "RUNNING"
    return thread, out, run_dir, job_id


def test_a_requeued_job_continues_its_run_from_the_last_checkpoint(tmp_path, cluster):
    cfg = slurm_cfg(tmp_path, slow=True, epochs=4, n_folds=1)
    thread, out, run_dir, job_id = cv_caught_mid_run(tmp_path, cluster, cfg, "requeue")  # epochs 2-4 to come
    cluster.run("scontrol", "requeue", job_id)
    release_requeued(cluster, job_id, "the requeued job to wait for its begin time")
    thread.join(180)
    assert not thread.is_alive() and "error" not in out, out.get("error")
    res = out["value"]
    assert len(res.run_infos) == 1 and res.run_infos["status"].tolist() == ["completed"]
    assert job_ids(run_dir) == [job_id]  # the same job, started again: nothing submitted twice
    assert "Restarts=1" in cluster.run("scontrol", "show", "job", job_id)
    # the first attempt's epochs are kept aside; the second attempt went on from there, not from epoch 0
    first = (run_dir / "csv" / "metrics.1.csv").read_text().splitlines()
    second = (run_dir / "csv" / "metrics.csv").read_text().splitlines()
    first_epochs = {int(line.split(",")[0]) for line in first[1:]}
    second_epochs = {int(line.split(",")[0]) for line in second[1:]}
    assert 0 in first_epochs and 0 not in second_epochs and max(second_epochs) >= 3
    log = (run_dir / "slurm" / f"{job_id}_0_log.err").read_text()
    assert "DUE TO JOB REQUEUE" in log


def test_the_time_limit_signal_checkpoints_requeues_and_the_run_continues_from_last_ckpt(tmp_path, cluster):
    """submitit's time-limit path, with real signals: SIGUSR2 to the job's steps (what SLURM sends
    ``signal_delay_s`` before the limit: ``#SBATCH --signal=USR2@N``) -> submitit's handler finds the job
    timed out (a 2-minute limit), requeues it with ``scontrol requeue`` and exits; the job starts again and the
    run goes on from its ``last.ckpt``.

    The test sends the signal itself (``scancel --signal=USR2``, the same delivery to the job's steps) once the
    first checkpoint exists: SLURM checks time limits every 30 s, too coarse to hit a chosen epoch.
    """
    cfg = slurm_cfg(tmp_path, slow=True, epochs=2, n_folds=1)
    cfg["slurm"].update(time=2, signal_delay_s=1, max_num_timeout=2)  # SLURM's own warning: after the test
    thread, out, run_dir, job_id = cv_caught_mid_run(tmp_path, cluster, cfg, "usr2")
    cluster.run("scancel", "--signal=USR2", job_id)  # submitit requeues it
    release_requeued(cluster, job_id, "the job to be requeued by submitit")
    thread.join(120)
    assert not thread.is_alive() and "error" not in out, out.get("error")
    assert out["value"].run_infos["status"].tolist() == ["completed"]
    assert job_ids(run_dir) == [job_id]  # the same job, started again: nothing submitted twice
    assert "Restarts=1" in cluster.run("scontrol", "show", "job", job_id)
    log = "".join((run_dir / "slurm" / f"{job_id}_0_log.{ext}").read_text() for ext in ("out", "err"))
    assert "Caught signal SIGUSR2" in log and "this job is timed-out" in log, log[-3000:]
    assert f"Requeued job {job_id} (1 remaining timeouts)" in log, log[-3000:]  # max_num_timeout 2, one used
    first = (run_dir / "csv" / "metrics.1.csv").read_text().splitlines()
    second = (run_dir / "csv" / "metrics.csv").read_text().splitlines()
    first_epochs = {int(line.split(",")[0]) for line in first[1:]}
    second_epochs = {int(line.split(",")[0]) for line in second[1:]}
    assert 0 in first_epochs and 0 not in second_epochs and max(second_epochs) >= 1  # went on from last.ckpt


def test_a_cancelled_job_is_a_failed_run_and_the_cv_goes_on(tmp_path, cluster):
    cfg = slurm_cfg(tmp_path, slow=True, epochs=3)  # in series: one job at a time
    thread, out = in_thread(cross_validate, cfg, name="cancel", progress=False)
    cv_dir = tmp_path / "artifacts" / "_cross_validations" / "cancel"
    first = wait_for(lambda: [r for r in run_dirs(cv_dir) if job_ids(r)] if cv_dir.exists() else None, 120,
                     "the first job")[0]
    (job_id,) = job_ids(first)
    wait_for(lambda: job_state(cluster, job_id) == "RUNNING", 60, "the first job to run")
    cluster.run("scancel", job_id)
    # while the second run trains, `tunecv report` shows its job from SLURM's queue
    from tunecv.report import report

    wait_for(lambda: (cv_dir / "run_infos.parquet").exists(), 60, "the cancelled run's row")
    summary = report(cv_dir, fmt="none", plots=False)
    assert summary["counts"]["recorded"] == 1  # the second run needs far longer than this
    assert summary["counts"]["running"] + summary["counts"]["queued"] == 1, summary["jobs"]
    thread.join(180)
    assert not thread.is_alive() and "error" not in out, out.get("error")
    df = out["value"].run_infos.set_index("run_name")
    assert sorted(df["status"]) == ["completed", "failed"]
    error = df.loc[df["status"] == "failed", "error"].iloc[0]
    assert f"SLURM job {job_id}" in error and "CANCELLED" in error
    assert str(first / "slurm" / f"{job_id}_0_log.out") in error  # where to look


def test_a_killed_driver_resumes_without_submitting_a_job_twice(tmp_path, cluster):
    cfg = slurm_cfg(tmp_path, slow=True, epochs=3, strategy="cv-parallel")
    config = tmp_path / "cv.yaml"
    config.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "tunecv", "cv", "--config", str(config), "--name", "killed", "--quiet"]
    driver = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cv_dir = tmp_path / "artifacts" / "_cross_validations" / "killed"
    try:
        wait_for(lambda: cv_dir.exists() and len([r for r in run_dirs(cv_dir) if job_ids(r)]) == 2, 120,
                 "both jobs submitted")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    submitted = {r.name: job_ids(r) for r in run_dirs(cv_dir)}
    assert all(len(ids) == 1 for ids in submitted.values())
    assert any(job_state(cluster, ids[0]) in ("PENDING", "RUNNING") for ids in submitted.values())

    resumed = subprocess.run([*cmd, "--resume"], cwd=REPO, capture_output=True, text=True, timeout=200)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    from tunecv.results import read_run_infos

    df = read_run_infos(cv_dir / "run_infos.parquet")
    assert len(df) == 2 and set(df["status"]) == {"completed"}
    for name, ids in submitted.items():
        assert job_ids(cv_dir / name) == ids  # re-attached, not submitted again
        assert jobs_named(cluster, f"tunecv-{name}") == ids


def test_jobs_that_squeue_has_forgotten_come_from_sacct(tmp_path, cluster):
    """The sacct fallback, on the cluster's real accounting (slurmdbd on MariaDB): once ``squeue`` has
    purged a finished job (``MinJobAge``, lowered to 2 s for this test), its state comes from ``sacct`` for
    the executor, ``tunecv report`` and ``--resume`` (an ended job is not re-attached)."""
    if not cluster.accounting:
        pytest.skip("the test cluster runs without accounting: apt-get install -y slurmdbd mariadb-server")
    from tests.slurm.jobs import where
    from tunecv.executors._slurm import SlurmExecutor, SlurmJobError, job_states, query_states

    text = cluster.conf.read_text()
    cluster.conf.write_text(text.replace("MinJobAge=900", "MinJobAge=2"))
    cluster.run("scontrol", "reconfigure")
    try:
        done_dir, gone_dir = tmp_path / "runs" / "done-aaaaaaaa", tmp_path / "runs" / "gone-bbbbbbbb"
        with SlurmExecutor(tmp_path / "logs", {"time": 5, "cpus_per_task": 1}, poll_interval=0.3) as ex:
            done = ex.submit_run(done_dir, where)
            gone = ex.submit_run(gone_dir, where, 60.0)
            assert done.result(timeout=60)["SLURM_JOB_ID"] == done.job_id
            wait_for(lambda: gone.state == "running", 60, "the second job to run")
            gone.cancel()
            with pytest.raises(SlurmJobError, match="CANCELLED"):
                gone.result(timeout=60)
            ids = [done.job_id, gone.job_id]
            wait_for(lambda: not any(job_state(cluster, i) for i in ids), 40, "squeue to forget both jobs")
            assert query_states(ids) == {done.job_id: ("COMPLETED", ""), gone.job_id: ("CANCELLED", "")}
            assert job_states([done_dir, gone_dir]) == {done_dir: "finished", gone_dir: "cancelled"}
            assert ex.reattach(gone_dir) is None  # ended: a resumed driver submits that run again
    finally:
        cluster.conf.write_text(text)
        cluster.run("scontrol", "reconfigure")


# -- GPU assignment on placeholder GPUs (GRES) ----------------------------------------------------------------

def test_each_job_gets_the_gpus_it_asked_for_and_devices_map_onto_them(tmp_path, cluster, monkeypatch):
    from tunecv.config import config_from_dict

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the job then takes its thread count from SLURM
    from tunecv.executors import make_executor_from_config

    one = config_from_dict({**slurm_cfg(tmp_path, strategy="cv-parallel"),
                            "slurm": {"gpus_per_job": 1, "time": 5, "poll_interval": 0.3}})
    with make_executor_from_config(one, parallel=True, accelerator="cpu") as ex:
        assert ex.run_overrides()["devices"] == [0]
        from tests.slurm.jobs import where

        jobs = [ex.submit(where, 3.0) for _ in range(2)]  # 2 CPUs: both run at once
        # what the progress bar shows (queued / running / finished) comes from squeue
        wait_for(lambda: {j.state for j in jobs} == {"running"}, 60, "both jobs running")
        seen = [j.result(timeout=120) for j in jobs]
        assert {j.state for j in jobs} == {"finished"}
    assert {s["OMP_NUM_THREADS"] for s in seen} == {"1"}  # cpus_per_job, not every core of the node
    visible = sorted(s["CUDA_VISIBLE_DEVICES"] for s in seen)
    assert len(set(visible)) == 2 and all(len(v.split(",")) == 1 for v in visible)  # one GPU each, not shared

    two = config_from_dict({**slurm_cfg(tmp_path), "slurm": {"gpus_per_job": 2, "time": 5, "poll_interval": 0.3}})
    with make_executor_from_config(two, parallel=False, accelerator="cpu") as ex:
        assert ex.run_overrides() == {"num_nodes": 1, "devices": [0, 1], "strategy": "ddp"}
        seen2 = ex.submit(where).result(timeout=120)
    # two GPUs, one task per GPU: Lightning's devices [0, 1] are exactly the job's two GPUs
    assert len(seen2["CUDA_VISIBLE_DEVICES"].split(",")) == 2 and seen2["SLURM_NTASKS"] == "2"
    assert seen2["SUBMITIT_EXECUTOR"] == "slurm"


def test_runs_per_device_packs_runs_onto_the_gpus_of_one_job(tmp_path, cluster):
    from tests.slurm.jobs import pack
    from tunecv.executors._slurm import SlurmExecutor

    # a job holding GPU 0, so that the packed job gets other GPUs than the first ones
    cluster.run("sbatch", "--gres=gpu:1", "--job-name=blocker", f"--output={tmp_path / 'blocker.out'}",
                "--wrap", "sleep 60")
    wait_for(lambda: "RUNNING" in cluster.run("squeue", "-h", "--name", "blocker", "-o", "%T"), 60, "the blocker")
    with SlurmExecutor(tmp_path / "logs", {"gres": "gpu:2", "time": 5, "cpus_per_task": 1},
                       poll_interval=0.3) as ex:
        rows = ex.submit(pack, 2, 4).result(timeout=150)
    cluster.run("scancel", "--name", "blocker")
    job_gpus = rows[0]["job_visible"].split(",")
    assert len(job_gpus) == 2 and "0" not in job_gpus  # GPU 0 is the blocker's
    seen = sorted(r["CUDA_VISIBLE_DEVICES"] for r in rows)
    assert seen == sorted(job_gpus * 2)  # each of the job's GPUs carries two runs
    # two runs per GPU at once: the four 1-second sleeps overlap
    assert max(r["end"] for r in rows) - min(r["start"] for r in rows) < 3.5


# -- the sbatch templates of configs/slurm/ ------------------------------------------------------------------

def test_the_tune_worker_job_array_template_finishes_exactly_n_trials(tmp_path, cluster):
    import optuna

    storage = tmp_path / "tune.log"
    env = {**os.environ, "TUNECV_STORAGE": f"journal://{storage}",
           "TUNECV_ARGS": f"--artifact_dir {tmp_path / 'artifacts'} --tune.n_trials 3 --accelerator cpu "
                          f"--trainer.max_epochs 1 --cv.n_folds 1 --data.init_args.limit 300 --tune.pruner none"}
    # as the docs say, with a 2-task array and small resources for this 2-CPU test cluster
    out = subprocess.run(["sbatch", "--array=0-1", "--cpus-per-task=1", "--time=10",
                          f"--output={tmp_path}/worker-%A_%a.out", "configs/slurm/tune_workers.sbatch"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    array_id = out.stdout.split()[-1]
    wait_for(lambda: not cluster.run("squeue", "-h", "-j", array_id, "-o", "%i", check=False).strip(), 200,
             "both workers to finish")
    logs = sorted(tmp_path.glob("worker-*.out"))
    assert len(logs) == 2
    visible = []
    for log in logs:
        text = log.read_text()
        assert "CUDA_VISIBLE_DEVICES=" in text, text[-2000:]
        visible.append(text.split("CUDA_VISIBLE_DEVICES=", 1)[1].split()[0])
    assert len(set(visible)) == 2 and all(len(v.split(",")) == 1 for v in visible)  # one GPU per worker
    states = cluster.run("squeue", "-h", "--states=all", "-j", array_id, "-o", "%T").split()
    assert states == ["COMPLETED", "COMPLETED"], [log.read_text()[-2000:] for log in logs]
    study = optuna.load_study(study_name="digits-shared", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(storage))))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3


def test_the_multinode_train_template_runs_one_ddp_run_over_srun_tasks(tmp_path, cluster):
    """The one-node stand-in of configs/slurm/multinode_train.sbatch: 2 srun tasks, one DDP run (gloo on CPU)."""
    env = {**os.environ, "TUNECV_ARGS": f"--artifact_dir {tmp_path / 'artifacts'} --accelerator cpu --num_nodes 1 "
                                        f"--devices [0,1] --trainer.max_epochs 1 --data.init_args.limit 300"}
    out = subprocess.run(["sbatch", "--nodes=1", "--ntasks-per-node=2", "--gres=gpu:2", "--cpus-per-task=1",
                          "--time=10", f"--output={tmp_path}/train-%j.out", "configs/slurm/multinode_train.sbatch"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.split()[-1]
    wait_for(lambda: job_state(cluster, job_id) in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), 200,
             "the training job to end")
    log = (tmp_path / f"train-{job_id}.out").read_text()
    assert job_state(cluster, job_id) == "COMPLETED", log[-3000:]
    assert "Starting with 2 processes" in log  # one run, two ranks from SLURM's tasks
    (info,) = (tmp_path / "artifacts" / "_runs").glob("digits-multinode-*/run_info.json")
    assert json.loads(info.read_text())["status"] == "completed"


# -- tune-parallel on SLURM (one job per cv): a killed driver, a pruned trial ------------------------------------

def tune_jobs(cluster, tune_name: str) -> dict[str, list[str]]:
    """``{job name: [job ids]}`` of every job of the tune SLURM knows (squeue keeps ended ones MinJobAge s)."""
    out = cluster.run("squeue", "-h", "--states=all", "-o", "%j|%i")
    jobs: dict[str, list[str]] = {}
    for line in out.splitlines():
        name, _, job_id = line.strip().partition("|")
        if name.startswith(f"tunecv-{tune_name}-cv"):
            jobs.setdefault(name, []).append(job_id)
    return jobs


def cv_job_ids(cv_dir: Path) -> set[str]:
    """The job ids recorded in the run folders of one cv of a tune-parallel tune."""
    return {i for r in run_dirs(cv_dir) for i in job_ids(r)}


def completed_in(cv_dir: Path) -> int:
    from tunecv.train import read_result

    return sum(1 for r in run_dirs(cv_dir) if (res := read_result(r)) is not None and res.status == "completed")


def test_a_killed_tune_parallel_driver_resumes_onto_the_cv_jobs_it_left(tmp_path, cluster):
    """SIGKILL of a `tunecv tune` driver (tune-parallel: each cv one SLURM job) while one cv's job has finished
    and another's runs, then ``--resume``: the jobs (under slurmd, not in the driver's process group) go on;
    the resumed driver re-attaches to them, collects the finished cv, submits only the cvs never submitted."""
    import optuna

    from tunecv.results import read_run_infos

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"hyperparameters": {"model.init_args.lr": [0.01, 0.03, 0.05]}}))
    cfg = slurm_cfg(tmp_path, slow=True, epochs=2, n_folds=2, strategy="tune-parallel",
                    tune={"search_space": str(space), "n_trials": "grid", "sampler": "grid", "pruner": "none"})
    cfg["slurm"]["max_jobs"] = 2  # 2 CPUs: two cv jobs at once, the third when one has ended
    config = tmp_path / "tune.yaml"
    config.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "tunecv", "tune", "--config", str(config), "--name", "tk", "--quiet"]
    tune_dir = tmp_path / "artifacts" / "tk"

    def one_done_one_live():
        cvs = sorted(tune_dir.glob("tk-cv*"))
        done = [c for c in cvs if completed_in(c) == 2]
        # a cv whose job has two runs to go (SlowEpochs: several seconds each), so it is still live after the kill
        live = [c for c in cvs if completed_in(c) == 0 and any(job_state(cluster, i) in ("PENDING", "RUNNING")
                                                               for i in cv_job_ids(c))]
        return (done, live) if done and live else None

    driver = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)  # its own process group, killed below
    try:
        _done, live = wait_for(one_done_one_live, 150, "one cv finished and another's job queued or running")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(30)
    before = {c.name: cv_job_ids(c) for c in sorted(tune_dir.glob("tk-cv*"))}
    assert all(len(ids) == 1 for ids in before.values()), before  # one job per cv
    (live_id,) = before[live[0].name]
    assert job_state(cluster, live_id) in ("PENDING", "RUNNING")  # the driver's death left the job alone

    resumed = subprocess.run([*cmd, "--resume"], cwd=REPO, capture_output=True, text=True, timeout=200)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    cv_dirs = sorted(tune_dir.glob("tk-cv*"))
    assert len(cv_dirs) == 3
    for cv_dir in cv_dirs:
        ids = cv_job_ids(cv_dir)
        assert len(ids) == 1, (cv_dir.name, ids)  # never a second job for the same cv
        if cv_dir.name in before:
            assert ids == before[cv_dir.name], cv_dir.name  # re-attached or collected, not submitted again
    jobs = tune_jobs(cluster, "tk")
    assert len(jobs) == 3 and all(len(ids) == 1 for ids in jobs.values()), jobs  # what SLURM saw: 3 jobs in all
    assert sorted(i for ids in jobs.values() for i in ids) == sorted(i for c in cv_dirs for i in cv_job_ids(c))
    assert all(job_state(cluster, i) == "COMPLETED" for ids in jobs.values() for i in ids)

    df = read_run_infos(tune_dir / "run_infos.parquet")
    assert len(df) == 6 and df["run_name"].is_unique and set(df["status"]) == {"completed"}
    assert sorted(df["model.init_args.lr"]) == [0.01, 0.01, 0.03, 0.03, 0.05, 0.05]
    study = optuna.load_study(study_name="tk", storage=f"sqlite:///{tune_dir / 'optuna.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3 and sorted(t.params["model.init_args.lr"] for t in complete) == [0.01, 0.03, 0.05]
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]


def test_a_pruned_trial_cancels_its_cv_job_and_keeps_the_finished_runs(tmp_path, cluster):
    """tune-parallel on SLURM, one job at a time: two good trials (the median pruner's startup), then a
    hopeless one. The pruner is consulted in the driver after each run the cv's job completes; when it prunes,
    the driver cancels the job: the run in progress is stopped, the runs after it never start."""
    import optuna

    from tunecv.results import read_run_infos

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"hyperparameters": {"model.init_args.lr": [0.05, 0.04, 0.00001]}}))
    cfg = slurm_cfg(tmp_path, slow=True, epochs=1, n_folds=4, strategy="tune-parallel",
                    tune={"search_space": str(space), "n_trials": "grid", "sampler": "grid", "pruner": "median"})
    cfg["split"]["total_folds"] = 4
    cfg["slurm"]["max_jobs"] = 1  # the trials one after the other: the third is pruned against the first two
    from tunecv.tune import tune

    result = tune(cfg, name="tp", progress=False)
    study = result.study
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2 + [optuna.trial.TrialState.PRUNED], states
    pruned = study.trials[2]
    cv_dir = tmp_path / "artifacts" / "tp" / "tp-cv2"
    (job_id,) = cv_job_ids(cv_dir)
    acct = cluster.run("sacct", "-n", "-P", "-X", "-j", job_id, "-o", "State,End") if cluster.accounting else ""
    assert job_state(cluster, job_id) == "CANCELLED", acct  # the driver cancelled the job

    df = read_run_infos(tmp_path / "artifacts" / "tp" / "run_infos.parquet")
    rows = df[df["trial"] == 2].sort_values("fold")
    assert len(rows) == 4 and set(rows["trial_state"]) == {"pruned"}  # every planned run has a row
    n_done = int((rows["status"] == "completed").sum())
    assert 2 <= n_done < 4 and set(rows["status"]) == {"completed", "pruned"}, rows[["fold", "status"]]
    assert sorted(pruned.intermediate_values) == list(range(n_done))  # the prune came after the last one
    for row in rows.itertuples():  # each row is one run folder, recorded once
        assert (cv_dir / f"{row.run_name}-{row.run_id}").is_dir()
    # nothing trained for nothing: at most the run in progress at the prune had started, none after it
    started = [r for r in run_dirs(cv_dir) if (r / "config.yaml").exists()]
    assert len(started) <= n_done + 1, [r.name for r in started]
    if cluster.accounting:
        # the job ended within seconds of the prune (decided within a poll of the last completed run's end),
        # and the trial was told within seconds of the job's end
        end = cluster.run("sacct", "-n", "-P", "-X", "-j", job_id, "-o", "End").strip()
        ended = time.mktime(time.strptime(end, "%Y-%m-%dT%H:%M:%S"))
        last_run = rows.loc[rows["status"] == "completed", "finished_at"].max().timestamp()
        assert ended - last_run < 8, (end, last_run)
        assert pruned.datetime_complete.timestamp() - ended < 8, (end, pruned.datetime_complete)


def test_a_cancelled_job_outside_a_fit_stops_at_the_sigterm_not_at_the_sigkill(tmp_path, cluster):
    """``scancel`` sends SIGTERM, then SIGKILL ``KillWait`` s later (5 s on the test cluster, 30 s by default).
    submitit ignores the SIGTERM and Lightning acts on it only inside a fit: a job between two runs (here a
    job that sleeps in plain Python) stops at the SIGTERM, with no result; the driver learns it at once."""
    from tests.slurm.jobs import where
    from tunecv.executors._slurm import SlurmExecutor, SlurmJobError

    with SlurmExecutor(tmp_path / "logs", {"time": 5, "cpus_per_task": 1}, poll_interval=0.3) as ex:
        job = ex.submit(where, 120.0)
        wait_for(lambda: job.state == "running", 60, "the job to run")
        time.sleep(1.0)  # into the sleep
        cancelled = time.monotonic()
        job.cancel()
        with pytest.raises(SlurmJobError, match="CANCELLED"):
            job.result(timeout=60)
        assert time.monotonic() - cancelled < 4  # SIGKILL would come after KillWait=5 s, a result grace after that
    log = Path(job.log).with_suffix(".err").read_text()
    assert "Bypassing signal SIGTERM" in log and "SIGTERM outside a fit: the job stops here" in log, log[-2000:]
    assert not job.submitit_job.paths.result_pickle.exists()
