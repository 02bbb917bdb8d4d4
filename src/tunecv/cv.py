"""The ``cv`` level: one cross-validation, folds x seeds, each pair one ``train`` run.

A :class:`CrossValidation` plans its runs, records each result in ``run_infos.parquet`` (rewritten
atomically after every run) and scores them. :func:`drive` runs the runs of one or several
cross-validations on an executor; the tune level uses it too, for ``tune-parallel``.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import pickle
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

from tunecv import naming
from tunecv.config import PARALLEL_STRATEGIES, Config
from tunecv.cv_jobs import CVJob
from tunecv.errors import ConfigError, ResumeError, RunFailedError, check_resume_reset
from tunecv.progress import CVProgress

__all__ = ["CVResult", "CVRun", "CrossValidation", "cross_validate", "drive", "plan_seeds"]

log = logging.getLogger(__name__)

RUN_INFOS = naming.RUN_INFOS_FILE
FIRST_SEEDS = (42, 21, 69)


def plan_seeds(n: int) -> list[int]:
    """``n`` seeds: 42, 21, 69, then 1000, 1001, ... (deterministic)."""
    return [*FIRST_SEEDS[:n], *range(1000, 1000 + max(0, n - len(FIRST_SEEDS)))]


@dataclass(frozen=True)
class CVRun:
    """One planned run of a cross-validation."""

    index: int
    fold: int
    seed: int
    name: str
    run_dir: Path


@dataclass
class CVResult:
    """What a cross-validation left.

    Attributes:
        name: the cv name.
        cv_dir: its folder.
        score: the cv score (see :mod:`tunecv.scoring`); NaN when no run completed.
        score_is_unstable: a completed run had a non-finite or zero scoring metric.
        run_infos: one row per run (the content of ``run_infos.parquet``).
        pruned: the cv was stopped early by a pruner.
    """

    name: str
    cv_dir: Path
    score: float
    score_is_unstable: bool
    run_infos: Any
    pruned: bool = False

    @property
    def n_completed(self) -> int:
        return int((self.run_infos["status"] == "completed").sum()) if len(self.run_infos) else 0

    @property
    def n_failed(self) -> int:
        return int((self.run_infos["status"] == "failed").sum()) if len(self.run_infos) else 0


def _run_one(cfg_or_dict: Any, run_name: str, run_dir: str, resume: bool, tracking: Optional[dict],
             quiet: bool, overrides: Optional[Mapping[str, Any]]) -> Any:
    """Job body: one train run (in this process, a pool worker, or a cluster job).

    ``overrides`` are the device settings of a pinned job (:meth:`Executor.run_overrides`). A job that
    starts again (requeued by its scheduler) finds its folder and continues from the ``last`` checkpoint.
    """
    import warnings as _w

    from tunecv.config import config_from_dict
    from tunecv.train import train

    _w.filterwarnings("ignore", message=".*LeafSpec.*")
    if quiet:
        import logging as _logging

        import lightning  # noqa: F401  (importing it sets its loggers to INFO: first import, then quieten)

        for noisy in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning"):
            _logging.getLogger(noisy).setLevel(_logging.WARNING)
        _w.filterwarnings("ignore", module="lightning")
    cfg = cfg_or_dict if isinstance(cfg_or_dict, Config) else config_from_dict(cfg_or_dict)
    # A job started again by its scheduler (requeue), or whose executor made the folder first, continues it.
    resume = resume or os.path.isdir(run_dir)
    if overrides:
        # The executor gave this job its own devices (CUDA_VISIBLE_DEVICES, a CPU thread budget, an allocation).
        cfg = cfg.replace(**overrides)
    with _thread_policy(cfg):
        return train(cfg, name=run_name, run_dir=run_dir, resume=resume, tracking=tracking, quiet=quiet)


def run_cv_job(runs: Sequence[tuple]) -> list[tuple[str, Any, Optional[BaseException]]]:
    """Job body: the runs of one cv (each the arguments of ``_run_one``), in series, in this process.

    Returns ``(run folder, result, error)`` for each run; a failed run does not stop the others.
    """
    out: list[tuple[str, Any, Optional[BaseException]]] = []
    for args in runs:
        try:
            out.append((str(args[2]), _run_one(*args), None))
        except Exception as exc:
            out.append((str(args[2]), None, _picklable(exc)))
    return out


def _picklable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (the job's result is pickled), else a :class:`RemoteError` with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        import traceback

        from tunecv.executors._base import RemoteError

        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        return RemoteError(name, str(exc), "".join(traceback.format_exception(exc)))


@contextlib.contextmanager
def _thread_policy(cfg: Config) -> Iterator[None]:
    """A run outside a device pool gets the CPU threads that fit the machine now (see ``thread_budget``).

    A pool worker already has its budget (set by the pool when it started the worker).
    """
    from tunecv.executors import current_device, thread_budget

    if current_device() is not None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    options = getattr(cfg, "local", None)
    torch.set_num_threads(thread_budget(1, getattr(options, "threads_per_worker", None)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class CrossValidation:
    """The runs of one cross-validation and their results.

    Args:
        cfg: the config (its ``fold`` and ``seed`` are ignored: the plan sets them).
        name: the cv name.
        cv_dir: the folder of the cv (its runs are sub-folders).
        resume: keep completed runs found in ``cv_dir`` and continue the others.
        tracking: wandb ``group`` / ``job_type`` / ``config`` for every run.
        extra_columns: values added to every row (a tune adds ``tune_name``, ``trial``, hyperparameters).
    """

    def __init__(self, cfg: Config, name: str, cv_dir: Union[str, Path], *, resume: bool = False,
                 tracking: Optional[Mapping[str, Any]] = None,
                 extra_columns: Optional[Mapping[str, Any]] = None) -> None:
        self.cfg = _cv_strategy(cfg)
        self.name = naming.validate_name(name)
        self.cv_dir = Path(cv_dir)
        self.tracking = {"group": name, "job_type": name, **dict(tracking or {})}
        self.extra_columns = dict(extra_columns or {})
        self.rows: dict[int, dict[str, Any]] = {}
        self.pruned = False
        self.runs = self._plan(resume)
        self._launched: set[int] = set()
        if resume:
            self._adopt_finished()

    # -- plan ---------------------------------------------------------------------------------------------
    def _plan(self, resume: bool) -> list[CVRun]:
        from tunecv.splits import fold_count

        n_folds = self.cfg.cv.n_folds or fold_count(self.cfg.split)
        runs = []
        for seed in plan_seeds(self.cfg.cv.n_seeds):
            for fold in range(n_folds):
                run_name = naming.run_name(self.name, fold, seed)
                existing = naming.find_run_dirs(self.cv_dir, run_name) if resume else []
                folder = existing[-1] if existing else naming.run_dir(self.cv_dir, run_name, naming.new_run_id())
                runs.append(CVRun(len(runs), fold, seed, run_name, folder))
        return runs

    def _adopt_finished(self) -> None:
        from tunecv.train import read_result

        for run in self.runs:
            result = read_result(run.run_dir)
            if result is not None and result.status == "completed":
                self.rows[run.index] = self._row(run, result)
                self._launched.add(run.index)

    # -- progress -----------------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Every run recorded, or pruned with nothing in flight."""
        return len(self.rows) == len(self.runs) or (self.pruned and self._launched <= set(self.rows))

    @property
    def in_flight(self) -> int:
        return len(self._launched - set(self.rows))

    def next_run_peek(self) -> Optional[CVRun]:
        """The run :meth:`next_run` would launch, without launching it."""
        if self.pruned:
            return None
        return next((r for r in self.runs if r.index not in self._launched), None)

    def next_run(self) -> Optional[CVRun]:
        """The next run to launch, or ``None`` (all launched, or pruned)."""
        if self.pruned:
            return None
        for run in self.runs:
            if run.index not in self._launched:
                self._launched.add(run.index)
                return run
        return None

    def unlaunch(self, run: CVRun) -> None:
        """Take back a launched run that will not finish (its job was cancelled by the pruner, or it belongs
        to another job): it is launched again later, or recorded as ``pruned`` when the cv is."""
        self._launched.discard(run.index)

    def job_args(self, run: CVRun, *, quiet: bool, overrides: Optional[Mapping[str, Any]] = None) -> tuple:
        """Arguments of :func:`_run_one` for ``run`` (picklable)."""
        cfg = self.cfg.replace(fold=run.fold, seed=run.seed, name=run.name)
        if run.index > 0 and "enable_model_summary" not in cfg.trainer:
            # the model is the same in every run of a cv: its summary once is enough
            cfg = dataclasses.replace(cfg, trainer={**cfg.trainer, "enable_model_summary": False})
        resume = run.run_dir.exists()
        return (cfg, run.name, str(run.run_dir), resume, dict(self.tracking), quiet, dict(overrides or {}))

    def record(self, run: CVRun, result: Any = None, error: Optional[BaseException] = None) -> dict[str, Any]:
        """Record a finished run (a :class:`~tunecv.train.TrainResult`, or the error it raised)."""
        from tunecv.train import TrainResult

        if error is not None or not isinstance(result, TrainResult):
            message = f"{type(error).__name__}: {error}" if error is not None else f"unexpected result {result!r}"
            from tunecv.train import read_result

            recorded = read_result(run.run_dir)  # the run's own record has its start time and duration
            if recorded is not None and recorded.status == "failed" and type(error).__name__ != "WorkerDiedError":
                result = recorded
                row = self._row(run, result)
                self.rows[run.index] = row
                self.write()
                return row
            now = datetime.now(timezone.utc)
            result = TrainResult(name=run.name, run_id=run.run_dir.name.rsplit("-", 1)[1], run_dir=run.run_dir,
                                 fold=run.fold, seed=run.seed, status="failed", error=message.strip()[:2000],
                                 started_at=now, finished_at=now)
        row = self._row(run, result)
        self.rows[run.index] = row
        self.write()
        return row

    def _row(self, run: CVRun, result: Any) -> dict[str, Any]:
        from tunecv.scoring import is_unstable

        row = {**result.to_row(), "cv_name": self.name, "tune_name": self.extra_columns.get("tune_name")}
        row["run_name"], row["fold"], row["seed"] = run.name, run.fold, run.seed
        row["is_unstable"] = (bool(is_unstable(row, self.cfg.cv.scoring_metric))
                              if row["status"] == "completed" else None)
        row.update({k: v for k, v in self.extra_columns.items() if k != "tune_name"})
        return row

    def prune(self) -> None:
        """Stop launching runs; the finished ones are kept."""
        self.pruned = True

    # -- results ------------------------------------------------------------------------------------------
    def frame(self) -> Any:
        """``run_infos`` of the runs recorded so far, with the current score on every row."""
        from tunecv.results import run_infos_frame

        rows = [dict(self.rows[i]) for i in sorted(self.rows)]
        score, unstable = self.score(rows)
        if self.pruned and self.in_flight == 0:
            # the runs the pruner never let start: recorded as pruned, so the plan stays visible
            for run in self.runs:
                if run.index not in self.rows and run.index not in self._launched:
                    rows.append({"run_name": run.name, "run_id": run.run_dir.name.rsplit("-", 1)[1],
                                 "cv_name": self.name, "tune_name": self.extra_columns.get("tune_name"),
                                 "fold": run.fold, "seed": run.seed, "status": "pruned",
                                 **{k: v for k, v in self.extra_columns.items() if k != "tune_name"}})
        for row in rows:
            row["score"], row["score_is_unstable"] = score, unstable
            if self.pruned and row["status"] == "completed" and "trial_state" in self.extra_columns:
                row["trial_state"] = "pruned"
        return run_infos_frame(rows)

    def score(self, rows: Optional[Sequence[Mapping[str, Any]]] = None) -> tuple[float, bool]:
        """``(score, score_is_unstable)`` over the completed runs so far (NaN, True when none)."""
        import pandas as pd

        from tunecv.scoring import cv_score

        rows = [self.rows[i] for i in sorted(self.rows)] if rows is None else rows
        completed = [r for r in rows if r["status"] == "completed"]
        if not completed:
            return float("nan"), True
        return cv_score(pd.DataFrame(completed), self.cfg.cv.scoring_metric, self.cfg.cv.multi_score_strategy)

    def write(self) -> None:
        """Rewrite ``run_infos.parquet`` atomically."""
        from tunecv.results import write_parquet_atomic

        self.cv_dir.mkdir(parents=True, exist_ok=True)
        write_parquet_atomic(self.frame(), self.cv_dir / RUN_INFOS)

    def result(self) -> CVResult:
        score, unstable = self.score()
        return CVResult(self.name, self.cv_dir, score, unstable, self.frame(), pruned=self.pruned)

    def failure_summary(self) -> str:
        """Errors of failed runs grouped by message, with counts."""
        errors = collections.Counter(r["error"] or "unknown error" for r in self.rows.values()
                                     if r["status"] == "failed")
        return "; ".join(f"{n}x {msg}" for msg, n in errors.most_common())


