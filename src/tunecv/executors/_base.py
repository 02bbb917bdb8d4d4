"""The executor contract: :class:`Job`, :class:`Executor` and the errors a job can end with.

This module is light (standard library only) and knows nothing about runs, cvs or tunes: an executor
runs picklable callables, each on one device.
"""

from __future__ import annotations

import concurrent.futures
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Optional, Union

from tunecv.errors import TunecvError, one_of

__all__ = [
    "Device",
    "Executor",
    "Job",
    "RemoteError",
    "WorkerDiedError",
    "current_device",
    "job_overrides",
]

Device = Union[int, str]

RETURN_WHEN = (
    concurrent.futures.FIRST_COMPLETED,
    concurrent.futures.FIRST_EXCEPTION,
    concurrent.futures.ALL_COMPLETED,
)

# Set by the worker process before the job's function runs (see ``_worker.py``), through pin_device.
_CURRENT_DEVICE: Optional[Device] = None


def pin_device(device: Optional[Device]) -> None:
    """This process runs its jobs on ``device`` (what :func:`current_device` answers): a worker calls it before
    each job."""
    global _CURRENT_DEVICE
    _CURRENT_DEVICE = device


def current_device() -> Optional[Device]:
    """The device this process was pinned to by a :class:`DevicePoolExecutor` worker, else ``None``.

    Inside a worker this is the entry of ``devices`` the job was given (an ``int`` stays an ``int``).
    A process started from a worker (a DataLoader worker, a ``ddp_fork`` rank) sees the same device
    through the ``TUNECV_DEVICE`` environment variable.
    """
    if _CURRENT_DEVICE is not None:
        return _CURRENT_DEVICE
    value = os.environ.get("TUNECV_DEVICE")
    if not value:
        return None
    return int(value) if value.isdigit() else value


class WorkerDiedError(TunecvError):
    """The worker process running a job died before it sent a result.

    It was killed by a signal (``SIGKILL`` from the out-of-memory killer, a segfault), exited without a
    result, or was terminated by ``shutdown(kill=True)``. The message names the device, the signal or
    exit code and the job.

    Attributes:
        device: the device the worker was pinned to.
        exitcode: the worker's exit code (negative: the number of the signal that killed it).
    """

    def __init__(self, message: str, device: Optional[Device] = None, exitcode: Optional[int] = None) -> None:
        super().__init__(message, device, exitcode)
        self.device = device
        self.exitcode = exitcode

    def __str__(self) -> str:
        return str(self.args[0])


class RemoteError(TunecvError):
    """An exception raised in a worker that could not be sent back as itself (it does not pickle).

    Also used for a return value that does not pickle, and for ``SystemExit`` / ``KeyboardInterrupt``
    raised by a job inside a worker (the driver decides when to stop, not a job).

    Attributes:
        type_name: the qualified name of the original exception type, e.g. ``"mypkg.MyError"``.
        message: ``str()`` of the original exception.
        remote_traceback: the traceback text formatted in the worker.
    """

    def __init__(self, type_name: str, message: str, remote_traceback: str = "") -> None:
        super().__init__(type_name, message, remote_traceback)
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}" if self.message else self.type_name


