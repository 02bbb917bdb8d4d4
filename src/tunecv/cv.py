"""The ``cv`` level: one cross-validation, folds x seeds, each pair one ``train`` run.

A :class:`CrossValidation` plans its runs, records each result in ``run_infos.parquet`` (rewritten
atomically after every run) and scores them. It is a session of the scheduler (``scheduler.py``), which
runs the runs of one or several cross-validations on an executor. A caller that drives many
cross-validations adds its own columns to every row (``extra_columns``: opaque here) and may stop one
early (:meth:`CrossValidation.stop`).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

# Relative imports: the package's name holds the name of the level above, which this level never mentions.
from . import naming
from ._disk import check_run, stop_on_full_disk
from .artifacts import workspace
from .artifacts.files import RUN_INFOS_FILE
from .build import as_config, validate_objects
from .config import Config, config_from_dict, dump_yaml
from .errors import ConfigError, RunFailedError
from .executors import Executor, WorkerDiedError, current_device, thread_budget
from .folds import folds_run
from .placement import Placement, check_cv, many_runs_config, resolve
from .progress import CVProgress
from .scheduler import drive
from .train import TrainResult, read_result, train

__all__ = ["CVResult", "CVRun", "CrossValidation", "cross_validate", "drive", "plan_seeds"]

log = logging.getLogger(__name__)

RUN_INFOS = RUN_INFOS_FILE
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
        score: the cv score (see the scoring module); NaN when no run completed.
        score_is_unstable: a completed run had a non-finite or zero scoring metric.
        run_infos: one row per run (the content of ``run_infos.parquet``).
        stopped: the caller stopped the cv before all its runs were launched (:meth:`CrossValidation.stop`).
    """

    name: str
    cv_dir: Path
    score: float
    score_is_unstable: bool
    run_infos: Any
    stopped: bool = False

    @property
    def n_completed(self) -> int:
        return int((self.run_infos["status"] == "completed").sum()) if len(self.run_infos) else 0

    @property
    def n_failed(self) -> int:
        return int((self.run_infos["status"] == "failed").sum()) if len(self.run_infos) else 0


def _run_one(cfg_or_dict: Any, run_name: str, run_dir: str, resume: bool, tracking: Optional[dict],
             quiet: bool, overrides: Optional[Mapping[str, Any]], pruning: Any = None) -> Any:
    """Job body: one train run (in this process, a pool worker, or a cluster job).

    ``overrides`` are the device settings of a pinned job (:meth:`Executor.run_overrides`); ``pruning`` a
    tune's :class:`tunecv.pruning.RunPruning` (in-run pruning), else ``None``. A job that
    starts again (requeued by its scheduler) finds its folder and continues from the ``last`` checkpoint.
    """
    import warnings as _w

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
        callbacks = [pruning.callback()] if pruning is not None else []
        return train(cfg, name=run_name, run_dir=run_dir, resume=resume, tracking=tracking, quiet=quiet,
                     callbacks=callbacks)