def _cv_strategy(cfg: Config) -> Config:
    strategy = cfg.device_setting("strategy")
    if isinstance(strategy, str) and strategy in ("ddp", "ddp_spawn"):
        warnings.warn(f"strategy {strategy!r} under cv/tune becomes 'ddp_fork' (plain ddp re-runs the whole "
                      f"script once per process)", stacklevel=3)
        log.warning("strategy %r under cv/tune becomes 'ddp_fork'", strategy)
        return cfg.replace(strategy="ddp_fork", trainer={k: v for k, v in cfg.trainer.items() if k != "strategy"})
    return cfg


# -- running on an executor -------------------------------------------------------------------------------

def drive(
    executor: Any,
    sessions: Callable[[], Optional[CrossValidation]] | Sequence[CrossValidation],
    *,
    per_session: int,
    max_sessions: Optional[int] = None,
    quiet: bool,
    pinned: Optional[bool] = None,
    on_run_end: Optional[Callable[[CrossValidation, CVRun, dict], None]] = None,
    on_session_end: Optional[Callable[[CrossValidation], None]] = None,
    on_job_states: Optional[Callable[[Mapping[str, int]], None]] = None,
) -> None:
    """Run the runs of cross-validations on ``executor`` until every session is done.

    Args:
        executor: a :mod:`tunecv.executors` executor.
        sessions: the cross-validations, or a callable giving the next one (``None`` when there is
            none) — called whenever a slot is free and no open session can use it.
        per_session: runs of one session in flight at once (1 = in series).
        max_sessions: sessions open at once (default: no limit but the executor's slots).
        quiet: switch off Lightning's bars and summaries (parallel workers).
        pinned: run each job on the devices the executor gave it (default: ``executor.pinned``).
        on_run_end: called after each run is recorded (pruning decisions happen here).
        on_session_end: called when a session has no run left in flight and nothing to launch.
        on_job_states: called about once a second with how many jobs in flight are ``queued`` and
            ``running`` (from :attr:`Job.state`: for a cluster executor, the scheduler's view).
    """
    source = sessions if callable(sessions) else _iter_source(sessions)
    overrides = executor.run_overrides() if (executor.pinned if pinned is None else pinned) else {}
    grouped = bool(getattr(executor, "cv_per_job", False))  # each session one job (see tunecv.cv_jobs)
    open_sessions: list[CrossValidation] = []
    jobs: dict[Any, tuple[CrossValidation, CVRun]] = {}

    def close_finished() -> None:
        for s in list(open_sessions):
            if s.in_flight == 0 and s.next_run_peek() is None:
                open_sessions.remove(s)
                if on_session_end is not None:
                    on_session_end(s)

    try:
        while True:
            close_finished()
            while len(jobs) < executor.n_slots:
                session = next((s for s in open_sessions
                                if s.in_flight < per_session and s.next_run_peek() is not None), None)
                if session is None:
                    if max_sessions is not None and len(open_sessions) >= max_sessions:
                        break
                    new = source()
                    if new is None:
                        break
                    open_sessions.append(new)
                    close_finished()  # a resumed session may have nothing left to run
                    continue
                if grouped:  # one job for all the runs the session has left
                    cv_job = CVJob.start(executor, session, run_cv_job, quiet=quiet, overrides=overrides)
                    jobs[cv_job.job] = (session, cv_job)
                    continue
                run = session.next_run()
                if run is None:  # pragma: no cover - guarded by next_run_peek
                    continue
                # an executor whose jobs outlive the driver may still have this run's job: never submit it twice
                job = executor.reattach(run.run_dir)
                if job is None:
                    job = executor.submit_run(run.run_dir, _run_one,
                                              *session.job_args(run, quiet=quiet, overrides=overrides))
                jobs[job] = (session, run)
            if not jobs:
                close_finished()
                return
            if on_job_states is not None:
                on_job_states(collections.Counter(job.state for job in jobs))
            done, _ = executor.wait(list(jobs), timeout=None if on_job_states is None and not grouped else 1.0,
                                    return_when="FIRST_COMPLETED")
            if grouped:
                for job in list(jobs):
                    session, cv_job = jobs[job]
                    finished = cv_job.outcomes() if job in done else cv_job.completed_so_far()
                    for run, result, *error in finished:
                        row = session.record(run, result, error[0] if error else None)
                        if on_run_end is not None:
                            on_run_end(session, run, row)
                    if job in done:
                        del jobs[job]
                    else:
                        cv_job.cancel_if_pruned()
                continue
            for job in done:
                session, run = jobs.pop(job)
                try:
                    result, error = job.result(), None
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # recorded as a failed run, never swallowed silently
                    result, error = None, exc
                row = session.record(run, result, error)
                if on_run_end is not None:
                    on_run_end(session, run, row)
    except BaseException:
        executor.shutdown(cancel_pending=True, kill=True)
        raise


