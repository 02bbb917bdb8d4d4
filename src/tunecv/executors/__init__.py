"""Executors: run picklable callables, each on one device, in this process or in worker processes.

A leaf module: it imports neither torch nor lightning (a worker imports torch only to set its thread
count, and only when torch is already loaded), and knows nothing about runs, cvs or tunes.

- :class:`SerialExecutor` runs each job in this process when it is submitted.
- :class:`DevicePoolExecutor` runs each job in a new worker process pinned to a free device slot.
- :func:`make_executor` picks one from the ``devices`` / ``accelerator`` settings.

Both follow the :class:`Executor` contract: ``submit(fn, *args) -> Job``, ``Job.result()`` returns the
value or re-raises, ``wait``, ``as_completed`` and ``shutdown``.
"""

from tunecv.executors._base import (
    Device,
    Executor,
    Job,
    RemoteError,
    WorkerDiedError,
    current_device,
)
from tunecv.executors._factory import gpu_count, make_executor
from tunecv.executors._pool import DevicePoolExecutor, available_cpus
from tunecv.executors._serial import SerialExecutor

__all__ = [
    "Device",
    "DevicePoolExecutor",
    "Executor",
    "Job",
    "RemoteError",
    "SerialExecutor",
    "WorkerDiedError",
    "available_cpus",
    "current_device",
    "gpu_count",
    "make_executor",
]