@contextlib.contextmanager
def _thread_policy(cfg: Config) -> Iterator[None]:
    """A run outside a device pool gets the CPU threads that fit the machine now (see ``thread_budget``).

    A pool worker already has its budget (set by the pool when it started the worker).
    """
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
        extra_columns: values added to every row, as given (the caller's own columns; ``run_infos.parquet``
            orders the known ones, see the results module). The mapping stays the caller's to update.
    """

    def __init__(self, cfg: Config, name: str, cv_dir: Union[str, Path], *, resume: bool = False,
                 tracking: Optional[Mapping[str, Any]] = None,
                 extra_columns: Optional[Mapping[str, Any]] = None) -> None:
        self.cfg = many_runs_config(cfg)
        self.name = naming.validate_name(name)
        self.cv_dir = Path(cv_dir)
        self.tracking = {"group": name, "job_type": name, **dict(tracking or {})}
        self.extra_columns = dict(extra_columns or {})
        self.rows: dict[int, dict[str, Any]] = {}
        self.stopped: Optional[str] = None  # the status of the runs a stop left unlaunched
        self._stop_columns: dict[str, Any] = {}
        self.runs = self._plan(resume)
        self._launched: set[int] = set()
        self.run_pruning: Optional[Callable[[CVRun], Any]] = None  # a tune's in-run pruning spec per run
        if resume:
            self._adopt_finished()

    # -- plan ---------------------------------------------------------------------------------------------
    def _plan(self, resume: bool) -> list[CVRun]:
        n_folds = folds_run(self.cfg.split, self.cfg.cv.n_folds)
        runs = []
        for seed in plan_seeds(self.cfg.cv.n_seeds):
            for fold in range(n_folds):
                run_name = naming.run_name(self.name, fold, seed)
                existing = naming.find_run_dirs(self.cv_dir, run_name) if resume else []
                folder = existing[-1] if existing else naming.run_dir(self.cv_dir, run_name, naming.new_run_id())
                runs.append(CVRun(len(runs), fold, seed, run_name, folder))
        return runs

    def _adopt_finished(self) -> None:
        for run in self.runs:
            result = read_result(run.run_dir)
            if result is not None and result.status in ("completed", "pruned"):  # a pruned run never runs again
                self.rows[run.index] = self._row(run, result)
                self._launched.add(run.index)

    # -- progress -----------------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Every run recorded, or stopped with nothing in flight."""
        return len(self.rows) == len(self.runs) or (self.stopped is not None and self._launched <= set(self.rows))

    @property
    def in_flight(self) -> int:
        return len(self._launched - set(self.rows))

    def next_run_peek(self) -> Optional[CVRun]:
        """The run :meth:`next_run` would launch, without launching it."""
        if self.stopped is not None:
            return None
        return next((r for r in self.runs if r.index not in self._launched), None)

    def next_run(self) -> Optional[CVRun]:
        """The next run to launch, or ``None`` (all launched, or stopped)."""
        if self.stopped is not None:
            return None
        for run in self.runs:
            if run.index not in self._launched:
                self._launched.add(run.index)
                return run
        return None

    def completed_result(self, run: CVRun) -> Any:
        """The result ``run``'s folder holds when the run completed there (a job running several runs is
        still busy with the others), else ``None``. Only completed runs: a ``failed`` record may be an
        attempt that a requeued job goes on with."""
        result = read_result(run.run_dir)
        return result if result is not None and result.status in ("completed", "pruned") else None

    def unlaunch(self, run: CVRun) -> None:
        """Take back a launched run that will not finish (its job was cancelled after a stop, or it belongs
        to another job): it is launched again later, or recorded with the stop's status when the cv stopped."""
        self._launched.discard(run.index)

    def job_args(self, run: CVRun, *, quiet: bool, overrides: Optional[Mapping[str, Any]] = None) -> tuple:
        """Arguments of :func:`_run_one` for ``run`` (picklable)."""
        cfg = self.cfg.replace(fold=run.fold, seed=run.seed, name=run.name)
        if run.index > 0 and "enable_model_summary" not in cfg.trainer:
            # the model is the same in every run of a cv: its summary once is enough
            cfg = dataclasses.replace(cfg, trainer={**cfg.trainer, "enable_model_summary": False})
        resume = run.run_dir.exists()
        pruning = self.run_pruning(run) if self.run_pruning is not None else None
        return (cfg, run.name, str(run.run_dir), resume, dict(self.tracking), quiet, dict(overrides or {}), pruning)

    def job(self, run: CVRun, *, quiet: bool, overrides: Mapping[str, Any]) -> tuple[Callable[..., Any], tuple]:
        """The job of ``run`` for the scheduler: one ``train`` run (:func:`_run_one`) and its arguments."""
        return _run_one, self.job_args(run, quiet=quiet, overrides=overrides)

    def record(self, run: CVRun, result: Any = None, error: Optional[BaseException] = None) -> dict[str, Any]:
        """Record a finished run (a ``TrainResult``, or the error it raised) and rewrite ``run_infos.parquet``."""
        if error is not None or not isinstance(result, TrainResult):
            result = self._failed_result(run, result, error)
        row = self._row(run, result)
        self.rows[run.index] = row
        self.write(durable=False)  # rebuilt from the runs' run_info.json on --resume: no fsync
        check_run(row, run.run_dir)  # a full disk stops the cv (or tune): every further run would fail the same way
        return row

    def _failed_result(self, run: CVRun, result: Any, error: Optional[BaseException]) -> Any:
        """The record of a run that failed: its own ``run_info.json`` when it wrote one, else made here."""
        recorded = read_result(run.run_dir)  # the run's own record has its start time and duration
        if recorded is not None and recorded.status == "failed" and not isinstance(error, WorkerDiedError):
            return recorded
        message = f"{type(error).__name__}: {error}" if error is not None else f"unexpected result {result!r}"
        now = datetime.now(timezone.utc)
        return TrainResult(name=run.name, run_id=run.run_dir.name.rsplit("-", 1)[1], run_dir=run.run_dir,
                           fold=run.fold, seed=run.seed, status="failed", error=message.strip()[:2000],
                           started_at=now, finished_at=now)

    def _row(self, run: CVRun, result: Any) -> dict[str, Any]:
        from .scoring import is_unstable  # lazy: pandas, only once runs are scored

        row = {**result.to_row(), "cv_name": self.name}
        row["run_name"], row["fold"], row["seed"] = run.name, run.fold, run.seed
        row["is_unstable"] = (bool(is_unstable(row, self.cfg.cv.scoring_metric))
                              if row["status"] == "completed" else None)
        row.update(self.extra_columns)
        return row

    def stop(self, status: str, *, completed_columns: Optional[Mapping[str, Any]] = None) -> None:
        """Launch no more runs; the runs in flight finish and are recorded, the finished ones are kept.

        Args:
            status: the ``status`` of the runs never launched: each keeps a row, so the plan stays visible.
            completed_columns: values that replace extra columns in the rows of completed runs (what the
                stop means for them).
        """
        self.stopped = status
        self._stop_columns = dict(completed_columns or {})

    # -- results ------------------------------------------------------------------------------------------
    def frame(self) -> Any:
        """``run_infos`` of the runs recorded so far, with the current score on every row."""
        from .results import run_infos_frame  # lazy: pandas and pyarrow, only for a table

        rows = [dict(self.rows[i]) for i in sorted(self.rows)]
        score, unstable = self.score(rows)
        if self.stopped is not None and self.in_flight == 0:
            # the runs the stop never let start: recorded with its status, so the plan stays visible
            for run in self.runs:
                if run.index not in self.rows and run.index not in self._launched:
                    rows.append({"run_name": run.name, "run_id": run.run_dir.name.rsplit("-", 1)[1],
                                 "cv_name": self.name, "fold": run.fold, "seed": run.seed, "status": self.stopped,
                                 **self.extra_columns})
        for row in rows:
            row["score"], row["score_is_unstable"] = score, unstable
            if self.stopped is not None and row["status"] == "completed":
                row.update(self._stop_columns)
        return run_infos_frame(rows)

    def score(self, rows: Optional[Sequence[Mapping[str, Any]]] = None) -> tuple[float, bool]:
        """``(score, score_is_unstable)`` over the completed runs so far (NaN, True when none)."""
        import pandas as pd

        from .scoring import cv_score  # lazy: pandas, only once runs are scored

        rows = [self.rows[i] for i in sorted(self.rows)] if rows is None else rows
        completed = [r for r in rows if r["status"] == "completed"]
        if not completed:
            return float("nan"), True
        return cv_score(pd.DataFrame(completed), self.cfg.cv.scoring_metric, self.cfg.cv.multi_score_strategy)

    def write(self, durable: bool = True) -> None:
        """Rewrite ``run_infos.parquet`` atomically; fsynced unless ``durable`` is false (the rewrites after
        each run: ``--resume`` rebuilds the rows from the runs' ``run_info.json``)."""
        from .results import write_parquet_atomic  # lazy: pandas and pyarrow, only for a table

        self.cv_dir.mkdir(parents=True, exist_ok=True)
        write_parquet_atomic(self.frame(), self.cv_dir / RUN_INFOS, durable=durable)

    def result(self) -> CVResult:
        score, unstable = self.score()
        return CVResult(self.name, self.cv_dir, score, unstable, self.frame(), stopped=self.stopped is not None)

    def failure_summary(self) -> str:
        """Errors of failed runs grouped by message, with counts."""
        errors = collections.Counter(r["error"] or "unknown error" for r in self.rows.values()
                                     if r["status"] == "failed")
        return "; ".join(f"{n}x {msg}" for msg, n in errors.most_common())