def _iter_source(sessions: Sequence[CrossValidation]) -> Callable[[], Optional[CrossValidation]]:
    pending = list(sessions)
    return lambda: pending.pop(0) if pending else None


# -- the public entry point ----------------------------------------------------------------------------

def resolve_parallel(cfg: Config) -> tuple[bool, str]:
    """Whether runs share a device pool, and the accelerator of that pool."""
    strategy = cfg.device_setting("strategy")
    accelerator = str(cfg.device_setting("accelerator"))
    parallel = strategy in PARALLEL_STRATEGIES
    if parallel and accelerator == "auto":
        from tunecv.executors import gpu_count

        accelerator = "gpu" if gpu_count() > 0 else "cpu"
    return parallel, accelerator


def make_cv_executor(cfg: Config, parallel: bool, accelerator: str) -> Any:
    """The executor that ``cfg.executor`` names (see :mod:`tunecv.executors`)."""
    from tunecv.executors import make_executor_from_config

    return make_executor_from_config(cfg, parallel=parallel, accelerator=accelerator)


def cross_validate(
    config: Union[Config, Mapping, str, os.PathLike],
    *,
    name: Optional[str] = None,
    cv_dir: Optional[Union[str, os.PathLike]] = None,
    resume: bool = False,
    reset: bool = False,
    dry_run: bool = False,
    executor: Any = None,
    tracking: Optional[Mapping[str, Any]] = None,
    extra_columns: Optional[Mapping[str, Any]] = None,
    progress: bool = True,
) -> Optional[CVResult]:
    """Cross-validate: ``cv.n_folds`` folds x ``cv.n_seeds`` seeds, each one ``train`` run.

    Args:
        config: a :class:`~tunecv.config.Config`, a mapping or a YAML path.
        name: the cv name (default ``config.name``, else generated).
        cv_dir: the folder chosen by a caller (a tune); default
            ``{artifact_dir}/_cross_validations/{cv_name}``.
        resume: keep the completed runs of an earlier call with the same name, rerun the others.
        reset: delete that name's folder first.
        dry_run: print the plan and create nothing; returns ``None``.
        executor: run on this :class:`~tunecv.executors.Executor` (default: the one ``executor:`` names,
            built from ``strategy`` / ``devices`` and its section); a given executor is not shut down.
        tracking: wandb settings passed to every run (``group``, ``job_type``).
        extra_columns: values added to every ``run_infos`` row.
        progress: show a progress bar and one line per finished run.

    Returns:
        The :class:`CVResult` (score, instability, run_infos DataFrame).

    Raises:
        RunFailedError: every run failed (the errors are grouped and counted in the message).
    """
    with contextlib.ExitStack() as held:  # the cv's name stays claimed until it ends
        return _cross_validate(config, name=name, cv_dir=cv_dir, resume=resume, reset=reset, dry_run=dry_run,
                               executor=executor, tracking=tracking, extra_columns=extra_columns, progress=progress,
                               held=held)


