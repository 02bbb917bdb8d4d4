"""The device-pool executor: worker processes, each pinned to a free device slot.

Why not :class:`concurrent.futures.ProcessPoolExecutor`: one killed worker breaks that whole pool
(every pending future fails with ``BrokenProcessPool``), and a reused worker keeps its GPU memory. Here
each GPU job gets a fresh process, started from a fork server that has already imported torch and
lightning; on CPU a slot's worker runs the slot's jobs one after another (a fork per job costs about as
much as a short run). A dead worker only fails its own job, and its slot's next job gets a new one.
A job handed to an idle worker is that worker's only once it has acknowledged it: one that died while
it waited (its pipe may still take the job) is replaced by a new worker, and the job runs there.

A scheduler thread in the driver launches queued jobs when slots free up and watches every worker's
pipe and ``sentinel`` with :func:`multiprocessing.connection.wait`. It runs only while there is work.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Optional

from tunecv.errors import ConfigError, one_of
from tunecv.executors._base import Device, Executor, Job, RemoteError, WorkerDiedError, function_name
from tunecv.executors._forkserver import PRELOAD_ENV, forkserver_running, start_forkserver
from tunecv.executors._pool_exit import register, unregister
from tunecv.executors._threads import thread_budget
from tunecv.executors._worker import ACK, pin_environment, unpack_reply, worker_main
from tunecv.executors._worker_handle import (
    EXIT_GRACE,
    TERMINATE_GRACE,
    Running,
    death_message,
    readable,
    reap,
    retire,
)

__all__ = ["DevicePoolExecutor"]

log = logging.getLogger(__name__)


def _check_device(device: Any) -> Device:
    if isinstance(device, bool) or not isinstance(device, (int, str)) or device == "" or (
        isinstance(device, int) and device < 0
    ):
        raise ConfigError(
            f"`devices` entries must be device indices (int >= 0) or device names; got {device!r}"
        )
    return device



class DevicePoolExecutor(Executor):
    """Runs each job in a new worker process pinned to a free device slot.

    Each entry of ``devices`` is a slot ``runs_per_device`` times. A job waits until a slot is free.
    On GPUs (any accelerator but ``cpu``), one new worker process runs exactly that job and exits, so
    the GPU's memory is released between runs. On CPU slots, a worker that has sent its result waits
    for the next job of its slot and runs it in the same process, as the serial path runs every run in
    one process: a new process per run costs about a tenth of a second (the fork, the copy-on-write
    faults of a cold process, its exit), as much as a short run itself. The slot goes back to the pool
    when the job ends: with a value, an exception, or the worker dying (then ``result()`` raises
    :class:`WorkerDiedError`, and the slot's next job gets a new process). A dead worker only fails the
    job it was running. A job handed to a waiting worker counts as started once the worker has
    acknowledged it (before any of the job's code runs); a worker that died while it waited (killed, or
    by the out-of-memory killer) never acknowledges, and the job goes to a new worker instead: it runs
    once, and does not fail for a death that happened before it was given out.

    Before the job's function runs, the worker:

    - ignores SIGINT (a Ctrl-C in the terminal reaches the whole process group; the driver decides),
      and on Linux asks the kernel to SIGKILL it if its parent ends;
    - takes the driver's current ``os.environ`` (under forkserver it would otherwise have the
      environment of when the fork server started), plus ``TUNECV_DEVICE=<device>`` (again for each
      job of a reused worker);
    - for ``accelerator`` gpu/cuda, or auto with an integer device, sets ``CUDA_VISIBLE_DEVICES`` to
      that one GPU, so the run sees it as device 0;
    - limits CPU threads to ``threads_per_worker``: ``torch.set_num_threads`` when torch is already
      imported (preloaded), and ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``.

    Workers start from a fork server that has imported ``preload`` once (importing torch does not
    initialise CUDA; the driver must never call ``torch.cuda.*``). The fork server is one per driver
    process (a :mod:`multiprocessing` singleton): the first pool that starts it decides what it
    preloads, and later pools reuse it as it is, whatever their ``preload``. Modules that fail to import
    are skipped. Where forkserver is not available, ``spawn`` is used.

    The function, its arguments and its return value must pickle (define functions at module level);
    return plain or CPU data (a CUDA tensor unpickled in the driver would initialise CUDA there). Under
    forkserver (and fork) a worker ends with ``os._exit``: atexit hooks registered by the job do not
    run, so a job closes what it opened (e.g. ``wandb.finish()``) before it returns.
    Ctrl-C (``KeyboardInterrupt``) or SIGTERM in the driver: leave the ``with`` block, or call
    ``shutdown(kill=True)``, and every worker is terminated (SIGTERM, then SIGKILL after a grace
    period) and reaped. While a pool is alive, SIGTERM in the main thread raises ``SystemExit(143)``
    (only if SIGTERM had its default handler), and an atexit hook kills the workers of every pool
    left running.

    Args:
        devices: device indices (GPUs) or slot labels (CPU), e.g. ``[0, 1]``.
        accelerator: ``"cpu"``, ``"gpu"``/``"cuda"``, ``"auto"``, ... (only decides the pinning).
        runs_per_device: how many jobs share one device at once.
        start_method: ``"forkserver"`` (default), ``"spawn"`` or ``"fork"`` (fork is unsafe once the
            driver has threads or has touched CUDA).
        preload: modules the fork server imports once, before it forks workers.
        threads_per_worker: CPU threads per worker; default ``max(1, available CPUs // n_slots)``.
        reuse_workers: whether a worker runs the next job of its slot; CPU only (``accelerator="cpu"``),
            where it is the default. GPU jobs always get a new worker, which gives the GPU memory back.
    """

    name = "local"
    pinned = True  # the worker sees its one device as device 0 (CUDA_VISIBLE_DEVICES), or has a CPU thread budget
    validate_in_job = True

    def __init__(
        self,
        devices: Sequence[Device],
        accelerator: str = "cpu",
        runs_per_device: int = 1,
        start_method: str = "forkserver",
        preload: Sequence[str] = ("torch", "lightning"),
        threads_per_worker: Optional[int] = None,
        reuse_workers: Optional[bool] = None,
    ) -> None:
        if isinstance(devices, (str, int)) or not devices:
            raise ConfigError(f"`devices` must be a non-empty list such as [0] or [0, 1]; got {devices!r}")
        self.devices: list[Device] = [_check_device(d) for d in devices]
        if isinstance(runs_per_device, bool) or not isinstance(runs_per_device, int) or runs_per_device < 1:
            raise ConfigError(f"`runs_per_device` must be an integer >= 1; got {runs_per_device!r}")
        if threads_per_worker is not None and (
            isinstance(threads_per_worker, bool) or not isinstance(threads_per_worker, int)
            or threads_per_worker < 1
        ):
            raise ConfigError(f"`threads_per_worker` must be an integer >= 1 or None; got {threads_per_worker!r}")
        methods = multiprocessing.get_all_start_methods()
        if start_method == "forkserver" and start_method not in methods:
            start_method = "spawn"
        if start_method not in methods:
            raise one_of("start_method", start_method, methods)

        self.accelerator = str(accelerator).lower()
        self.reuse_workers = self.accelerator == "cpu" and (reuse_workers is None or bool(reuse_workers))
        self.runs_per_device = runs_per_device
        self.start_method = start_method
        self.n_slots = len(self.devices) * runs_per_device
        self.threads_per_worker = thread_budget(self.n_slots, threads_per_worker)
        for device in self.devices:  # fail now, not in the scheduler, on a device CUDA cannot see
            pin_environment(device, self.accelerator, None, os.environ)

        self._ctx = multiprocessing.get_context(start_method)
        if start_method == "forkserver" and not forkserver_running():
            # One preload module imports the list, each import guarded: multiprocessing's own preload only
            # skips ImportError, and any other error in a user's module would take the server down.
            os.environ[PRELOAD_ENV] = ",".join(preload)
            self._ctx.set_forkserver_preload(["tunecv.executors._warm"])
            # Start the server (and its imports) now, in the background, while the driver prepares.
            threading.Thread(target=start_forkserver, name="tunecv-forkserver", daemon=True).start()

        self._lock = threading.Lock()
        self._pending: collections.deque[tuple[Job, bytes]] = collections.deque()
        # Slots interleave devices, so jobs spread over the devices before they share one.
        self._free: collections.deque[Device] = collections.deque(
            d for _ in range(runs_per_device) for d in self.devices
        )
        self._running: dict[Job, Running] = {}
        self._idle: list[Running] = []  # reusable workers waiting for their slot's next job
        self._thread: Optional[threading.Thread] = None
        self._shut_down = False
        self._kill = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._close_wake = weakref.finalize(self, _close_fds, self._wake_r, self._wake_w)
        register(self)

    # -- the Executor API ---------------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
        name = function_name(fn)
        try:
            payload = pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TypeError(
                f"cannot send {name} and its arguments to a worker process: {exc}. Jobs run in other "
                "processes: define the function at module level and pass picklable arguments"
            ) from exc
        job = Job(name)
        with self._lock:
            if self._shut_down:
                raise RuntimeError("cannot submit a job to an executor that was shut down")
            self._pending.append((job, payload))
            self._ensure_thread()
        self._wake()
        return job

    def shutdown(self, cancel_pending: bool = True, kill: bool = False) -> None:
        with self._lock:
            self._shut_down = True
            cancelled = []
            if cancel_pending or kill:
                cancelled = [job for job, _ in self._pending]
                self._pending.clear()
            if kill:
                self._kill = True
            thread = self._thread
        for job in cancelled:  # outside the lock: cancelling runs the jobs' done callbacks
            job.cancel()
        self._wake()
        if thread is threading.current_thread():  # called from a done callback: the thread ends itself
            return
        if thread is not None:
            thread.join()
        self._retire_idle(kill=kill)
        unregister(self)
        self._close_wake()

    def __repr__(self) -> str:
        return (f"DevicePoolExecutor(devices={self.devices!r}, accelerator={self.accelerator!r}, "
                f"runs_per_device={self.runs_per_device}, start_method={self.start_method!r})")

    # -- the scheduler thread -----------------------------------------------------------------------

    def _ensure_thread(self) -> None:  # holds self._lock
        if self._thread is None:
            self._thread = threading.Thread(target=self._schedule, name="tunecv-device-pool", daemon=True)
            self._thread.start()

    def _wake(self) -> None:
        if not self._close_wake.alive:
            return
        with contextlib.suppress(OSError):  # BlockingIOError: a wake-up is already pending
            os.write(self._wake_w, b"x")

    def _schedule(self) -> None:
        try:
            while self._step():
                pass
        except BaseException as exc:  # pragma: no cover - a bug here must not leave workers or waiters
            self._abort(exc)
            raise

    def _step(self) -> bool:
        """One round: launch what fits, wait for an event, handle it. False when there is no work left."""
        with self._lock:
            launches = []
            while self._pending and self._free and not self._kill:
                job, payload = self._pending.popleft()
                if job.set_running_or_notify_cancel():
                    launches.append((job, payload, self._free.popleft()))
        for job, payload, slot in launches:
            self._launch(job, payload, slot)
        with self._lock:
            if not self._running and not self._pending:
                self._thread = None
                retire = self._shut_down
            else:
                retire = None
        if retire is not None:
            if retire:  # shut down from a done callback: nobody else retires the idle workers
                self._retire_idle(kill=self._kill)
            return False
        with self._lock:
            if self._kill:
                for rec in self._running.values():
                    self._terminate(rec, "terminated by shutdown(kill=True)")
            records = list(self._running.values())
        waitables: list[Any] = [self._wake_r]
        for rec in records:
            waitables.append(rec.process.sentinel)
            if rec.conn is not None:
                waitables.append(rec.conn)
        deadlines = [rec.deadline for rec in records if rec.deadline is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        ready = set(multiprocessing.connection.wait(waitables, timeout=timeout))
        self._drain_wake()
        finished, released, never_started = [], [], []
        for rec in records:
            if rec.conn is not None and rec.conn in ready:
                self._read(rec)
            if rec.process.sentinel in ready:
                # The worker is gone: all it sent is in the pipe (an acknowledgement, then maybe a reply).
                while rec.conn is not None and rec.reply is None and readable(rec.conn):
                    self._read(rec)
                if rec.payload is not None and not rec.terminated:
                    never_started.append(rec)
                else:
                    finished.append(rec)
            elif rec.reuse and rec.reply is not None and not rec.terminated:
                released.append(rec)
            elif rec.deadline is not None and time.monotonic() >= rec.deadline:
                self._escalate(rec)
        for rec in finished:
            self._finish(rec)
        for rec in released:
            self._release(rec)
        for rec in never_started:
            self._relaunch(rec)
        return True

    def _launch(self, job: Job, payload: bytes, slot: Device, fresh: bool = False) -> None:
        job.device = slot
        if self.reuse_workers and not fresh and self._send_to_idle(job, payload, slot):
            return
        reader = writer = None
        try:
            reader, writer = self._ctx.Pipe(duplex=self.reuse_workers)
            environ = pin_environment(slot, self.accelerator, self.threads_per_worker, os.environ)
            process = self._ctx.Process(
                target=worker_main,
                args=(writer, payload, slot, environ, self.threads_per_worker, job.name, self.reuse_workers),
                name=f"tunecv-worker-{slot}",
                daemon=False,
            )
            process.start()
        except Exception as exc:  # e.g. out of file descriptors: this job fails, the pool goes on
            if reader is not None:
                reader.close()
            with self._lock:
                self._free.append(slot)
            job.set_exception(exc)
            return
        finally:
            if writer is not None:
                writer.close()  # only the worker holds the write end, so its death reads as EOF
        job.pid = process.pid
        with self._lock:
            self._running[job] = Running(job, slot, process, reader, reuse=self.reuse_workers)

    def _send_to_idle(self, job: Job, payload: bytes, slot: Device) -> bool:
        """Give ``job`` to an idle worker of ``slot``; False when there is none alive to take it."""
        while True:
            with self._lock:
                rec = next((r for r in self._idle if r.slot == slot), None)
                if rec is None:
                    return False
                self._idle.remove(rec)
            try:
                if rec.process.exitcode is not None:  # died while it waited
                    raise OSError("idle worker is gone")
                environ = pin_environment(slot, self.accelerator, self.threads_per_worker, os.environ)
                rec.conn.send_bytes(pickle.dumps((payload, environ, job.name), protocol=pickle.HIGHEST_PROTOCOL))
            except (OSError, ValueError):
                retire([rec], kill=True)
                continue
            job.pid = rec.process.pid
            rec.job, rec.payload = job, payload  # not started until the worker acknowledges it
            with self._lock:
                self._running[job] = rec
            return True

    def _read(self, rec: Running) -> None:
        try:
            message: Optional[bytes] = rec.conn.recv_bytes()
        except (EOFError, OSError):  # died before or while sending
            message = None
        if message is None or not rec.reuse:
            rec.conn.close()
            rec.conn = None
        if message == ACK:  # the worker has the job: from now on it runs there or fails there
            rec.payload = None
            return
        if message is not None and not rec.terminated:
            try:
                rec.reply = unpack_reply(message)
            except Exception as exc:  # pragma: no cover - the outer message holds only builtins
                rec.reply = (False, RemoteError(type(exc).__qualname__, f"unreadable reply from the worker: {exc}"))
            if not rec.reuse and rec.process.exitcode is None:
                # it should exit now; do not let it hold the slot forever
                rec.deadline = time.monotonic() + EXIT_GRACE

    def _relaunch(self, rec: Running) -> None:
        """An idle worker died before it acknowledged the job handed to it: a new worker runs the job.

        Nothing of the job ran (the worker acknowledges before it unpickles the job), so it is not run
        twice; the slot stays taken by the job.
        """
        job, payload = rec.job, rec.payload
        exitcode = reap(rec)
        log.debug("worker %s on device %s ended (exit code %s) before it took %s; a new worker runs it",
                  job.pid, rec.slot, exitcode, job.name)
        with self._lock:
            del self._running[job]
            kill = self._kill
            if kill:
                self._free.append(rec.slot)
        if kill:  # shutdown(kill=True) came in the meantime: the job does not start again
            reason = "terminated by shutdown(kill=True)"
            job.set_exception(WorkerDiedError(
                death_message(rec.slot, job.name, exitcode, reason), rec.slot, exitcode
            ))
            return
        self._launch(job, payload, rec.slot, fresh=True)

    def _release(self, rec: Running) -> None:
        """A reusable worker sent its job's result and lives on: it waits, idle, for its slot's next job."""
        job, (ok, outcome) = rec.job, rec.reply
        with self._lock:
            del self._running[job]
            rec.job, rec.reply = None, None
            self._idle.append(rec)
            self._free.append(rec.slot)
        if ok:  # after the slot is free: a done callback may submit the next job at once
            job.set_result(outcome)
        else:
            job.set_exception(outcome)

    def _retire_idle(self, kill: bool = False) -> None:
        """End the idle workers: their pipe closes, they exit (``kill``: SIGKILL at once)."""
        with self._lock:
            idle, self._idle = self._idle, []
        retire(idle, kill)

    def _terminate(self, rec: Running, reason: Optional[str]) -> None:  # holds self._lock
        if rec.terminated:
            return
        rec.terminated = True
        rec.kill_reason = reason
        rec.deadline = time.monotonic() + TERMINATE_GRACE
        with contextlib.suppress(OSError, ValueError):  # already gone
            rec.process.terminate()

    def _escalate(self, rec: Running) -> None:
        if not rec.terminated:  # sent its result but did not exit
            with self._lock:
                self._terminate(rec, None)
        elif not rec.killed:
            rec.killed = True
            rec.deadline = None
            with contextlib.suppress(OSError, ValueError):
                rec.process.kill()

    def _finish(self, rec: Running) -> None:
        exitcode = reap(rec)
        with self._lock:
            del self._running[rec.job]
            self._free.append(rec.slot)
        if rec.reply is not None:
            ok, outcome = rec.reply
            if ok:
                rec.job.set_result(outcome)
            else:
                rec.job.set_exception(outcome)
            return
        rec.job.set_exception(WorkerDiedError(
            death_message(rec.slot, rec.job.name, exitcode, rec.kill_reason), rec.slot, exitcode
        ))

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _abort(self, exc: BaseException) -> None:  # pragma: no cover - only on a scheduler bug
        with self._lock:
            self._shut_down = True
            records = list(self._running.values())
            pending = list(self._pending)
            self._pending.clear()
            self._running.clear()
            self._thread = None
        for rec in records:
            try:
                rec.process.kill()
                rec.process.join(TERMINATE_GRACE)
            except Exception:
                pass
            if not rec.job.done():
                rec.job.set_exception(WorkerDiedError(
                    f"worker on device {rec.slot} was killed: the device pool's scheduler failed: {exc!r}",
                    rec.slot,
                ))
        for job, _ in pending:
            job.cancel()
        self._retire_idle(kill=True)

def _close_fds(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)

