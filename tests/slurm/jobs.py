"""Job functions of the SLURM tests; light (no torch, no lightning), so that a job starts fast."""

from __future__ import annotations

import os
import time
from typing import Any


def where(sleep: float = 0.0) -> dict[str, Any]:
    """What a job sees of its allocation (after sleeping, so that jobs overlap)."""
    time.sleep(sleep)
    return {key: os.environ.get(key) for key in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURM_NTASKS",
                                                 "SLURM_PROCID", "SLURM_JOB_GPUS", "SUBMITIT_EXECUTOR",
                                                 "OMP_NUM_THREADS")}


def pack(runs_per_device: int, n_jobs: int) -> list[dict[str, Any]]:
    """Inside a SLURM job: a local device pool over the job's GPUs, ``runs_per_device`` jobs per GPU."""
    from tunecv.executors import DevicePoolExecutor

    n_gpus = len(os.environ["CUDA_VISIBLE_DEVICES"].split(","))
    with DevicePoolExecutor(list(range(n_gpus)), accelerator="gpu", runs_per_device=runs_per_device,
                            preload=(), start_method="spawn") as pool:
        jobs = [pool.submit(sleep_and_say_where, 1.0) for _ in range(n_jobs)]
        rows = [j.result() for j in jobs]
    return [{"job_visible": os.environ["CUDA_VISIBLE_DEVICES"], **row} for row in rows]


def sleep_and_say_where(seconds: float) -> dict[str, Any]:
    """One packed run: when it slept, and the pinning it saw (the same run, so the GPU is the sleep's)."""
    from tunecv.executors import _testing as T

    return {**T.timed_sleep(seconds), **T.where()}