def _cross_validate(config: Union[Config, Mapping, str, os.PathLike], *, name: Optional[str],
                    cv_dir: Optional[Union[str, os.PathLike]], resume: bool, reset: bool, dry_run: bool,
                    executor: Any, tracking: Optional[Mapping[str, Any]],
                    extra_columns: Optional[Mapping[str, Any]], progress: bool,
                    held: contextlib.ExitStack) -> Optional[CVResult]:
    from tunecv.build import as_config

    cfg = as_config(config)
    check_resume_reset(resume, reset, "cv")
    cv_name = name or cfg.name
    if cv_dir is None:
        if cv_name is None:
            if resume:
                raise ResumeError("--resume needs the `name` of the cv to continue (--name NAME)")
            cv_name = naming.free_name(Path(cfg.artifact_dir) / naming.CVS_DIR)
        folder = naming.cv_dir(cfg.artifact_dir, naming.validate_name(cv_name))
        if folder.exists() and not (resume or reset or dry_run):
            raise ResumeError(f"a cv named {cv_name!r} exists in {folder}; pass --resume to finish it or --reset "
                              f"to delete it and start over")
        if resume and not folder.exists():
            raise ResumeError(f"nothing to resume: no cv named {cv_name!r} in {folder.parent}")
    else:
        if cv_name is None:
            raise ConfigError("`cross_validate(cv_dir=...)` needs the cv `name` too")
        folder = Path(cv_dir)
    if cfg.device_setting("strategy") == "tune-parallel" and cv_dir is None:
        raise ConfigError("`strategy` tune-parallel runs the cvs of a tune in parallel; for one cv use "
                          "cv-parallel")
    parallel, accelerator = resolve_parallel(cfg)
    own_executor = executor is None
    if executor is None and not dry_run:  # a pool starts its worker server now, while we validate
        executor = make_cv_executor(cfg, parallel and cfg.device_setting("strategy") == "cv-parallel", accelerator)
    try:
        validate_objects(cfg.replace(fold=0), executor)  # every config / data error, before anything is written
    except BaseException:
        if own_executor and executor is not None:
            executor.shutdown()
        raise
    if cv_dir is None and not dry_run:
        try:  # one command per cv name at a time; then check again what the first check saw
            held.enter_context(naming.claim_name(folder.parent, cv_name, "cv"))
            if folder.exists() and not (resume or reset):
                raise ResumeError(f"a cv named {cv_name!r} exists in {folder}; pass --resume to finish it or "
                                  f"--reset to delete it and start over")
        except BaseException:
            if own_executor and executor is not None:
                executor.shutdown()
            raise
        naming.announce("cv", cv_name)
    session = CrossValidation(cfg, cv_name, folder, resume=resume and not dry_run, tracking=tracking,
                              extra_columns=extra_columns)
    if dry_run:
        _print_plan(session, cfg, parallel, accelerator)
        return None
    if reset and folder.exists():
        shutil.rmtree(folder)
        session = CrossValidation(cfg, cv_name, folder, tracking=tracking, extra_columns=extra_columns)
    folder.mkdir(parents=True, exist_ok=True)
    _write_config(folder, cfg.replace(name=cv_name))
    pinned = bool(executor.pinned)
    reporter = CVProgress(session, enabled=progress, live=pinned)
    try:
        with reporter, quiet_lightning_logs():
            drive(executor, [session], per_session=executor.n_slots, quiet=pinned or not progress, pinned=pinned,
                  on_run_end=lambda s, r, row: reporter.run_done(row),
                  on_job_states=reporter.job_states if reporter.live else None)
    finally:
        if own_executor:
            executor.shutdown()
    session.write()
    result = session.result()
    if result.n_completed == 0 and len(result.run_infos) > 0:
        raise RunFailedError(f"every run of cv {cv_name!r} failed ({result.n_failed} runs): "
                             f"{session.failure_summary()}")
    if progress:
        reporter.summary(result)
    return result


