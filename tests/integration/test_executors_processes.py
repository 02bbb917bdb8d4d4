"""Executors with real worker processes: the shared contract, device slots, dead workers, Ctrl-C.

Job functions live in ``tunecv.executors._testing`` so that workers can import them whatever their
``sys.path``. The pools here preload only torch (lightning's import would add seconds to the first
fork-server start); the fork server is shared by the whole test session.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tunecv.executors import (
    DevicePoolExecutor,
    Executor,
    RemoteError,
    SerialExecutor,
    WorkerDiedError,
    available_cpus,
)
from tunecv.executors import _testing as T

PRELOAD = ("torch",)


def _pool(devices=(0, 1), **kwargs) -> DevicePoolExecutor:
    return DevicePoolExecutor(list(devices), preload=PRELOAD, **kwargs)


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as dead: PID 1 of a container may not reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - pid reused by another user's process
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _state(pid: int) -> str:
    """The process state letter of ``pid`` (``R``, ``S``, ``T`` stopped, ``Z`` zombie, ...)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _wait_dead(pids, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if _alive(pid)]
        if not alive:
            return []
        time.sleep(0.05)
    return alive


def _wait_running(job, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while job.pid is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.pid is not None


# -- the contract, for every executor ---------------------------------------------------------------------


@pytest.fixture(params=["serial", "pool"])
def executor(request) -> Executor:
    ex = SerialExecutor() if request.param == "serial" else _pool()
    yield ex
    ex.shutdown(kill=True)


def test_result_value(executor):
    job = executor.submit(T.add, 2, b=3)
    assert job.result(timeout=60) == 5
    assert job.done() and job.exception() is None


@pytest.mark.parametrize("error", [ValueError, T.CustomError])
def test_exception_is_reraised_with_type_and_message(executor, error):
    job = executor.submit(T.fail, "boom", error)
    with pytest.raises(error, match=r"^boom$"):
        job.result(timeout=60)
    assert type(job.exception()) is error


def test_unpicklable_exception_keeps_type_name_and_message(executor):
    exc = executor.submit(T.fail_unpicklable, "boom").exception(timeout=60)
    assert isinstance(exc, (T.UnpicklableError, RemoteError)) and "boom (code 7)" in str(exc)
    if isinstance(exc, RemoteError):
        assert exc.type_name.endswith("UnpicklableError") and "fail_unpicklable" in exc.remote_traceback


def test_as_completed_yields_jobs_as_they_finish(executor):
    slow = executor.submit(T.sleep_and_return, 0.8, "slow")
    fast = executor.submit(T.sleep_and_return, 0.0, "fast")
    order = [job.result() for job in executor.as_completed([slow, fast], timeout=60)]
    assert sorted(order) == ["fast", "slow"]
    if executor.n_slots > 1:
        assert order == ["fast", "slow"]


def test_wait(executor):
    jobs = [executor.submit(T.sleep_and_return, 0.3, i) for i in range(2)]
    done, not_done = executor.wait(jobs, timeout=60, return_when="FIRST_COMPLETED")
    assert done and done | not_done == set(jobs)
    done, not_done = executor.wait(jobs, timeout=60, return_when="ALL_COMPLETED")
    assert done == set(jobs) and not not_done
    assert sorted(job.result() for job in jobs) == [0, 1]


# -- the device pool --------------------------------------------------------------------------------------


def test_two_slots_run_concurrently_on_devices_from_the_list():
    with _pool([3, 7]) as ex:
        jobs = [ex.submit(T.timed_sleep, 1.0) for _ in range(2)]
        out = [job.result(timeout=60) for job in jobs]
    assert max(o["start"] for o in out) < min(o["end"] for o in out)  # they overlapped
    assert sorted(o["device"] for o in out) == [3, 7]
    assert [job.device for job in jobs] == [o["device"] for o in out]
    assert len({o["pid"] for o in out} | {os.getpid()}) == 3  # one worker process per slot


def test_runs_per_device_packs_jobs_on_one_device():
    with _pool([0], runs_per_device=2) as ex:
        out = [job.result(timeout=60) for job in [ex.submit(T.timed_sleep, 0.8) for _ in range(2)]]
    assert [o["device"] for o in out] == [0, 0]
    assert max(o["start"] for o in out) < min(o["end"] for o in out)


def test_killed_worker_fails_its_job_and_gives_the_slot_back():
    with _pool([1]) as ex:
        job = ex.submit(T.kill_self, signal.SIGKILL)
        with pytest.raises(WorkerDiedError, match=r"^worker on device 1 died: killed by signal SIGKILL \(9\)"):
            job.result(timeout=60)
        assert job.exception().exitcode == -signal.SIGKILL and job.exception().device == 1
        assert ex.submit(T.add, 1, 1).result(timeout=60) == 2


def test_worker_exiting_without_a_result_is_a_dead_worker():
    with _pool([0]) as ex:
        exc = ex.submit(T.exit_now, 3).exception(timeout=60)
        assert isinstance(exc, WorkerDiedError) and "exited with code 3" in str(exc)
        assert ex.submit(T.add, 1, 2).result(timeout=60) == 3


def test_exception_gives_the_slot_back():
    with _pool([0]) as ex:
        assert isinstance(ex.submit(T.fail, "x").exception(timeout=60), ValueError)
        assert isinstance(ex.submit(T.return_unpicklable).exception(timeout=60), RemoteError)
        assert ex.submit(T.add, 1, 2).result(timeout=60) == 3


def test_a_cpu_slot_reuses_its_worker_with_the_environment_of_each_job(monkeypatch):
    with _pool([0]) as ex:  # reuse_workers is the default on CPU
        first = ex.submit(T.where).result(timeout=60)
        monkeypatch.setenv("TUNECV_TEST_MARKER", "set between two jobs")
        second = ex.submit(T.where).result(timeout=60)
        assert ex.submit(T.fail, "x").exception(timeout=60) is not None  # an error does not end the worker
        third = ex.submit(T.where).result(timeout=60)
    assert first["pid"] == second["pid"] == third["pid"] != os.getpid()  # no new process per job on CPU
    assert (first["TUNECV_TEST_MARKER"], second["TUNECV_TEST_MARKER"]) == (None, "set between two jobs")
    assert second["TUNECV_DEVICE"] == "0" and second["device"] == 0
    assert _wait_dead([first["pid"]], timeout=5) == []  # it ended with the pool


def test_a_gpu_slot_gets_a_new_process_per_job():
    with _pool([0], accelerator="gpu") as ex:  # the jobs never touch CUDA: only the pinning is set
        pids = [ex.submit(T.where).result(timeout=60)["pid"] for _ in range(2)]
    assert pids[0] != pids[1]


def test_a_cpu_slot_can_get_a_new_process_per_job():
    with _pool([0], reuse_workers=False) as ex:
        pids = [ex.submit(T.where).result(timeout=60)["pid"] for _ in range(2)]
    assert pids[0] != pids[1]


def test_a_reused_worker_that_dies_fails_only_its_job_and_the_slot_gets_a_new_one(tmp_path):
    with _pool([0]) as ex:
        first = ex.submit(T.where).result(timeout=60)["pid"]
        # Killed while it runs a job it acknowledged: that job fails, and only that one.
        assert isinstance(ex.submit(T.kill_self, signal.SIGKILL).exception(timeout=60), WorkerDiedError)
        after_death = ex.submit(T.where).result(timeout=60)["pid"]
        # Killed while it waits for a job, and the next job is submitted at once: that job runs elsewhere.
        os.kill(after_death, signal.SIGKILL)
        after_idle_death = ex.submit(T.where).result(timeout=60)["pid"]
        # The race made certain: the job is in the pipe of a worker that can no longer read it (stopped),
        # then the worker dies. It never acknowledged the job: a new worker runs it, once.
        os.kill(after_idle_death, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while _state(after_idle_death) != "T" and time.monotonic() < deadline:
            time.sleep(0.01)
        record = tmp_path / "calls.txt"
        job = ex.submit(T.record_pid, str(record))
        deadline = time.monotonic() + 30
        while job.pid != after_idle_death and time.monotonic() < deadline:  # it was handed to that worker
            time.sleep(0.01)
        assert job.pid == after_idle_death and not job.done()
        os.kill(after_idle_death, signal.SIGKILL)
        ran_in = job.result(timeout=60)
    assert len({first, after_death, after_idle_death, ran_in}) == 4
    assert record.read_text().split() == [str(ran_in)]  # it ran once, in the new worker


def test_shutdown_kill_leaves_no_process_behind():
    ex = _pool([0])
    job = ex.submit(T.sleep_and_return, 60)
    queued = ex.submit(T.add, 1, 2)
    _wait_running(job)
    start = time.monotonic()
    ex.shutdown(kill=True)
    assert time.monotonic() - start < 5
    assert isinstance(job.exception(), WorkerDiedError)
    assert "terminated by shutdown(kill=True)" in str(job.exception())
    assert queued.cancelled()
    assert not multiprocessing.active_children()
    assert not _alive(job.pid)
    with pytest.raises(RuntimeError, match="shut down"):
        ex.submit(T.add, 1, 2)


def test_shutdown_can_run_pending_jobs_first():
    ex = _pool([0])
    jobs = [ex.submit(T.add, i, 0) for i in range(3)]
    ex.shutdown(cancel_pending=False)
    assert [job.result() for job in jobs] == [0, 1, 2]


def test_exception_in_with_block_kills_running_workers():
    with pytest.raises(KeyboardInterrupt), _pool([0]) as ex:
        job = ex.submit(T.sleep_and_return, 60)
        _wait_running(job)
        raise KeyboardInterrupt
    assert isinstance(job.exception(), WorkerDiedError)
    assert not _alive(job.pid)


def test_cancel_a_job_that_has_not_started():
    with _pool([0]) as ex:
        running = ex.submit(T.sleep_and_return, 0.5, "ran")
        queued = ex.submit(T.add, 1, 2)
        _wait_running(running)
        assert queued.cancel() and not running.cancel()
        assert running.result(timeout=60) == "ran" and queued.cancelled()


def test_worker_pinning_and_environment(monkeypatch):
    monkeypatch.setenv("TUNECV_TEST_MARKER", "set after the fork server started")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    with _pool([1], accelerator="gpu") as ex:
        seen = ex.submit(T.where).result(timeout=60)
    assert seen["device"] == 1 and seen["TUNECV_DEVICE"] == "1"
    assert seen["CUDA_VISIBLE_DEVICES"] == "5"  # index 1 among the GPUs the driver sees
    assert seen["TUNECV_TEST_MARKER"] == "set after the fork server started"


@pytest.mark.parametrize("threads", [None, 2])
def test_torch_threads_in_a_cpu_worker(threads):
    with _pool([0, 1], threads_per_worker=threads) as ex:
        expected = threads or max(1, available_cpus() // 2)
        assert ex.threads_per_worker == expected
        assert ex.submit(T.torch_threads).result(timeout=60) == expected
        assert ex.submit(T.where).result(timeout=60)["OMP_NUM_THREADS"] == str(expected)


# -- the driver is interrupted or killed --------------------------------------------------------------------

DRIVER = textwrap.dedent("""
    import multiprocessing.forkserver, signal, sys, time
    # as a command typed in a terminal: a shell that runs the tests in the background (CI) starts them with
    # SIGINT ignored, and an ignored signal stays ignored across exec
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from tunecv.executors import DevicePoolExecutor, prestart_forkserver
    from tunecv.executors import _testing as T

    if sys.argv[1:] == ["forked"]:  # the server is a fork of this process, as the command line makes it
        assert prestart_forkserver([], from_this_process=True)
    with DevicePoolExecutor([0, 1], preload=()) as ex:
        jobs = [ex.submit(T.sleep_and_return, 60) for _ in range(3)]
        while not (jobs[0].pid and jobs[1].pid):
            time.sleep(0.01)
        server = multiprocessing.forkserver._forkserver._forkserver_pid
        print(jobs[0].pid, jobs[1].pid, server, flush=True)
        for job in jobs:
            job.result()
""")


def _start_driver(server: str = "new") -> tuple[subprocess.Popen, list[int]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, server], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        pytest.fail(f"driver failed: {proc.communicate()[1]}")
    pids = [int(p) for p in line.split()]
    _wait_ignoring_sigint(pids[:2])  # the workers are inside their jobs, SIGINT ignored
    return proc, pids


def _wait_ignoring_sigint(pids: list[int], timeout: float = 30.0) -> None:
    """Wait until each process ignores SIGINT (its ``SigIgn`` mask in /proc), as a worker inside a job does."""
    deadline = time.monotonic() + timeout
    bit = 1 << (signal.SIGINT - 1)
    for pid in pids:
        while True:
            with open(f"/proc/{pid}/status") as status:
                mask = next(int(line.split()[1], 16) for line in status if line.startswith("SigIgn:"))
            if mask & bit:
                break
            assert time.monotonic() < deadline, f"worker {pid} never ignored SIGINT"
            time.sleep(0.02)


@pytest.mark.parametrize(("how", "server"), [
    ("ctrl-c", "new"), ("sigterm", "new"), ("sigkill", "new"), ("ctrl-c", "forked"), ("sigkill", "forked"),
])
def test_interrupted_driver_leaves_no_orphans(how, server):
    proc, pids = _start_driver(server)
    try:
        if how == "ctrl-c":  # a terminal sends SIGINT to the whole foreground process group
            os.killpg(proc.pid, signal.SIGINT)
        elif how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            proc.kill()
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # pragma: no cover - the driver hung
            os.killpg(proc.pid, signal.SIGKILL)
    if how == "ctrl-c":
        assert proc.returncode == -signal.SIGINT and "KeyboardInterrupt" in stderr
    elif how == "sigterm":
        assert proc.returncode == 128 + signal.SIGTERM
    assert _wait_dead(pids, timeout=5) == []  # both workers and the fork server


# -- a fork server forked from the driver ---------------------------------------------------------------------

FORKED = textwrap.dedent("""
    import json, multiprocessing.forkserver, sys, threading
    import xml.dom.minidom  # imported by this process only: no preload, no job imports it
    from tunecv.executors import DevicePoolExecutor, can_fork_server_here, prestart_forkserver
    from tunecv.executors import _testing as T

    stop = threading.Event()
    if sys.argv[1] == "with a thread":
        threading.Thread(target=stop.wait).start()
    safe = can_fork_server_here()
    started = prestart_forkserver(["json"], from_this_process=sys.argv[1] != "new")
    with DevicePoolExecutor([0, 1], preload=()) as ex:
        inherited = ex.submit(T.has_module, "xml.dom.minidom").result(timeout=60)
        results = [job.result(timeout=60) for job in [ex.submit(T.add, i, 1) for i in range(4)]]
    stop.set()
    print(json.dumps({"safe": safe, "started": started, "inherited": inherited, "results": results}))
""")


@pytest.mark.parametrize(("case", "forked"), [("forked", True), ("new", False), ("with a thread", False)])
def test_the_server_is_a_fork_of_the_driver_where_that_is_safe(case, forked):
    """A forked server starts with what the driver imported; with another thread running it is a new one."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", FORKED, case], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"safe": case != "with a thread", "started": True, "inherited": forked, "results": [1, 2, 3, 4]}
