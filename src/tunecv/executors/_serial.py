"""The in-process executor: runs each job at ``submit()`` time, in the calling thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tunecv.executors._base import Executor, Job, function_name

__all__ = ["SerialExecutor"]


class SerialExecutor(Executor):
    """Runs each job in this process, synchronously, when it is submitted.

    It follows the :class:`Executor` contract: ``submit()`` returns a finished :class:`Job` whose
    ``result()`` returns the value or re-raises the exception (with its own traceback). Nothing is
    pickled. ``KeyboardInterrupt`` and ``SystemExit`` are not caught: they stop the caller at once,
    as they would without an executor. ``n_slots`` is 1 and ``job.device`` is ``None``.
    """

    name = "local"
    n_slots = 1
    pinned = False

    def __init__(self) -> None:
        self._shut_down = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
        if self._shut_down:
            raise RuntimeError("cannot submit a job to an executor that was shut down")
        job = Job(function_name(fn))
        job.set_running_or_notify_cancel()
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:
            job.set_exception(exc)
        else:
            job.set_result(value)
        return job

    def shutdown(self, cancel_pending: bool = True, kill: bool = False) -> None:
        self._shut_down = True

    def __repr__(self) -> str:
        return "SerialExecutor()"