@contextlib.contextmanager
def quiet_lightning_logs() -> Iterator[None]:
    """Mute Lightning's per-run info lines (devices, tips, model summary) while a cv prints its own."""
    names = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning")
    old = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for n, level in old.items():
            logging.getLogger(n).setLevel(level)


def _build_objects(cfg: Config) -> None:
    """Job body: build the model and data of ``cfg`` (raises what a bad config or data raises)."""
    from tunecv.build import build_objects

    _check_data_module(cfg)
    build_objects(cfg)


def validate_objects(cfg: Config, executor: Any = None) -> None:
    """Build the model and data of ``cfg`` once, so that every config or data error surfaces first.

    On a local device pool this is the pool's first job: its worker starts from the fork server that
    imported torch, lightning and the model's module, so this process (the driver) never imports them
    itself, and a short cv-parallel pays those imports once instead of twice.
    """
    from tunecv.executors import DevicePoolExecutor

    if isinstance(executor, DevicePoolExecutor):
        executor.submit(_build_objects, cfg).result()
    else:
        _build_objects(cfg)


def _check_data_module(cfg: Config) -> None:
    import lightning as L

    from tunecv.config import import_class
    from tunecv.data import SplitDataModule

    if cfg.data is None:
        raise ConfigError("`data` must be set: a tunecv.data.SplitDataModule subclass")
    cls = import_class(cfg.data.get("class_path"), "data.class_path")
    if isinstance(cls, type) and issubclass(cls, L.LightningDataModule) and not issubclass(cls, SplitDataModule):
        raise ConfigError(f"`data.class_path` must be a tunecv.data.SplitDataModule for cv and tune (folds come "
                          f"from its load()); got {cfg.data['class_path']!r}, a plain LightningDataModule")


