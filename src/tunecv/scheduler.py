"""Running sessions of runs on an executor.

A *session* is a set of runs that the scheduler launches one at a time and records as they finish
(:class:`Session`). :func:`drive` keeps an executor's slots busy with the runs of one or several
sessions, opening a new session whenever a slot is free and no open one can use it, and calls the
caller back after each run and each session. What a run does, what a session records and when a
session stops launching runs are the session's business: this module knows only the protocol.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Protocol

if TYPE_CHECKING:  # types only: the scheduler runs on any executor of the contract
    from tunecv.executors import Executor

__all__ = ["Run", "Session", "drive", "run_in_series"]


class Run(Protocol):
    """One planned run: the scheduler needs only its folder (where an executor finds its job again)."""

    @property
    def run_dir(self) -> Path: ...


class Session(Protocol):
    """What :func:`drive` asks of a session of runs."""

    @property
    def in_flight(self) -> int:
        """Runs launched and not yet recorded."""

    def next_run_peek(self) -> Optional[Run]:
        """The run :meth:`next_run` would give, without taking it (``None``: nothing left to launch)."""

    def next_run(self) -> Optional[Run]:
        """Take the next run to launch (``None``: nothing left to launch)."""

    def job(self, run: Any, *, quiet: bool, overrides: Mapping[str, Any]) -> tuple[Callable[..., Any], tuple]:
        """The job body of ``run`` and its (picklable) arguments.

        Args:
            run: a run given by :meth:`next_run`.
            quiet: the job should print nothing but errors (several jobs share one terminal).
            overrides: the device settings the executor gave this job (empty when not pinned).
        """

    def record(self, run: Any, result: Any = None, error: Optional[BaseException] = None) -> dict[str, Any]:
        """Record a finished run (what its job returned, or the error it raised); return its row."""

    # For an executor with ``session_per_job`` (one job for all the runs a session has left) a session also has:
    # ``stopped`` (not ``None`` once it stops launching runs), ``completed_result(run)`` (the result a run
    # left when it completed inside a job still running) and ``unlaunch(run)`` (take back a launched run
    # that its job will not finish).


def drive(
    executor: Executor,
    sessions: Callable[[], Optional[Session]] | Sequence[Session],
    *,
    per_session: int,
    max_sessions: Optional[int] = None,
    quiet: bool,
    pinned: Optional[bool] = None,
    on_run_end: Optional[Callable[[Any, Any, dict], None]] = None,
    on_session_end: Optional[Callable[[Any], None]] = None,
    on_job_states: Optional[Callable[[Mapping[str, int]], None]] = None,
) -> None:
    """Run the runs of ``sessions`` on ``executor`` until every session is done.

    A run whose job raised is recorded as failed (never swallowed); ``KeyboardInterrupt`` and any
    error of the scheduler itself stop it, killing the jobs in flight.

    Args:
        executor: an executor (``submit_run``, ``reattach``, ``wait``, ``n_slots``, ``pinned``, ``shutdown``).
        sessions: the sessions (each meets :class:`Session`), or a callable giving the next one (``None``
            when there is none) — called whenever a slot is free and no open session can use it.
        per_session: runs of one session in flight at once (1 = in series).
        max_sessions: sessions open at once (default: no limit but the executor's slots).
        quiet: ask the jobs to print nothing but errors (passed to :meth:`Session.job`).
        pinned: run each job on the devices the executor gave it (default: ``executor.pinned``).
        on_run_end: ``(session, run, row)``, called after each run is recorded; the place to tell a
            session to stop launching runs.
        on_session_end: called when a session has no run left in flight and nothing to launch.
        on_job_states: called about once a second with how many jobs in flight are ``queued`` and
            ``running`` (from :attr:`Job.state`: for a cluster executor, the cluster's view).

    An executor with ``session_per_job`` (SLURM's, for one) gets all the runs a session has left as
    one job (:func:`run_in_series`, through ``executor.submit_runs``): see :class:`_Group`.
    """
    loop = _Loop(executor, sessions if callable(sessions) else _iter_source(sessions), per_session=per_session,
                 max_sessions=max_sessions, quiet=quiet, pinned=executor.pinned if pinned is None else pinned,
                 on_run_end=on_run_end, on_session_end=on_session_end, on_job_states=on_job_states)
    try:
        loop.run()
    except BaseException:
        executor.shutdown(cancel_pending=True, kill=True)
        raise


def _iter_source(sessions: Sequence[Session]) -> Callable[[], Optional[Session]]:
    pending = list(sessions)
    return lambda: pending.pop(0) if pending else None


class _Loop:
    """The state of one :func:`drive`: the open sessions and the jobs in flight."""

    def __init__(self, executor: Executor, source: Callable[[], Optional[Session]], *, per_session: int,
                 max_sessions: Optional[int], quiet: bool, pinned: bool,
                 on_run_end: Optional[Callable[[Any, Any, dict], None]],
                 on_session_end: Optional[Callable[[Any], None]],
                 on_job_states: Optional[Callable[[Mapping[str, int]], None]]) -> None:
        self.executor, self.source = executor, source
        self.per_session, self.max_sessions, self.quiet = per_session, max_sessions, quiet
        self.on_run_end, self.on_session_end, self.on_job_states = on_run_end, on_session_end, on_job_states
        self.overrides = executor.run_overrides() if pinned else {}
        self.open: list[Session] = []
        self.jobs: dict[Any, tuple[Session, Any]] = {}
        self.grouped = bool(executor.session_per_job)

    def run(self) -> None:
        while True:
            self.close_finished()
            self.fill_slots()
            if not self.jobs:
                self.close_finished()
                return
            self.collect()

    def close_finished(self) -> None:
        """Close the open sessions with nothing in flight and nothing left to launch."""
        for session in list(self.open):
            if session.in_flight == 0 and session.next_run_peek() is None:
                self.open.remove(session)
                if self.on_session_end is not None:
                    self.on_session_end(session)

    def fill_slots(self) -> None:
        """Launch runs while a slot is free: of an open session with room, else of a new session."""
        while len(self.jobs) < self.executor.n_slots:
            session = next((s for s in self.open
                            if s.in_flight < self.per_session and s.next_run_peek() is not None), None)
            if session is None:
                if not self.open_next():
                    return
                continue
            if self.grouped:  # one job for all the runs the session has left
                group = _Group.start(self.executor, session, quiet=self.quiet, overrides=self.overrides)
                self.jobs[group.job] = (session, group)
                continue
            run = session.next_run()
            if run is not None:  # always, after next_run_peek
                self.launch(session, run)

    def open_next(self) -> bool:
        """Open the source's next session; ``False`` when it has none or enough are open."""
        if self.max_sessions is not None and len(self.open) >= self.max_sessions:
            return False
        new = self.source()
        if new is None:
            return False
        self.open.append(new)
        self.close_finished()  # a resumed session may have nothing left to run
        return True

    def launch(self, session: Session, run: Any) -> None:
        # an executor whose jobs outlive the driver may still have this run's job: never submit it twice
        job = self.executor.reattach(run.run_dir)
        if job is None:
            fn, args = session.job(run, quiet=self.quiet, overrides=self.overrides)
            job = self.executor.submit_run(run.run_dir, fn, *args)
        self.jobs[job] = (session, run)

    def collect(self) -> None:
        """Wait for at least one job to finish and record what each finished job left."""
        if self.on_job_states is not None:
            self.on_job_states(collections.Counter(job.state for job in self.jobs))
        polling = self.on_job_states is not None or self.grouped
        done, _ = self.executor.wait(list(self.jobs), timeout=1.0 if polling else None,
                                     return_when="FIRST_COMPLETED")
        if self.grouped:
            self.collect_groups(done)
            return
        for job in done:
            session, run = self.jobs.pop(job)
            try:
                result, error = job.result(), None
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # recorded as a failed run, never swallowed silently
                result, error = None, exc
            row = session.record(run, result, error)
            if self.on_run_end is not None:
                self.on_run_end(session, run, row)

    def collect_groups(self, done: set) -> None:
        """Record the runs of each group job that completed so far (all of them when the job is done), and
        cancel the job of a session that stopped meanwhile."""
        for job in list(self.jobs):
            session, group = self.jobs[job]
            for run, result, error in (group.outcomes() if job in done else group.completed_so_far()):
                group.recorded.add(id(run))
                row = session.record(run, result, error)
                if self.on_run_end is not None:
                    self.on_run_end(session, run, row)
            if job in done:
                del self.jobs[job]
            else:
                group.cancel_if_stopped()


def run_in_series(calls: Sequence[tuple[Callable[..., Any], tuple]]) -> list[tuple[Any, Optional[BaseException]]]:
    """Job body of a group: each ``fn(*args)`` of ``calls`` in turn, in this process (one Python start and
    one import for all of them); ``(result, error)`` for each. A failed call does not stop the others."""
    out: list[tuple[Any, Optional[BaseException]]] = []
    for fn, args in calls:
        try:
            out.append((fn(*args), None))
        except Exception as exc:
            out.append((None, _picklable(exc)))
    return out


class JobCallError(Exception):
    """An error raised by one call of :func:`run_in_series` that does not pickle, as its type and text."""


def _picklable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (the job's result is pickled), else a :class:`JobCallError`."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return JobCallError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")


class _Group:
    """All the runs a session had left, given to one job (an executor with ``session_per_job``: SLURM's,
    where each session is then one SLURM job).

    The job (:func:`run_in_series`) runs them one after the other in one process, so it pays its Python
    start and its imports once. The executor records it in each run's folder (``submit_runs``), so a
    driver started again re-attaches to it instead of submitting the runs again; requeued, the job starts
    from the top (a completed run returns at once from its folder, the one in progress continues from its
    checkpoint). Runs are recorded as their folders say they completed, so a caller deciding to stop a session sees each one;
    a session that stops has its job cancelled, and the runs the job had not finished are taken back
    (``unlaunch``): recorded with the stop's status, like runs never launched.
    """

    def __init__(self, session: Any, runs: Sequence[Any], job: Any, order: Sequence[str]) -> None:
        self.session, self.runs, self.job = session, list(runs), job
        self.order = list(order)  # the run folder names of the job's calls, in the order of its results
        self.recorded: set[int] = set()
        self.cancelled = False

    @classmethod
    def start(cls, executor: Executor, session: Any, *, quiet: bool, overrides: Mapping[str, Any]) -> _Group:
        """The job an earlier driver left for the session's runs (``executor.reattach``), else a new one."""
        runs = []
        while (run := session.next_run()) is not None:
            runs.append(run)
        job = executor.reattach(runs[0].run_dir)
        if job is not None:
            # the run folders the job was submitted for, in order (``job.folders``, where the executor keeps them)
            order = list(getattr(job, "folders", None) or [Path(r.run_dir).name for r in runs])
            covered = [r for r in runs if Path(r.run_dir).name in order] or runs[:1]
            for run in runs:
                if run not in covered:  # not this job's: launched by a later job
                    session.unlaunch(run)
            return cls(session, covered, job, order)
        calls = [session.job(run, quiet=quiet, overrides=overrides) for run in runs]
        job = executor.submit_runs([run.run_dir for run in runs], run_in_series, calls)
        return cls(session, runs, job, [Path(r.run_dir).name for r in runs])

    def pending(self) -> list[Any]:
        return [r for r in self.runs if id(r) not in self.recorded]

    def completed_so_far(self) -> list[tuple[Any, Any, None]]:
        """``(run, result, None)`` for the runs that completed inside the job since the last look."""
        return [(run, result, None) for run in self.pending()
                if (result := self.session.completed_result(run)) is not None]

    def cancel_if_stopped(self) -> None:
        if self.session.stopped is not None and not self.cancelled and self.pending() and not self.job.done():
            self.cancelled = True
            self.job.cancel()

    def outcomes(self) -> list[tuple[Any, Any, Optional[BaseException]]]:
        """When the job is done: ``(run, result, error)`` for each run not recorded yet."""
        try:
            by_folder = dict(zip(self.order, self.job.result()))
            job_error: Optional[BaseException] = None
        except Exception as exc:
            by_folder, job_error = {}, exc
        out: list[tuple[Any, Any, Optional[BaseException]]] = []
        for run in self.pending():
            if Path(run.run_dir).name in by_folder:
                out.append((run, *by_folder[Path(run.run_dir).name]))
            elif (result := self.session.completed_result(run)) is not None:
                out.append((run, result, None))
            elif self.cancelled:
                self.session.unlaunch(run)  # never finished: the stop's status, not a failure
            else:
                out.append((run, None, job_error or RuntimeError(f"its job returned no result for {run}")))
        return out
