"""``executor: ray`` on a real multi-node Ray cluster started on this machine (marker ``ray``).

One cluster for the whole module (Ray takes ~10 s to start on two cores): a head without CPUs and two
worker nodes with one CPU each, so every run lands on a worker node, and a test can kill that node.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import tiny_digits
from tests.integration.ray_cluster import ray_test_cluster, unavailable_reason
from tests.integration.ray_models import read_attempts
from tunecv.cv import RUN_INFOS, cross_validate
from tunecv.errors import RunFailedError
from tunecv.executors._ray import RayExecutor
from tunecv.results import read_run_infos

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


def probe_cfg(tmp_path: Path, **model_args) -> dict:
    """A tiny digits cv whose model records each attempt (tests/integration/ray_models.py)."""
    cfg = tiny_digits(tmp_path)
    cfg["model"] = {"class_path": "tests.integration.ray_models.ProbeClassifier",
                    "init_args": {"hidden_dim": 16, "lr": 0.02, **model_args}}
    cfg["early_stopping"] = None
    return cfg


def wait_for(predicate, timeout: float = 120.0, what: str = "a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def only_run_dir(cv_dir: Path) -> Path:
    return wait_for(lambda: next((d for d in cv_dir.glob("*-run-*") if d.is_dir()), None), what=f"a run in {cv_dir}")


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
    with RayExecutor(shared_dir=tmp_path) as ex:
        assert ex.n_slots == 2  # two worker nodes of one CPU each
        on_ray = cross_validate(cfg, name="on-ray", progress=False, executor=ex)
    cols = ["fold", "seed", "status", "val/acc", "val/loss", "test/acc", "test/loss"]
    a = local.run_infos[cols].sort_values(["fold", "seed"]).reset_index(drop=True)
    b = on_ray.run_infos[cols].sort_values(["fold", "seed"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6)
    assert on_ray.score == pytest.approx(local.score, rel=1e-6)
    assert len(on_ray.run_infos) == 3 and set(on_ray.run_infos["status"]) == {"completed"}
    for row in on_ray.run_infos.itertuples():
        assert Path(row.checkpoint).is_file()


def test_a_run_that_raises_is_a_failed_run_and_the_others_finish(ray_cluster, tmp_path):
    cfg = probe_cfg(tmp_path, fail_on_seed=21)
    cfg["cv"] = {"n_seeds": 2, "n_folds": 1, "scoring_metric": ["val/acc"]}
    with RayExecutor() as ex:
        res = cross_validate(cfg, name="raises", progress=False, executor=ex)
    rows = res.run_infos.set_index("seed")
    assert rows.loc[42, "status"] == "completed"
    assert rows.loc[21, "status"] == "failed"
    assert rows.loc[21, "error"].startswith("RuntimeError: seed 21 fails on purpose")
    assert len(res.run_infos) == 2


def test_a_run_whose_node_dies_is_retried_from_its_last_checkpoint_then_failed_if_it_dies_again(
        ray_cluster, tmp_path):
    cfg = probe_cfg(tmp_path, epoch_sleep=1.0)
    cfg["trainer"] = {**cfg["trainer"], "max_epochs": 4}
    cfg["cv"] = {"n_seeds": 1, "n_folds": 1, "scoring_metric": ["val/acc"]}
    cvs = tmp_path / "artifacts" / "_cross_validations"

    def kill_the_node_of_attempt(run_dir: Path, attempt: int) -> None:
        wait_for(lambda: len(read_attempts(run_dir)) >= attempt and (run_dir / "checkpoints" / "last.ckpt").is_file(),
                 what=f"attempt {attempt} with a last checkpoint")
        node = ray_cluster.worker_with_id(read_attempts(run_dir)[-1]["node"])
        ray_cluster.remove_worker(node)
        ray_cluster.add_worker(num_gpus=1)  # the cluster keeps its shape for the next tests

    # dies once: Ray runs the task again on another node, and the run continues from its last checkpoint
    with RayExecutor() as ex:
        call = InThread(cross_validate, cfg, name="dies-once", progress=False, executor=ex)
        run_dir = only_run_dir(cvs / "dies-once")
        kill_the_node_of_attempt(run_dir, 1)
        res = call.result()
    attempts = read_attempts(run_dir)
    assert len(attempts) == 2, attempts
    assert attempts[0]["node"] != attempts[1]["node"]
    assert attempts[1]["epoch"] >= 1  # continued from last.ckpt, not from scratch
    assert len(res.run_infos) == 1 and res.run_infos["status"].tolist() == ["completed"]
    epochs = pd.read_csv(run_dir / "csv" / "metrics.csv").dropna(subset=["val/acc"])["epoch"]
    assert epochs.min() >= 1 and epochs.max() == 3  # the second attempt trained only the epochs left

    # dies twice: a failed run with the node's error
    with RayExecutor() as ex:
        call = InThread(cross_validate, cfg, name="dies-twice", progress=False, executor=ex)
        run_dir = only_run_dir(cvs / "dies-twice")
        kill_the_node_of_attempt(run_dir, 1)
        kill_the_node_of_attempt(run_dir, 2)
        with pytest.raises(RunFailedError, match="every run"):
            call.result()
    rows = read_run_infos(cvs / "dies-twice" / RUN_INFOS)
    assert len(rows) == 1 and rows["status"].tolist() == ["failed"]
    assert "WorkerDiedError" in rows["error"][0] and "node" in rows["error"][0]
    assert read_attempts(run_dir)[-1]["node"] in rows["error"][0]