def _write_config(folder: Path, cfg: Config) -> None:
    from tunecv._io import atomic_write_text
    from tunecv.config import dump_yaml

    atomic_write_text(folder / "config.yaml", dump_yaml(cfg))


def plan_rows(session: CrossValidation, cfg: Config, parallel: bool) -> list[dict[str, Any]]:
    devices = cfg.device_setting("devices")
    devices = devices if isinstance(devices, list) else [devices]
    slots = [d for d in devices for _ in range(cfg.runs_per_device)] if parallel else [devices]
    rows = []
    for i, run in enumerate(session.runs):
        device = slots[i % len(slots)] if parallel else devices
        rows.append({"run_name": run.name, "fold": run.fold, "seed": run.seed, "device": device,
                     "folder": str(run.run_dir)})
    return rows


def _print_plan(session: CrossValidation, cfg: Config, parallel: bool, accelerator: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"cv {session.name}: {len(session.runs)} runs "
                        f"({'parallel over ' + accelerator + ' devices' if parallel else 'in series'})")
    for col in ("run_name", "fold", "seed", "device", "folder"):
        table.add_column(col)
    for row in plan_rows(session, cfg, parallel):
        table.add_row(*(str(row[c]) for c in ("run_name", "fold", "seed", "device", "folder")))
    Console().print(table)
    Console().print("dry run: nothing was created")
