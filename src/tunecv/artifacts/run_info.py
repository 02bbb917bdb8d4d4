"""``run_info.json``: the one record of a run, and its one writer.

Two parties write into a run's record, each its own part, and both through this module (atomic writes
through :mod:`tunecv._io`):

- the run (:mod:`tunecv.train`) writes its result (:class:`RunInfo`'s result keys) with
  :func:`write_result`; ``None`` before it has one;
- an executor records the jobs it ran the run in (the ``executor`` entry, :class:`ExecutorRecord`) with
  :func:`record_job`, and reads them back with :func:`executor_record` (to re-attach on ``--resume``).

Each keeps the other's part. The keys on disk are those of :class:`RunInfo`; :data:`RUN_INFO_VERSION`
says which version of this schema the code reads and writes (the file does not carry it: version 1 is
the layout every tunecv so far wrote).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, TypedDict

from tunecv._io import atomic_write_json, read_json
from tunecv.artifacts.files import RUN_INFO_FILE

__all__ = [
    "EXECUTOR_KEY",
    "RESULT_KEYS",
    "RUN_INFO_VERSION",
    "ExecutorRecord",
    "RunInfo",
    "executor_record",
    "read_run_info",
    "record_job",
    "run_info_path",
    "write_result",
]

RUN_INFO_VERSION = 1
EXECUTOR_KEY = "executor"  # the jobs an executor recorded for this run (kept across the run's own writes)


class ExecutorRecord(TypedDict, total=False):
    """The ``executor`` entry: the jobs one executor ran the run in."""

    name: str  # the executor's registry name (``slurm``)
    job_ids: list[str]  # every job submitted for the run, oldest first
    log: str  # the last job's log file
    job_name: str  # the scheduler's job name (a lost id is found again by it)
    folder: str  # the folder of the executor's own files (submitit's)
    runs: list[str]  # the run folders one job runs, in order (a job of several runs)


class RunInfo(TypedDict, total=False):
    """``run_info.json`` (version :data:`RUN_INFO_VERSION`): a run's result, then the executor's entry."""

    name: str
    run_id: str
    run_dir: str
    metrics: dict[str, float]
    checkpoint: Optional[str]
    last_checkpoint: Optional[str]
    fold: int
    seed: int
    status: str  # completed | failed | pruned
    error: Optional[str]
    started_at: Optional[str]  # ISO 8601, UTC
    finished_at: Optional[str]
    duration: float
    pruned_at_epoch: Optional[int]  # a run a tune's pruner stopped inside (tunecv.pruning): the epochs it trained
    executor: ExecutorRecord


RESULT_KEYS = tuple(k for k in RunInfo.__annotations__ if k != EXECUTOR_KEY)


def run_info_path(folder: str | Path) -> Path:
    """``{folder}/run_info.json``."""
    return Path(folder) / RUN_INFO_FILE


def read_run_info(folder: str | Path) -> RunInfo:
    """The record in a run folder; ``{}`` when it has none (or it cannot be read)."""
    data = read_json(run_info_path(folder))
    return data if isinstance(data, dict) else {}  # type: ignore[return-value]


def has_run_info(folder: str | Path) -> bool:
    """Whether the folder holds a run record (a run that started under tunecv)."""
    return run_info_path(folder).is_file()


def write_result(folder: str | Path, result: Optional[Mapping[str, Any]]) -> None:
    """Write the run's result (``None``: it has none yet), keeping the executor's entry.

    With neither a result nor an executor entry, the file is removed: a run that starts again leaves no
    result of an earlier attempt behind.
    """
    path = run_info_path(folder)
    old = read_run_info(folder)
    keep = {EXECUTOR_KEY: old[EXECUTOR_KEY]} if EXECUTOR_KEY in old else {}
    if result is None and not keep:
        path.unlink(missing_ok=True)
        return
    atomic_write_json(path, {**(result or {}), **keep})


def executor_record(folder: str | Path) -> ExecutorRecord:
    """The ``executor`` entry of a run folder; ``{}`` when no executor recorded a job there."""
    entry = read_run_info(folder).get(EXECUTOR_KEY)
    return entry if isinstance(entry, dict) else {}  # type: ignore[return-value]


def record_job(folder: str | Path, executor: str, job_id: str, *, log: str, job_name: str, job_folder: str | Path,
               runs: Optional[Sequence[str]] = None) -> None:
    """Add a job to the run's ``executor`` entry, keeping the run's result.

    Args:
        folder: the run folder (for a job of several runs: the first run's).
        executor: the executor's registry name; an entry of another executor is replaced.
        job_id: the job's id, appended once to ``job_ids``.
        log: the job's log file.
        job_name: its name in the scheduler.
        job_folder: the folder of the executor's own files for the job.
        runs: the run folders the job runs, in order (a job of several runs).
    """
    data = dict(read_run_info(folder))
    entry: dict[str, Any] = dict(data.get(EXECUTOR_KEY) or {})
    if entry.get("name") != executor:
        entry = {"name": executor, "job_ids": []}
    if job_id not in entry["job_ids"]:
        entry["job_ids"] = [*entry["job_ids"], job_id]
    entry.update(log=log, job_name=job_name, folder=str(job_folder))
    if runs is not None:
        entry["runs"] = list(runs)
    data[EXECUTOR_KEY] = entry  # type: ignore[typeddict-item]
    with contextlib.suppress(OSError):
        atomic_write_json(run_info_path(folder), data)
