"""Executors, the parts that need no worker process: the serial executor, messages, pinning, the factory."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from tunecv.errors import ConfigError, TunecvError
from tunecv.executors import (
    DevicePoolExecutor,
    Executor,
    Job,
    RemoteError,
    SerialExecutor,
    WorkerDiedError,
    _local,
    _pool_exit,
    _registry,
    _worker,
    _worker_handle,
    available_cpus,
    current_device,
    gpu_count,
    make_executor,
)
from tunecv.executors import _testing as T

# -- the serial executor ------------------------------------------------------------------------------


def test_serial_runs_at_submit_and_returns_the_value():
    ex = SerialExecutor()
    calls = []
    job = ex.submit(lambda x, y=0: calls.append(x) or x + y, 1, y=2)  # nothing is pickled
    assert calls == [1]
    assert job.done() and not job.running() and not job.cancelled()
    assert job.result() == 3 and job.exception() is None
    assert job.device is None and job.pid is None
    assert ex.n_slots == 1


def test_serial_reraises_the_same_exception_with_its_traceback():
    job = SerialExecutor().submit(T.fail, "boom", T.CustomError)
    with pytest.raises(T.CustomError, match="boom") as info:
        job.result()
    assert info.value is job.exception()
    assert any(entry.name == "fail" for entry in info.traceback)


def test_serial_lets_keyboard_interrupt_through():
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        SerialExecutor().submit(interrupted)


def test_serial_refuses_jobs_after_shutdown():
    with SerialExecutor() as ex:
        pass
    with pytest.raises(RuntimeError, match="shut down"):
        ex.submit(T.add, 1, 2)


def test_wait_and_as_completed_on_serial_jobs():
    ex = SerialExecutor()
    jobs = [ex.submit(T.add, i, 1) for i in range(3)] + [ex.submit(T.fail, "x")]
    done, not_done = ex.wait(jobs, return_when="ALL_COMPLETED")
    assert done == set(jobs) and not not_done
    done, _ = ex.wait(jobs, return_when="FIRST_EXCEPTION")
    assert done == set(jobs)
    assert set(ex.as_completed(jobs)) == set(jobs)
    with pytest.raises(ConfigError, match="`return_when` must be one of FIRST_COMPLETED"):
        ex.wait(jobs, return_when="first")


# -- Job ------------------------------------------------------------------------------------------------


def test_pending_job_can_be_cancelled_and_times_out():
    job = Job("f")
    with pytest.raises(TimeoutError):
        job.result(timeout=0.01)
    assert job.cancel() and job.cancelled() and job.done()
    with pytest.raises(concurrent.futures.CancelledError):
        job.result()
    seen = []
    job.add_done_callback(seen.append)
    assert seen == [job]
    assert "Job f" in repr(job)


def test_running_job_cannot_be_cancelled():
    job = Job("f")
    job.set_running_or_notify_cancel()
    assert not job.cancel() and job.running()


def test_wait_times_out_on_unfinished_jobs():
    jobs = [Job("f"), Job("g")]
    done, not_done = SerialExecutor().wait(jobs, timeout=0.01)
    assert not done and not_done == set(jobs)
    with pytest.raises(TimeoutError):
        list(SerialExecutor().as_completed(jobs, timeout=0.01))


# -- messages between worker and driver -----------------------------------------------------------------


def _raised(fn, *args):
    try:
        fn(*args)
    except BaseException as exc:
        return exc
    raise AssertionError("did not raise")


def test_value_round_trips():
    assert _worker.unpack_reply(_worker.pack_value({"a": [1, 2]}, "f")) == (True, {"a": [1, 2]})


def test_picklable_exception_comes_back_as_itself_with_the_remote_traceback():
    ok, exc = _worker.unpack_reply(_worker.pack_exception(_raised(T.fail, "boom", T.CustomError)))
    assert not ok and type(exc) is T.CustomError and str(exc) == "boom"
    assert "in fail" in str(exc.__cause__) and "CustomError: boom" in str(exc.__cause__)


def test_unpicklable_exception_is_wrapped_with_type_message_and_traceback():
    ok, exc = _worker.unpack_reply(_worker.pack_exception(_raised(T.fail_unpicklable, "boom")))
    assert not ok and isinstance(exc, RemoteError) and isinstance(exc, TunecvError)
    assert exc.type_name == "tunecv.executors._testing.UnpicklableError"
    assert exc.message == "boom (code 7)"
    assert str(exc) == "tunecv.executors._testing.UnpicklableError: boom (code 7)"
    assert "fail_unpicklable" in exc.remote_traceback
    assert pickle.loads(pickle.dumps(exc)).type_name == exc.type_name


def test_system_exit_in_a_job_is_not_reraised_as_itself():
    ok, exc = _worker.unpack_reply(_worker.pack_exception(_raised(sys.exit, 3)))
    assert not ok and isinstance(exc, RemoteError) and exc.type_name == "SystemExit" and exc.message == "3"


def test_unpicklable_return_value_is_an_error():
    ok, exc = _worker.unpack_reply(_worker.pack_value(T.return_unpicklable(), "mod.f"))
    assert not ok and isinstance(exc, RemoteError)
    assert "the value returned by mod.f cannot be pickled" in exc.message


def test_worker_died_messages_name_device_signal_and_job():
    msg = _worker_handle.death_message(1, "mod.f", -signal.SIGKILL, None)
    assert msg.startswith("worker on device 1 died: killed by signal SIGKILL (9) while running mod.f")
    assert "out-of-memory" in msg
    assert "segmentation fault" in _worker_handle.death_message(0, "f", -signal.SIGSEGV, None)
    assert "exited with code 3 without sending a result" in _worker_handle.death_message("a", "f", 3, None)
    assert _worker_handle.death_message(2, "f", -15, "terminated by shutdown(kill=True)") == (
        "worker on device 2 was terminated by shutdown(kill=True) while running f"
    )
    err = pickle.loads(pickle.dumps(WorkerDiedError("worker died", 1, -9)))
    assert (str(err), err.device, err.exitcode) == ("worker died", 1, -9)


# -- pinning --------------------------------------------------------------------------------------------


def test_cpu_pinning_sets_device_and_thread_variables():
    env = _worker.pin_environment(1, "cpu", 2, {"PATH": "/bin"})
    assert env == {"PATH": "/bin", "TUNECV_DEVICE": "1", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}


@pytest.mark.parametrize(("device", "accelerator", "parent", "expected"), [
    (1, "gpu", None, "1"),
    (1, "cuda", None, "1"),
    (3, "auto", None, "3"),
    (1, "gpu", "2,3", "3"),
    ("1", "gpu", "4, 5", "5"),
    ("GPU-abc", "gpu", "0,1", "GPU-abc"),
    ("cuda:1", "gpu", "6,7", "7"),
])
def test_gpu_pinning_sets_cuda_visible_devices(device, accelerator, parent, expected):
    base = {} if parent is None else {"CUDA_VISIBLE_DEVICES": parent}
    assert _worker.pin_environment(device, accelerator, None, base)["CUDA_VISIBLE_DEVICES"] == expected


def test_no_cuda_pinning_for_cpu_or_named_devices():
    assert "CUDA_VISIBLE_DEVICES" not in _worker.pin_environment(0, "cpu", None, {})
    assert "CUDA_VISIBLE_DEVICES" not in _worker.pin_environment("mps", "auto", None, {})


def test_gpu_index_outside_the_visible_devices_is_a_config_error(monkeypatch):
    with pytest.raises(ConfigError, match=r"`devices` entry 2 is not visible: CUDA_VISIBLE_DEVICES='0,1'"):
        _worker.cuda_visible(2, "0,1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(ConfigError, match="not visible"):
        DevicePoolExecutor([0, 1], accelerator="gpu")


def test_current_device_is_none_in_the_driver_and_read_from_the_environment(monkeypatch):
    monkeypatch.delenv("TUNECV_DEVICE", raising=False)
    assert current_device() is None
    monkeypatch.setenv("TUNECV_DEVICE", "3")
    assert current_device() == 3
    monkeypatch.setenv("TUNECV_DEVICE", "mps")
    assert current_device() == "mps"


# -- the pool's settings (no process is started) ----------------------------------------------------------


def test_pool_slots_threads_and_validation():
    with DevicePoolExecutor([0, 1], runs_per_device=2) as ex:
        assert ex.n_slots == 4
        assert ex.threads_per_worker == max(1, available_cpus() // 4)
        assert list(ex._free) == [0, 1, 0, 1]
    with DevicePoolExecutor([0], threads_per_worker=3) as ex:
        assert ex.threads_per_worker == 3
    assert not multiprocessing.active_children()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"devices": []}, "`devices` must be a non-empty list"),
    ({"devices": "0"}, "`devices` must be a non-empty list"),
    ({"devices": [0, -1]}, "`devices` entries must be device indices"),
    ({"devices": [True]}, "`devices` entries must be device indices"),
    ({"devices": [0], "runs_per_device": 0}, "`runs_per_device` must be an integer >= 1; got 0"),
    ({"devices": [0], "threads_per_worker": 0}, "`threads_per_worker` must be an integer >= 1"),
    ({"devices": [0], "start_method": "thread"}, "`start_method` must be one of"),
])
def test_pool_rejects_bad_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DevicePoolExecutor(**kwargs)


def test_submit_refuses_an_unpicklable_function():
    with DevicePoolExecutor([0]) as ex, pytest.raises(TypeError, match="define the function at module level"):
        ex.submit(lambda: 1)


def test_pool_turns_sigterm_into_system_exit_while_alive():
    if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL or _pool_exit._LIVE:
        pytest.skip("SIGTERM already has a handler in this test process")
    ex = DevicePoolExecutor([0])
    assert signal.getsignal(signal.SIGTERM) is _pool_exit._raise_on_sigterm
    with pytest.raises(SystemExit) as info:
        _pool_exit._raise_on_sigterm(signal.SIGTERM, None)
    assert info.value.code == 143
    ex.shutdown()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


# -- gpu_count and make_executor ------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "count"), [("0,1", 2), ("", 0), ("3", 1), ("0,-1,2", 1), ("GPU-a,GPU-b", 2)])
def test_gpu_count_reads_cuda_visible_devices(monkeypatch, value, count):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    assert gpu_count() == count


def _fake_nvidia_smi(monkeypatch, stdout=None, returncode=0):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def run(cmd, **kwargs):
        assert cmd == ["nvidia-smi", "-L"]
        if stdout is None:
            raise FileNotFoundError("nvidia-smi")
        return types.SimpleNamespace(returncode=returncode, stdout=stdout)

    monkeypatch.setattr(_local.subprocess, "run", run)


def test_gpu_count_counts_nvidia_smi_gpu_lines(monkeypatch):
    _fake_nvidia_smi(monkeypatch, "GPU 0: A100 (UUID: GPU-1)\n  MIG 1g.5gb Device 0: (UUID: MIG-1)\nGPU 1: A100\n")
    assert gpu_count() == 2
    _fake_nvidia_smi(monkeypatch, "", returncode=9)
    assert gpu_count() == 0
    _fake_nvidia_smi(monkeypatch, None)
    assert gpu_count() == 0


def test_make_executor_serial_unless_parallel():
    assert isinstance(make_executor(["auto"], "gpu", parallel=False), SerialExecutor)


def test_make_executor_cpu_auto_gives_one_slot_per_cpu():
    with make_executor(["auto"], "cpu", parallel=True, runs_per_device=2) as ex:
        assert isinstance(ex, DevicePoolExecutor)
        assert ex.devices == list(range(available_cpus())) and ex.n_slots == 2 * available_cpus()


def test_make_executor_gpu_auto_without_gpus_is_a_config_error(monkeypatch):
    _fake_nvidia_smi(monkeypatch, None)
    with pytest.raises(ConfigError) as info:
        make_executor(["auto"], "gpu", parallel=True)
    assert str(info.value) == (
        "`devices` must list GPU indices for cv-parallel/tune-parallel, e.g. [0, 1]; got ['auto']"
    )


def test_make_executor_gpu_auto_uses_the_visible_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    with make_executor(["auto"], "gpu", parallel=True) as ex:
        assert ex.devices == [0, 1] and ex.accelerator == "gpu"


def test_make_executor_auto_accelerator_falls_back_to_cpu_slots(monkeypatch):
    _fake_nvidia_smi(monkeypatch, None)
    with make_executor(["auto"], "auto", parallel=True) as ex:
        assert ex.accelerator == "cpu" and ex.n_slots == available_cpus()


def test_make_executor_explicit_devices():
    with make_executor([0, 2], "cpu", parallel=True) as ex:
        assert ex.devices == [0, 2] and ex.n_slots == 2
    with make_executor(3, "cpu", parallel=True) as ex:
        assert ex.devices == [0, 1, 2]
    with pytest.raises(ConfigError, match="with accelerator 'tpu'"):
        make_executor(["auto"], "tpu", parallel=True)


# -- a leaf module ----------------------------------------------------------------------------------------


def test_importing_executors_leaves_torch_and_lightning_unimported():
    code = textwrap.dedent("""
        import sys
        import tunecv.executors
        print(sorted(m for m in ("torch", "lightning", "optuna", "wandb") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "[]"


# -- the executor seam: registry, config key, contract over every registered executor ------------------


def test_registry_names_are_the_valid_values_of_the_executor_key():
    from tunecv.config import config_from_dict

    assert "local" in _registry.executor_names()
    assert config_from_dict({}).executor == "local"
    with pytest.raises(ConfigError) as err:
        config_from_dict({"executor": "slrum"})
    message = str(err.value)
    assert "`executor`" in message and "'slrum'" in message
    assert all(name in message for name in _registry.executor_names())


@pytest.mark.parametrize("name", sorted(_registry.EXECUTORS))
def test_every_registered_executor_builds_from_its_config_section(name):
    """Contract: the registry entry imports, builds an Executor named after its key, reports slots and pinning."""
    from tunecv.config import config_from_dict

    if name == "slurm":
        pytest.importorskip("submitit")
    factory = _registry.executor_factory(name)
    assert callable(factory)
    if name != "local":
        return  # executors of a cluster are built by their own tests against a real cluster
    cfg = config_from_dict({"executor": name, "accelerator": "cpu", "devices": [0, 1]})
    serial = _registry.make_executor_from_config(cfg, parallel=False, accelerator="cpu")
    assert isinstance(serial, Executor) and serial.name == name
    assert serial.n_slots == 1 and serial.pinned is False and serial.run_overrides() == {}
    assert serial.reattach("/nonexistent") is None
    with _registry.make_executor_from_config(cfg, parallel=True, accelerator="cpu") as pool:
        assert isinstance(pool, DevicePoolExecutor) and pool.name == name
        assert pool.n_slots == 2 and pool.pinned is True
        assert pool.run_overrides() == {"devices": [0], "strategy": "auto", "num_nodes": 1}
        assert pool.submit_run("/tmp/x", T.add, 2, 3).result(timeout=60) == 5


def test_local_section_reaches_the_pool():
    from tunecv.config import config_from_dict

    cfg = config_from_dict({"accelerator": "cpu", "devices": [0], "local": {"threads_per_worker": 3,
                                                                           "start_method": "spawn"}})
    with _registry.make_executor_from_config(cfg, parallel=True, accelerator="cpu") as pool:
        assert pool.threads_per_worker == 3 and pool.start_method == "spawn"
        assert pool.reuse_workers is True  # the default on CPU
    cfg = config_from_dict({"accelerator": "cpu", "devices": [0], "local": {"reuse_workers": False}})
    with _registry.make_executor_from_config(cfg, parallel=True, accelerator="cpu") as pool:
        assert pool.reuse_workers is False
    cfg = config_from_dict({"accelerator": "gpu", "devices": [0], "local": {"reuse_workers": True}})
    with _registry.make_executor_from_config(cfg, parallel=True, accelerator="gpu") as pool:
        assert pool.reuse_workers is False  # a GPU run always gets a new worker: its memory goes back


def test_job_state_follows_the_job():
    job = SerialExecutor().submit(T.add, 1, 2)
    assert job.state == "finished"
    fresh = Job("x")
    assert fresh.state == "queued"
    fresh.set_running_or_notify_cancel()
    assert fresh.state == "running"


def test_no_code_decides_pinning_by_class_name():
    src = Path(__file__).resolve().parents[2] / "src" / "tunecv"
    offenders = [str(p) for p in src.rglob("*.py") if "__name__ == \"DevicePoolExecutor\"" in p.read_text()]
    assert offenders == []


def test_thread_budget_shares_the_free_cores_and_the_key_overrides_it():
    from tunecv.executors import available_cpus, thread_budget

    cpus = available_cpus()
    assert thread_budget(1, 3) == 3 and thread_budget(4, 1) == 1  # local.threads_per_worker wins
    for slots in (1, 2, cpus, 4 * cpus):
        assert 1 <= thread_budget(slots) <= max(1, cpus // slots)


def test_slurm_section_becomes_sbatch_parameters_and_run_devices():
    import shutil as _shutil

    pytest.importorskip("submitit")
    if _shutil.which("sbatch") is None:
        pytest.skip("SLURM client commands not installed")
    from tunecv.config import config_from_dict

    cfg = config_from_dict({"executor": "slurm", "accelerator": "auto", "slurm": {
        "partition": "gpu", "time": 30, "gpus_per_job": 2, "cpus_per_job": 4, "mem": "16G", "account": "lab",
        "qos": "high", "max_jobs": 5, "setup": ["module load cuda"], "extra": {"constraint": "a100"}}})
    ex = _registry.make_executor_from_config(cfg, parallel=True, accelerator="auto")
    assert ex.name == "slurm" and ex.pinned and ex.n_slots == 5
    assert ex.parameters == {"time": 30, "cpus_per_task": 4, "signal_delay_s": 90, "partition": "gpu",
                             "account": "lab", "qos": "high", "mem": "16G", "gres": "gpu:2",
                             "ntasks_per_node": 2, "setup": ["module load cuda"],
                             "additional_parameters": {"constraint": "a100"}}
    assert ex.run_overrides() == {"num_nodes": 1, "devices": [0, 1], "strategy": "ddp"}
    serial = _registry.make_executor_from_config(config_from_dict({"executor": "slurm"}), parallel=False,
                                                 accelerator="auto")
    assert serial.n_slots == 1 and serial.run_overrides()["accelerator"] == "cpu"  # no GPU asked: CPU
    assert serial.reattach("/nonexistent/run-abc") is None


@pytest.mark.parametrize(("section", "message"), [
    ({"time": 0}, "`slurm.time` must be >= 1; got 0"),
    ({"gpus_per_job": -1}, "`slurm.gpus_per_job` must be >= 0; got -1"),
    ({"poll_interval": 0}, "`slurm.poll_interval` must be > 0 seconds; got 0"),
])
def test_slurm_section_errors_name_the_dotted_key(section, message):
    from tunecv.config import config_from_dict

    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict({"executor": "slurm", "slurm": section})