class _RemoteTraceback(Exception):
    """Carries a worker's traceback text; set as ``__cause__`` of a re-raised job exception."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class Job:
    """One submitted call: its state, its device and its outcome.

    ``result()`` returns the call's value or re-raises its exception; a job whose worker died raises
    :class:`WorkerDiedError`. The interface follows :class:`concurrent.futures.Future`; timeouts raise
    :class:`TimeoutError` and a cancelled job raises :class:`concurrent.futures.CancelledError`.

    Attributes:
        name: the qualified name of the submitted function.
        device: the device (slot) the job runs or ran on; ``None`` in-process or before it starts.
        pid: the id of the worker process; ``None`` in-process or before it starts.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.device: Optional[Device] = None
        self.pid: Optional[int] = None
        self._future: concurrent.futures.Future = concurrent.futures.Future()

    def done(self) -> bool:
        """Whether the job finished (with a value, an exception, a dead worker) or was cancelled."""
        return self._future.done()

    def running(self) -> bool:
        """Whether the job was started and has not finished yet."""
        return self._future.running()

    def cancelled(self) -> bool:
        """Whether the job was cancelled before it started."""
        return self._future.cancelled()

    def cancel(self) -> bool:
        """Cancel the job if it has not started yet; return whether it is cancelled."""
        return self._future.cancel()

    def result(self, timeout: Optional[float] = None) -> Any:
        """Wait for the job and return its value, or raise its exception."""
        return self._future.result(timeout)

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        """Wait for the job and return its exception (``None`` when it returned a value)."""
        return self._future.exception(timeout)

    @property
    def state(self) -> str:
        """``"queued"`` (submitted, not started), ``"running"`` or ``"finished"`` (also when cancelled).

        Executors that schedule on a cluster refine it from the scheduler's own view of the job.
        """
        if self._future.done():
            return "finished"
        return "running" if self._future.running() else "queued"

    # -- for executors: the only way a job's outcome is set (nothing sets ``_future`` from outside) ----------

    def set_running_or_notify_cancel(self) -> bool:
        """Mark the job started; ``False`` when it was cancelled first (then it must not run)."""
        return self._future.set_running_or_notify_cancel()

    def set_result(self, value: Any) -> None:
        """End the job with ``value`` (what :meth:`result` returns)."""
        self._future.set_result(value)

    def set_exception(self, exc: BaseException) -> None:
        """End the job with ``exc`` (what :meth:`result` raises)."""
        self._future.set_exception(exc)

    def add_done_callback(self, fn: Callable[[Job], Any]) -> None:
        """Call ``fn(job)`` when the job is done (at once if it already is).

        ``fn`` runs in the thread that ends the job (a pool's scheduler thread): it must not block.
        """
        self._future.add_done_callback(lambda _future: fn(self))

    def __repr__(self) -> str:
        state = self._future._state.lower()  # PENDING / RUNNING / FINISHED / CANCELLED
        where = f" on device {self.device!r}" if self.device is not None else ""
        return f"<Job {self.name}{where} {state}>"


