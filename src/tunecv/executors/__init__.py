"""Executors: run picklable callables on the devices they need, in this process, in worker processes,
or as jobs of a cluster scheduler.

A leaf module: it imports neither torch nor lightning (a worker imports torch only to set its thread
count, and only when torch is already loaded), and knows nothing about runs, cvs or tunes.

- :class:`SerialExecutor` runs each job in this process when it is submitted (``executor: local``).
- :class:`DevicePoolExecutor` runs each job in a worker process pinned to a free device slot
  (``executor: local`` with cv-parallel / tune-parallel): a new one per job on GPUs; on CPU a slot's
  worker runs the slot's next job too.
- :func:`prestart_forkserver` starts a pool's fork server early, as a fork of this process where
  :func:`can_fork_server_here`.
- :func:`make_executor` picks one of those two from the ``devices`` / ``accelerator`` settings.
- :func:`make_executor_from_config` builds the executor that the ``executor:`` key names, from the
  registry :data:`EXECUTORS` (one module per executor; see :mod:`tunecv.executors._registry` for how to
  add one).

Every executor follows the :class:`Executor` contract: ``submit(fn, *args) -> Job``, ``Job.result()``
returns the value or re-raises, ``wait``, ``as_completed`` and ``shutdown``, and reports ``n_slots``
and ``pinned``.
"""

from tunecv.executors._base import (
    Device,
    Executor,
    Job,
    RemoteError,
    WorkerDiedError,
    current_device,
    job_overrides,
)
from tunecv.executors._forkserver import can_fork_server_here, prestart_forkserver
from tunecv.executors._local import LocalConfig, gpu_count, make_executor, run_modules
from tunecv.executors._pool import DevicePoolExecutor
from tunecv.executors._ray import RayConfig
from tunecv.executors._registry import (
    EXECUTORS,
    check_executor_config,
    executor_names,
    executor_sections,
    job_states,
    make_executor_from_config,
    register_executor,
)
from tunecv.executors._serial import SerialExecutor
from tunecv.executors._slurm_config import SlurmConfig
from tunecv.executors._threads import available_cpus, thread_budget

__all__ = [
    "EXECUTORS",
    "Device",
    "DevicePoolExecutor",
    "Executor",
    "Job",
    "LocalConfig",
    "RayConfig",
    "RemoteError",
    "SerialExecutor",
    "SlurmConfig",
    "WorkerDiedError",
    "available_cpus",
    "can_fork_server_here",
    "check_executor_config",
    "current_device",
    "executor_names",
    "executor_sections",
    "gpu_count",
    "job_overrides",
    "job_states",
    "make_executor",
    "make_executor_from_config",
    "prestart_forkserver",
    "register_executor",
    "run_modules",
    "thread_budget",
]
