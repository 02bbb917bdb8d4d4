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
    from tunecv.executors import _testing as T

    n_gpus = len(os.environ["CUDA_VISIBLE_DEVICES"].split(","))
    with DevicePoolExecutor(list(range(n_gpus)), accelerator="gpu", runs_per_device=runs_per_device,
                            preload=(), start_method="spawn") as pool:
        jobs = [pool.submit(T.timed_sleep, 1.0) for _ in range(n_jobs)]
        where_jobs = [pool.submit(T.where) for _ in range(n_jobs)]
        timings = [j.result() for j in jobs]
        seen = [j.result() for j in where_jobs]
    return [{"job_visible": os.environ["CUDA_VISIBLE_DEVICES"], **t, **s} for t, s in zip(timings, seen)]
