"""Tiny job functions for the executor tests.

They live in the package, not in ``tests/``, so that a worker process can import them whatever its
``sys.path`` (a fork server started before pytest put ``tests/`` on the path would not find them).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from tunecv.executors._base import current_device
from tunecv.executors._serial import SerialExecutor


class CustomError(Exception):
    """A picklable exception type defined outside the standard library."""


class UnpicklableError(Exception):
    """An exception that cannot be rebuilt from its args (its ``__init__`` takes two)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code


def add(a: Any, b: Any) -> Any:
    return a + b


def fail(message: str, error: type[Exception] = ValueError) -> None:
    raise error(message)


def fail_unpicklable(message: str) -> None:
    raise UnpicklableError(message, 7)


def return_unpicklable() -> Any:
    return threading.Lock()


def sleep_and_return(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


def timed_sleep(seconds: float) -> dict[str, Any]:
    """Sleep; report when, where and in which process."""
    start = time.time()
    time.sleep(seconds)
    return {"start": start, "end": time.time(), "device": current_device(), "pid": os.getpid()}


def where() -> dict[str, Any]:
    """The pinning a job sees."""
    return {
        "device": current_device(),
        "pid": os.getpid(),
        "TUNECV_DEVICE": os.environ.get("TUNECV_DEVICE"),
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "TUNECV_TEST_MARKER": os.environ.get("TUNECV_TEST_MARKER"),
    }


def record_pid(path: str) -> int:
    """Append this process's pid to the file at ``path`` (one line per call); return it."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    return os.getpid()


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def kill_self(sig: int = signal.SIGKILL) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(10)


def exit_now(code: int) -> None:
    os._exit(code)


# -- an executor registered only by the seam tests -----------------------------------------------------

RECORDED_FOLDERS: list[str] = []


def recording_from_config(cfg: Any, *, parallel: bool, accelerator: str) -> Any:
    """A serial executor that records each run folder it is given (registered only by the seam tests)."""
    class Recording(SerialExecutor):
        name = "recording"
        pinned = True  # its runs take the pinned run's one device (Executor.run_overrides)

        def submit_run(self, folder: Any, fn: Any, /, *args: Any) -> Any:
            RECORDED_FOLDERS.append(str(folder))
            return self.submit(fn, *args)

    return Recording()


def has_module(name: str) -> bool:
    """Whether the worker started with module ``name`` already imported (inherited from its fork server)."""
    import sys

    return name in sys.modules