# -- the public entry point ----------------------------------------------------------------------------

def cross_validate(
    config: Union[Config, Mapping, str, os.PathLike],
    *,
    name: Optional[str] = None,
    cv_dir: Optional[Union[str, os.PathLike]] = None,
    tracking: Optional[Mapping[str, Any]] = None,
    executor: Optional[Executor] = None,
    resume: bool = False,
    reset: bool = False,
    dry_run: bool = False,
    extra_columns: Optional[Mapping[str, Any]] = None,
    progress: bool = True,
) -> Optional[CVResult]:
    """Cross-validate: ``cv.n_folds`` folds x ``cv.n_seeds`` seeds, each one ``train`` run.

    Args:
        config: a ``Config``, a mapping or a YAML path.
        name: the cv name (default ``config.name``, else generated).
        cv_dir: the folder chosen by a caller that runs many cvs; default
            ``{artifact_dir}/_cross_validations/{cv_name}``.
        tracking: wandb settings passed to every run (``group``, ``job_type``).
        executor: run on this ``Executor`` (default: the one ``executor:`` names, placed by
            :mod:`tunecv.placement` from ``strategy`` / ``devices`` and its section); a given executor is
            not shut down.
        resume: keep the completed runs of an earlier call with the same name, rerun the others.
        reset: delete that name's folder first.
        dry_run: print the plan and create nothing; returns ``None``.
        extra_columns: values added to every ``run_infos`` row.
        progress: show a progress bar and one line per finished run.

    Returns:
        The :class:`CVResult` (score, instability, run_infos DataFrame).

    Raises:
        RunFailedError: every run failed (the errors are grouped and counted in the message).
    """
    cfg = as_config(config)
    workspace.check_flags(resume, reset, "cv")
    cv_name, folder = _name_and_folder(cfg, name, cv_dir, resume=resume, reset=reset, dry_run=dry_run)
    where = resolve(cfg)
    own_executor = executor is None
    if own_executor and not dry_run:  # a pool starts its worker server now, while we validate
        executor = where.make_executor(cfg, "cv")
    with contextlib.ExitStack() as held:  # the cv's name stays claimed until it ends
        try:
            validate_objects(cfg.replace(fold=0), executor)  # every config / data error, before anything is written
            if dry_run:
                _print_plan(CrossValidation(cfg, cv_name, folder, tracking=tracking, extra_columns=extra_columns),
                            where)
                return None
            if cv_dir is None:
                held.enter_context(workspace.claimed("cv", cv_name, folder.parent, resume=resume, reset=reset,
                                                     found=lambda: folder if folder.exists() else None))
            if reset:
                workspace.discard([folder])
            session = CrossValidation(cfg, cv_name, folder, resume=resume, tracking=tracking,
                                      extra_columns=extra_columns)
            workspace.snapshot(folder, dump_yaml(cfg.replace(name=cv_name)))
            with stop_on_full_disk("cv", cv_name, folder):
                reporter = _run(session, executor, where, progress=progress)
        finally:
            if own_executor and executor is not None:
                executor.shutdown()
        with stop_on_full_disk("cv", cv_name, folder):
            return _finish(session, reporter, progress=progress)


