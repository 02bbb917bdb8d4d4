"""``executor: ray`` on a real multi-node Ray cluster started on this machine (marker ``ray``).

One cluster for the whole module (Ray takes ~10 s to start on two cores): a head without CPUs and two
worker nodes with one CPU each, so every run lands on a worker node, and a test can kill that node.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, tiny_digits
from tests.integration.ray_cluster import ray_test_cluster, unavailable_reason
from tests.integration.ray_models import read_attempts
from tunecv.config import load_config
from tunecv.cv import RUN_INFOS, cross_validate
from tunecv.errors import ConfigError, RunFailedError
from tunecv.executors import make_executor_from_config
from tunecv.executors._ray import RayExecutor
from tunecv.results import read_run_infos
from tunecv.tune import tune

pytestmark = [pytest.mark.ray, pytest.mark.skipif(unavailable_reason() is not None,
                                                  reason=unavailable_reason() or "")]


@pytest.fixture(scope="module")
def ray_cluster():
    with ray_test_cluster(n_workers=2, num_gpus_per_worker=1) as cluster:
        yield cluster


def test_the_test_cluster_has_a_head_and_two_worker_nodes_that_run_tasks(ray_cluster):
    import ray

    assert len(ray_cluster.alive_node_ids()) == 3
    assert ray.cluster_resources()["CPU"] == 2

    @ray.remote(num_cpus=1)
    def where() -> tuple[str, int]:
        return ray.get_runtime_context().get_node_id(), os.getpid()

    nodes = {node for node, _ in ray.get([where.remote() for _ in range(4)])}
    assert nodes <= {n.node_id for n in ray_cluster.workers}
    print(f"ray test cluster started in {ray_cluster.start_seconds:.1f} s")


# -- helpers ----------------------------------------------------------------------------------------------


def ray_cfg(tmp_path: Path, **model_args) -> dict:
    """A tiny digits cv on ``executor: ray`` whose model records each attempt (tests/integration/ray_models.py).

    The pytest process is already a driver of the test cluster, so the executor uses that connection.
    """
    cfg = tiny_digits(tmp_path, executor="ray", strategy="cv-parallel")
    cfg["model"] = {"class_path": "tests.integration.ray_models.ProbeClassifier",
                    "init_args": {"hidden_dim": 16, "lr": 0.02, **model_args}}
    cfg["early_stopping"] = None
    return cfg


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def wait_for(predicate, timeout: float = 120.0, what: str = "a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for its parent does not)."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


def run_dirs(cv_dir: Path) -> list[Path]:
    return sorted(d for d in cv_dir.glob("*-run-*") if d.is_dir())


class InThread(threading.Thread):
    """Run a call in a thread and keep its value or exception."""

    def __init__(self, fn, *args, **kwargs):
        super().__init__(daemon=True)
        self.call = (fn, args, kwargs)
        self.value = self.error = None
        self.start()

    def run(self):
        fn, args, kwargs = self.call
        try:
            self.value = fn(*args, **kwargs)
        except BaseException as exc:
            self.error = exc

    def result(self, timeout: float = 240.0):
        self.join(timeout)
        assert not self.is_alive(), "the call did not finish in time"
        if self.error is not None:
            raise self.error
        return self.value


# -- tests ------------------------------------------------------------------------------------------------


def test_a_cv_on_ray_gives_the_local_executors_results(ray_cluster, tmp_path):
    cfg = tiny_digits(tmp_path)
    local = cross_validate(cfg, name="local", progress=False)
    on_ray = cross_validate({**cfg, "executor": "ray", "strategy": "cv-parallel"}, name="on-ray", progress=False)
    cols = ["fold", "seed", "status", "val/acc", "val/loss", "test/acc", "test/loss"]
    a = local.run_infos[cols].sort_values(["fold", "seed"]).reset_index(drop=True)
    b = on_ray.run_infos[cols].sort_values(["fold", "seed"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6)
    assert on_ray.score == pytest.approx(local.score, rel=1e-6)
    assert len(on_ray.run_infos) == 3 and set(on_ray.run_infos["status"]) == {"completed"}
    for row in on_ray.run_infos.itertuples():
        assert Path(row.checkpoint).is_file()


def test_the_executor_asks_ray_for_the_resources_of_each_run(ray_cluster, tmp_path):
    cfg = ray_cfg(tmp_path)
    sigterm = signal.getsignal(signal.SIGTERM)
    with make_executor_from_config(load_config(cfg), parallel=True, accelerator="cpu") as ex:
        assert isinstance(ex, RayExecutor) and ex.name == "ray" and ex.pinned
        with pytest.raises(SystemExit) as stop:  # SIGTERM ends the driver through shutdown(kill=True): 143
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        assert stop.value.code == 143
        assert ex.n_slots == 2  # two worker nodes with one CPU each
        assert ex.run_overrides() == {"devices": [0], "strategy": "auto", "num_nodes": 1}
    assert signal.getsignal(signal.SIGTERM) is sigterm  # the handler from before is back
    with make_executor_from_config(load_config(cfg), parallel=False, accelerator="cpu") as ex:
        assert ex.n_slots == 1  # strategy in series: one run at a time, still on the cluster
    packed = load_config({**cfg, "runs_per_device": 2, "ray": {"num_gpus": 1, "num_cpus": 0.5}})
    with make_executor_from_config(packed, parallel=True, accelerator="cpu") as ex:
        assert ex.num_gpus == 0.5 and ex.n_slots == 4  # 2 GPUs / 0.5, 2 CPUs / 0.5
    ddp = load_config({**cfg, "ray": {"num_gpus": 2, "num_cpus": 1}})
    with make_executor_from_config(ddp, parallel=True, accelerator="cpu") as ex:
        assert ex.n_slots == 1  # one run holds both GPUs
        assert ex.run_overrides() == {"devices": [0, 1], "strategy": "ddp_fork", "num_nodes": 1}
    with pytest.raises(ConfigError, match=r"no run fits on the Ray cluster.*`ray.num_gpus` 3"):
        make_executor_from_config(load_config({**cfg, "ray": {"num_gpus": 3}}), parallel=True, accelerator="cpu")


def test_a_run_that_raises_is_a_failed_run_and_the_others_finish(ray_cluster, tmp_path):
    cfg = ray_cfg(tmp_path, fail_on_seed=21)
    cfg["cv"] = {"n_seeds": 2, "n_folds": 1, "scoring_metric": ["val/acc"]}
    res = cross_validate(cfg, name="raises", progress=False)
    rows = res.run_infos.set_index("seed")
    assert len(res.run_infos) == 2
    assert rows.loc[42, "status"] == "completed"
    assert rows.loc[21, "status"] == "failed"
    assert rows.loc[21, "error"].startswith("RuntimeError: seed 21 fails on purpose")


def test_a_tune_parallel_tune_runs_its_cvs_on_the_cluster(ray_cluster, tmp_path):
    space = write(tmp_path / "space.yaml", {"hyperparameters": {"model.init_args.lr": [0.01, 0.05, 0.1]}})
    cfg = {**ray_cfg(tmp_path), "strategy": "tune-parallel",
           "cv": {"n_seeds": 1, "n_folds": 2, "scoring_metric": ["val/acc"]},
           "tune": {"search_space": str(space), "n_trials": "grid", "sampler": "grid"}}
    res = tune(cfg, name="raytune", progress=False)
    df = res.run_infos
    assert len(df) == 6 and set(df["status"]) == {"completed"} and df["run_name"].is_unique
    assert sorted(df["model.init_args.lr"].unique()) == [0.01, 0.05, 0.1]
    workers = {n.node_id for n in ray_cluster.workers}
    for row in df.itertuples():
        (attempt,) = read_attempts(Path(row.checkpoint).parents[1])
        assert attempt["node"] in workers


def test_fractional_gpus_pack_two_runs_per_gpu_and_each_run_sees_its_gpu_as_device_0(ray_cluster, tmp_path):
    # Each worker node declares one GPU to Ray; there is no real GPU, so the runs train on CPU
    # (accelerator cpu) and only Ray's assignment (CUDA_VISIBLE_DEVICES, ray.get_gpu_ids) is checked.
    cfg = {**ray_cfg(tmp_path), "runs_per_device": 2, "ray": {"num_gpus": 1, "num_cpus": 0.5}}
    cfg["cv"] = {"n_seeds": 1, "n_folds": 2, "scoring_metric": ["val/acc"]}
    res = cross_validate(cfg, name="gpus", progress=False)
    assert res.n_completed == 2
    for run_dir in run_dirs(tmp_path / "artifacts" / "_cross_validations" / "gpus"):
        (attempt,) = read_attempts(run_dir)
        assert len(attempt["gpus"]) == 1 and attempt["cuda_visible_devices"] == attempt["gpus"][0]
        assert attempt["devices"] == 1  # `devices` inside the run: its one GPU, as device 0


def test_a_run_whose_node_dies_is_retried_from_its_last_checkpoint_then_failed_if_it_dies_again(
        ray_cluster, tmp_path):
    cfg = ray_cfg(tmp_path, epoch_sleep=1.0)
    cfg["trainer"] = {**cfg["trainer"], "max_epochs": 4}
    cfg["cv"] = {"n_seeds": 1, "n_folds": 1, "scoring_metric": ["val/acc"]}
    cvs = tmp_path / "artifacts" / "_cross_validations"

    def kill_the_node_of_attempt(run_dir: Path, attempt: int) -> None:
        wait_for(lambda: len(read_attempts(run_dir)) >= attempt and (run_dir / "checkpoints" / "last.ckpt").is_file(),
                 what=f"attempt {attempt} with a last checkpoint")
        ray_cluster.remove_worker(ray_cluster.worker_with_id(read_attempts(run_dir)[-1]["node"]))

    # dies once: Ray runs the task again on another node, and the run continues from its last checkpoint
    call = InThread(cross_validate, cfg, name="dies-once", progress=False)
    run_dir = wait_for(lambda: run_dirs(cvs / "dies-once"), what="the run folder")[0]
    kill_the_node_of_attempt(run_dir, 1)
    res = call.result()
    ray_cluster.add_worker(num_gpus=1)  # the cluster keeps its shape
    attempts = read_attempts(run_dir)
    assert len(attempts) == 2, attempts
    assert attempts[0]["node"] != attempts[1]["node"]
    assert attempts[1]["epoch"] >= 1  # continued from last.ckpt, not from scratch
    assert len(res.run_infos) == 1 and res.run_infos["status"].tolist() == ["completed"]
    epochs = pd.read_csv(run_dir / "csv" / "metrics.csv").dropna(subset=["val/acc"])["epoch"]
    assert epochs.min() >= 1 and epochs.max() == 3  # the second attempt trained only the epochs left

    # dies twice: a failed run with the node's error
    call = InThread(cross_validate, cfg, name="dies-twice", progress=False)
    run_dir = wait_for(lambda: run_dirs(cvs / "dies-twice"), what="the run folder")[0]
    kill_the_node_of_attempt(run_dir, 1)
    kill_the_node_of_attempt(run_dir, 2)
    with pytest.raises(RunFailedError, match="every run"):
        call.result()
    ray_cluster.add_worker(num_gpus=1)
    ray_cluster.add_worker(num_gpus=1)
    rows = read_run_infos(cvs / "dies-twice" / RUN_INFOS)
    assert len(rows) == 1 and rows["status"].tolist() == ["failed"]
    error = rows["error"][0]
    assert error.startswith("WorkerDiedError: Ray task") and "after 1 retry" in error
    assert read_attempts(run_dir)[-1]["node"] in error  # Ray's message names the node that died


def test_sigkill_or_sigterm_of_the_driver_then_resume_finishes_and_runs_nothing_twice(ray_cluster, tmp_path):
    cfg = ray_cfg(tmp_path, epoch_sleep=0.7)
    # 6 epochs: a run seen mid-run (it has a last checkpoint) must still be running when Ray ends the killed
    # driver's tasks; with 3 it could finish in that moment on an idle machine, leaving nothing cut short
    cfg["trainer"] = {**cfg["trainer"], "max_epochs": 6}
    cfg["cv"] = {"n_seeds": 2, "n_folds": 2, "scoring_metric": ["val/acc"]}
    cfg["name"] = "killed"
    path = write(tmp_path / "cv.yaml", cfg)
    cv_dir = tmp_path / "artifacts" / "_cross_validations" / "killed"
    # a driver of its own (a subprocess), joining the test cluster by its address
    base = [sys.executable, "-m", "tunecv", "cv", "--config", str(path), "--ray.address", ray_cluster.address]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    driver = subprocess.Popen(base, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # kill it once one run has finished and others are mid-run (they have a last checkpoint)
        wait_for(lambda: driver.poll() is not None or (
            any((d / "run_info.json").is_file() for d in run_dirs(cv_dir))
            and any((d / "checkpoints" / "last.ckpt").is_file() and not (d / "run_info.json").is_file()
                    for d in run_dirs(cv_dir))), what="one finished run and one mid-run")
        assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
    finished_before = {d.name for d in run_dirs(cv_dir) if (d / "run_info.json").is_file()}
    # Ray ends the tasks of a driver that is gone: the workers of the runs cut short die with it
    cut_short = [read_attempts(d)[-1]["pid"] for d in run_dirs(cv_dir)
                 if d.name not in finished_before and read_attempts(d)]
    # The kill can catch no run mid-run (seen in CI): a run seen mid-run may still write its run_info.json before
    # Ray ends the killed driver's tasks. The resume below must then still finish every run exactly once.
    wait_for(lambda: not any(alive(pid) for pid in cut_short), timeout=30, what="the killed driver's tasks to end")
    # Count what the resumed driver must add only now: a run that finished late (above) would otherwise count as
    # the resumed driver's, and it was sent SIGTERM at once, before its handlers were in place (CI: exit -15).
    finished_before = {d.name for d in run_dirs(cv_dir) if (d / "run_info.json").is_file()}

    # resume, then stop that driver with SIGTERM once another run has finished: exit 143 and a hint
    driver = subprocess.Popen([*base, "--resume"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: driver.poll() is not None or len(
            [d for d in run_dirs(cv_dir) if (d / "run_info.json").is_file()]) > len(finished_before),
            what="one more finished run")
        driver.send_signal(signal.SIGTERM)
        stderr = driver.communicate(timeout=60)[1]
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 143, stderr[-2000:]
    assert "--resume" in stderr.strip().splitlines()[-1]

    out = subprocess.run([*base, "--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    df = read_run_infos(cv_dir / RUN_INFOS)
    assert len(df) == 4 and df["run_name"].is_unique and set(df["status"]) == {"completed"}
    dirs = run_dirs(cv_dir)
    assert sorted(d.name.rsplit("-", 1)[0] for d in dirs) == sorted(df["run_name"])  # one folder per run
    for d in dirs:
        attempts = read_attempts(d)
        if d.name in finished_before:
            assert len(attempts) == 1  # a run finished before the kill is not run again
        # an attempt cut short by a kill is followed by one that continues it, never two at once
        assert len(attempts) <= 3 and len({a["pid"] for a in attempts}) == len(attempts)