class Executor(ABC):
    """Runs callables, each on the devices it was given; ``n_slots`` of them at once.

    An executor is handed to the code that uses it. ``wait`` and ``as_completed`` behave like their
    :mod:`concurrent.futures` namesakes. As a context manager, leaving the block calls ``shutdown()``
    (pending jobs are cancelled, running ones finish); leaving it with an exception calls
    ``shutdown(kill=True)``.

    What an executor reports to the code that drives it:

    - ``name``: its name in the registry (:mod:`tunecv.executors._registry`), the ``executor:`` key.
    - ``n_slots``: how many jobs it runs at once.
    - ``session_per_job``: a cv's runs are given to one job together, which runs them one after the other
      (``executor: slurm`` under ``tune-parallel``: one SLURM job per trial).
    - ``pinned``: each job runs on devices of its own that the executor chose (a pool worker's one
      device, a SLURM job's allocation); the job then uses :meth:`run_overrides` instead of the
      config's own device settings, and runs quietly (no per-run progress bars).
    - ``groups_sessions``: it can give all of a session's runs to one job; :mod:`tunecv.placement` then
      sets ``session_per_job`` under ``tune-parallel``.
    - ``validate_in_job``: a cv or tune checks its config (builds model and data once) as this executor's
      first job rather than in the driver (a local pool: its worker imports torch and lightning, the
      driver never does).

    Executors whose jobs outlive the driver (a cluster scheduler) also implement :meth:`submit_run`
    (record the job in the run folder) and :meth:`reattach` (find it again after the driver died).
    """

    name: str = ""
    n_slots: int
    pinned: bool = False
    # drive() gives each cv one job for all its runs (see tunecv.scheduler); set by tunecv.placement for an
    # executor that ``groups_sessions``, under tune-parallel
    session_per_job: bool = False
    groups_sessions: bool = False  # it can run a session's runs as one job (a SLURM job per trial)
    validate_in_job: bool = False  # a config is best checked by a job (a pool worker that imports torch)

    @abstractmethod
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
        """Schedule ``fn(*args, **kwargs)`` and return its :class:`Job`."""

    @abstractmethod
    def shutdown(self, cancel_pending: bool = True, kill: bool = False) -> None:
        """Stop accepting jobs and wait until the running ones are over.

        Args:
            cancel_pending: cancel the jobs that have not started; otherwise run them first.
            kill: terminate the running jobs' workers (their jobs raise :class:`WorkerDiedError`);
                pending jobs are cancelled too.
        """

    def run_overrides(self) -> dict[str, Any]:
        """Config keys a run executed by a pinned job takes instead of its own (``devices``, ...).

        Empty for an executor that does not pin (the run uses the config's device settings); a pinned
        job's run uses the one device it was given (:func:`job_overrides`).
        """
        return job_overrides(1) if self.pinned else {}

    def submit_run(self, folder: Any, fn: Callable[..., Any], /, *args: Any) -> Job:
        """Submit ``fn(*args)``, the call that executes the run whose folder is ``folder``.

        The default is :meth:`submit`. An executor whose jobs outlive the driver records the job in
        ``folder`` (the artifact folder is the state of every executor), so that :meth:`reattach`
        finds it after a crash and the same run is never submitted twice.
        """
        return self.submit(fn, *args)

    def submit_runs(self, folders: Any, fn: Callable[..., Any], /, *args: Any) -> Job:
        """Submit ``fn(*args)``, one call that executes the runs whose folders are ``folders`` (a cv's
        runs, for an executor with ``session_per_job``). The default is :meth:`submit`; an executor whose jobs
        outlive the driver records the job in each of the folders, as :meth:`submit_run` does."""
        return self.submit(fn, *args)

    def reattach(self, folder: Any) -> Optional[Job]:
        """The job an earlier driver left queued, running or finished for the run in ``folder``.

        ``None`` when there is none (then the caller submits the run). In-process and pool executors
        never leave a job behind: their jobs die with the driver.
        """
        return None

    def wait(
        self,
        jobs: Iterable[Job],
        timeout: Optional[float] = None,
        return_when: str = "FIRST_COMPLETED",
    ) -> tuple[set[Job], set[Job]]:
        """Wait for jobs; return ``(done, not_done)``, like :func:`concurrent.futures.wait`.

        Args:
            jobs: the jobs to wait for.
            timeout: the most seconds to wait (``None``: no limit).
            return_when: ``"FIRST_COMPLETED"``, ``"FIRST_EXCEPTION"`` or ``"ALL_COMPLETED"``.
        """
        if return_when not in RETURN_WHEN:
            raise one_of("return_when", return_when, RETURN_WHEN)
        by_future = {job._future: job for job in jobs}
        done, not_done = concurrent.futures.wait(by_future, timeout=timeout, return_when=return_when)
        return {by_future[f] for f in done}, {by_future[f] for f in not_done}

    def as_completed(self, jobs: Iterable[Job], timeout: Optional[float] = None) -> Iterator[Job]:
        """Yield jobs as they finish, like :func:`concurrent.futures.as_completed`.

        Raises:
            TimeoutError: ``timeout`` seconds passed before every job finished.
        """
        by_future = {job._future: job for job in jobs}
        for future in concurrent.futures.as_completed(by_future, timeout=timeout):
            yield by_future[future]

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.shutdown(cancel_pending=True, kill=exc_type is not None)


def job_overrides(n_devices: int, multi_device_strategy: str = "ddp_fork") -> dict[str, Any]:
    """The device settings of a run inside a pinned job that was given ``n_devices`` devices.

    The job sees its devices as ``0 .. n_devices-1`` (``CUDA_VISIBLE_DEVICES``, or a CPU thread budget),
    on one node; several devices train with ``multi_device_strategy`` (``ddp_fork`` forked inside the job,
    or ``ddp`` over a SLURM job's tasks). The one definition of a pinned run's placement.
    """
    n = max(1, int(n_devices))
    return {"devices": list(range(n)), "strategy": "auto" if n == 1 else multi_device_strategy, "num_nodes": 1}


def function_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of a callable, for messages."""
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__qualname__
    return f"{module}.{name}" if module and module != "builtins" else str(name)
