"""One job for all the runs of a cv: what :func:`tunecv.cv.drive` does for an executor whose
``cv_per_job`` is set (``executor: slurm`` under ``tune-parallel``: each trial's cv is one SLURM job).

The job (:func:`tunecv.cv.run_cv_job`) trains the cv's runs one after the other in one process, so it pays its
Python start and its ``import torch, lightning`` once per cv instead of once per run. Its id is recorded in
every one of those runs' ``run_info.json`` (``executor.job_ids``), so ``--resume`` re-attaches to it
instead of submitting the runs again. Requeued (preemption, time limit, ``scontrol requeue``), the job
starts from the top: a completed run returns at once from its folder, the run in progress continues from
its ``last`` checkpoint.

The driver records each run as soon as its folder says it completed (not only when the job ends), so a
tune's pruner sees every fold as it finishes: a cv pruned while its job runs has the job cancelled; the
runs it had not finished are then not recorded (``pruned`` rows), like runs a pruner never let start.
A run that failed inside the job is recorded from the job's result, with its error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional

from tunecv._io import read_json

__all__ = ["CVJob", "recorded_job_ids"]


def recorded_job_ids(run_dir: Any) -> list[str]:
    """The ids of the jobs recorded in a run's ``run_info.json`` (``executor.job_ids``)."""
    entry = (read_json(f"{run_dir}/run_info.json") or {}).get("executor") or {}
    return [str(i) for i in entry.get("job_ids", [])]


class CVJob:
    """The runs of one session given to one job, and which of them the driver has recorded."""

    def __init__(self, session: Any, runs: Sequence[Any], job: Any) -> None:
        self.session, self.runs, self.job = session, list(runs), job
        self.cancelled_by_pruner = False

    @classmethod
    def start(cls, executor: Any, session: Any, job_fn: Any, *, quiet: bool, overrides: Mapping[str, Any]) -> CVJob:
        """Launch every run the session has left as one job: the job an earlier driver left for them when
        there is one (``executor.reattach``), else a new one (``executor.submit_runs`` of ``job_fn`` with
        the list of the runs' arguments)."""
        runs = []
        while (run := session.next_run()) is not None:
            runs.append(run)
        job = executor.reattach(runs[0].run_dir)
        if job is not None:
            job_id = str(getattr(job, "job_id", ""))
            covered = [r for r in runs if job_id in recorded_job_ids(r.run_dir)] or runs[:1]
            for run in runs:
                if run not in covered:  # not this job's: launched by a later job
                    session.unlaunch(run)
            return cls(session, covered, job)
        args = [session.job_args(run, quiet=quiet, overrides=overrides) for run in runs]
        job = executor.submit_runs([run.run_dir for run in runs], job_fn, args)
        return cls(session, runs, job)

    def pending(self) -> list[Any]:
        return [r for r in self.runs if r.index not in self.session.rows]

    def completed_so_far(self) -> Iterator[tuple[Any, Any]]:
        """``(run, result)`` for the runs whose folder says they completed and that are not recorded yet.

        Only completed runs: a ``failed`` record may be an attempt that a requeue goes on with; failures
        come from the job's result.
        """
        from tunecv.train import read_result

        for run in self.pending():
            result = read_result(run.run_dir)
            if result is not None and result.status == "completed":
                yield run, result

    def cancel_if_pruned(self) -> None:
        """The pruner stopped the session: cancel the job (its unfinished runs are dropped)."""
        if self.session.pruned and not self.cancelled_by_pruner and self.pending() and not self.job.done():
            self.cancelled_by_pruner = True
            self.job.cancel()

    def outcomes(self) -> Iterator[tuple[Any, Any, Optional[BaseException]]]:
        """When the job is done: ``(run, result, error)`` for each run not recorded yet."""
        from tunecv.train import read_result

        try:
            by_dir = {folder: (result, error) for folder, result, error in self.job.result()}
            job_error = None
        except Exception as exc:
            by_dir, job_error = {}, exc
        for run in self.pending():
            if str(run.run_dir) in by_dir:
                yield run, *by_dir[str(run.run_dir)]
                continue
            result = read_result(run.run_dir)
            if result is not None and result.status == "completed":
                yield run, result, None
            elif self.cancelled_by_pruner:
                self.session.unlaunch(run)  # never finished: a pruned run, not a failed one
            else:
                yield run, None, job_error or RuntimeError(f"the job of {run.name} returned no result for it")