def _name_and_folder(cfg: Config, name: Optional[str], cv_dir: Optional[Union[str, os.PathLike]], *,
                     resume: bool, reset: bool, dry_run: bool) -> tuple[str, Path]:
    """The cv's name and folder: the caller's folder, else ``{artifact_dir}/_cross_validations/{name}``."""
    cv_name = name or cfg.name
    if cv_dir is not None:
        if cv_name is None:
            raise ConfigError("`cross_validate(cv_dir=...)` needs the cv `name` too")
        return cv_name, Path(cv_dir)
    cv_name = workspace.choose_name("cv", cv_name, resume=resume,
                                    free=lambda: naming.free_name(Path(cfg.artifact_dir) / naming.CVS_DIR))
    folder = naming.cv_dir(cfg.artifact_dir, cv_name)
    workspace.check_on_disk("cv", cv_name, folder if folder.exists() else None, folder.parent, resume=resume,
                            reset=reset or dry_run)
    check_cv(cfg)
    return cv_name, folder


def _run(session: CrossValidation, executor: Executor, where: Placement, *, progress: bool) -> CVProgress:
    """Run the cv's runs on ``executor``, showing them (a bar when the executor pins its jobs)."""
    options = where.drive_options(executor, "cv")
    pinned = options["pinned"]
    reporter = CVProgress(session, enabled=progress, live=pinned)
    with reporter, quiet_lightning_logs():
        drive(executor, [session], quiet=pinned or not progress, **options,
              on_run_end=lambda s, r, row: reporter.run_done(row),
              on_job_states=reporter.job_states if reporter.live else None)
    return reporter


def _finish(session: CrossValidation, reporter: CVProgress, *, progress: bool) -> CVResult:
    """The last ``run_infos.parquet`` and the result; raises when every run failed."""
    session.write()
    result = session.result()
    if result.n_completed == 0 and len(result.run_infos) > 0:
        raise RunFailedError(f"every run of cv {session.name!r} failed ({result.n_failed} runs): "
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



def plan_rows(session: CrossValidation, where: Placement) -> list[dict[str, Any]]:
    """The rows of a dry run's plan: each run with the device ``where`` shows it on."""
    devices = where.planned_devices(len(session.runs))
    return [{"run_name": run.name, "fold": run.fold, "seed": run.seed, "device": device, "folder": str(run.run_dir)}
            for run, device in zip(session.runs, devices)]


def _print_plan(session: CrossValidation, where: Placement) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"cv {session.name}: {len(session.runs)} runs "
                        f"({'parallel over ' + where.accelerator + ' devices' if where.parallel else 'in series'})")
    for col in ("run_name", "fold", "seed", "device", "folder"):
        table.add_column(col)
    for row in plan_rows(session, where):
        table.add_row(*(str(row[c]) for c in ("run_name", "fold", "seed", "device", "folder")))
    Console().print(table)
    Console().print("dry run: nothing was created")
