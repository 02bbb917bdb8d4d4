"""A pool's handle on one worker process: its record, retiring and reaping it, the message of its death."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from tunecv.executors._base import Device, Job

__all__ = ["EXIT_GRACE", "OOM_KILLED", "TERMINATE_GRACE", "Running", "death_message", "readable", "reap", "retire"]

# After a worker sent its result it should exit at once; one still alive after this long is terminated.
EXIT_GRACE = 10.0
# After SIGTERM, a worker still alive after this long gets SIGKILL.
TERMINATE_GRACE = 3.0


@dataclass
class Running:
    """A job whose worker process is alive (or not yet reaped)."""

    job: Optional[Job]  # None while the worker waits for its next job (an idle, reusable worker)
    slot: Device
    process: Any  # multiprocessing.process.BaseProcess
    conn: Any  # the driver's end of the worker's pipe, None once closed
    reuse: bool = False  # the worker takes the next job of its slot instead of exiting
    # The job's payload while it waits for the worker's acknowledgement (a job handed to an idle worker):
    # until then nothing of the job has run, and a worker that dies gives it back to a new worker.
    payload: Optional[bytes] = None
    reply: Optional[tuple[bool, Any]] = None
    deadline: Optional[float] = None  # when to escalate (terminate, then kill)
    terminated: bool = False
    killed: bool = False
    kill_reason: Optional[str] = None


def readable(conn: Any) -> bool:
    """Whether ``conn`` has a message or its end of file to read now."""
    try:
        return bool(conn.poll(0))
    except (OSError, EOFError, ValueError):
        return True  # _read then finds the pipe broken and closes it


def retire(workers: Sequence[Running], kill: bool) -> None:
    """End idle workers: close their pipe (a worker waiting for a job then exits), reap them.

    One still alive after ``TERMINATE_GRACE`` (or at once with ``kill``) gets SIGKILL.
    """
    for rec in workers:
        if rec.conn is not None:
            with contextlib.suppress(OSError):
                rec.conn.close()
            rec.conn = None
        if kill:
            with contextlib.suppress(OSError, ValueError):
                rec.process.kill()
    deadline = time.monotonic() + TERMINATE_GRACE
    for rec in workers:
        with contextlib.suppress(ValueError):  # already closed
            rec.process.join(max(0.0, deadline - time.monotonic()))
            if rec.process.exitcode is None:
                rec.process.kill()
                rec.process.join()
            rec.process.close()


def reap(rec: Running) -> Optional[int]:
    """Close an ended worker's pipe, wait for its process and free it; its exit code."""
    if rec.conn is not None:
        rec.conn.close()
        rec.conn = None
    rec.process.join()
    exitcode = rec.process.exitcode
    rec.process.close()
    return exitcode


OOM_KILLED = "killed (out of memory?)"


def death_message(device: Device, name: str, exitcode: Optional[int], reason: Optional[str]) -> str:
    """The message of a :class:`WorkerDiedError`."""
    if reason is not None:
        return f"worker on device {device} was {reason} while running {name}"
    if exitcode is not None and exitcode < 0:
        try:
            sig_name = signal.Signals(-exitcode).name
        except ValueError:
            sig_name = "signal"
        message = f"worker on device {device} died: killed by signal {sig_name} ({-exitcode}) while running {name}"
        if -exitcode == signal.SIGKILL:
            message += f": {OOM_KILLED} (no other cause: the kernel's out-of-memory killer sends SIGKILL; check the run's memory use)"
        elif -exitcode == signal.SIGSEGV:
            message += " (a segmentation fault in native code)"
        return message
    return (f"worker on device {device} died: exited with code {exitcode} without sending a result "
            f"while running {name} (its stderr may say why)")

