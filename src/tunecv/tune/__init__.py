"""The ``tune`` level: an Optuna study in which every trial is one cross-validation.

The tuning process alone talks to the study (ask when a device frees up, tell when a cv ends); workers
only train. Trials are named ``{tune_name}-cv{index}`` and live in ``{artifact_dir}/{tune_name}/``.
Several ``tunecv tune`` processes with the same name and a shared storage (PostgreSQL, a journal file)
share one study and never run a trial twice.

The package, by concept: :mod:`~tunecv.tune.plan` (the checked plan), :mod:`~tunecv.tune.driver` (the steps),
:mod:`~tunecv.tune.study` (storage, heartbeats, re-queue, counts), :mod:`~tunecv.tune.scores` (a trial's scores),
:mod:`~tunecv.tune.table` (the tune table), :mod:`~tunecv.tune.retrain`, :mod:`~tunecv.tune.result` and
:mod:`~tunecv.tune.dryrun`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Optional, Union

from tunecv._disk import stop_on_full_disk
from tunecv.build import as_config
from tunecv.config import Config
from tunecv.executors import Executor
from tunecv.tune.driver import TrialRun, TuneDriver
from tunecv.tune.plan import _TunePlan, continued_seed
from tunecv.tune.result import TuneResult, closing_lines
from tunecv.tune.retrain import checkpoint_epoch, retrain_epochs
from tunecv.tune.study import default_storage, open_storage, redact, worker_identity

__all__ = [
    "TrialRun",
    "TuneDriver",
    "TuneResult",
    "checkpoint_epoch",
    "closing_lines",
    "continued_seed",
    "default_storage",
    "open_storage",
    "open_tune",
    "redact",
    "retrain_epochs",
    "tune",
    "worker_identity",
]


def tune(config: Union[Config, Mapping, str, os.PathLike], *, name: Optional[str] = None, resume: bool = False,
         reset: bool = False, dry_run: bool = False, progress: bool = True,
         executor: Optional[Executor] = None) -> Optional[TuneResult]:
    """Run a hyperparameter sweep over cross-validations.

    Args:
        config: a :class:`~tunecv.config.Config`, a mapping or a YAML path; ``tune.search_space`` names
            the search-space file.
        name: the tune name (default ``config.name``, else generated).
        resume: keep completed trials, re-queue trials a crash left running (their cvs keep their finished
            runs), and run until ``tune.n_trials`` trials have finished.
        reset: delete the tune's folder (and its default SQLite study) first.
        dry_run: print the planned trials and create nothing; returns ``None``.
        progress: show a progress bar and one line per finished trial.
        executor: run on this :class:`~tunecv.executors.Executor` (default: the one ``executor:`` names,
            placed by :mod:`tunecv.placement` from ``strategy`` / ``devices`` and its section); a given
            executor is not shut down.

    Returns:
        The :class:`TuneResult`.
    """
    plan = _TunePlan.of(as_config(config), name=name, resume=resume, reset=reset, dry_run=dry_run)
    own_executor = executor is None and not dry_run
    if own_executor:  # a pool starts its worker server (importing torch and lightning) now, while we validate
        executor = plan.where.make_executor(plan.cfg, "tune")
    with contextlib.ExitStack() as held:  # the tune's name stays claimed until it ends
        try:
            plan.validate(executor)
            if dry_run:
                return plan.print()
            driver = TuneDriver(plan, executor, progress=progress, own_executor=own_executor)
            driver.open(held)
        except BaseException:
            if own_executor:
                executor.shutdown()
            raise
        with stop_on_full_disk("tune", plan.tune_name, plan.folder):
            return driver.run()


def open_tune(config: Config, *, resume: bool, executor: Executor, held: contextlib.ExitStack) -> TuneDriver:
    """A tune checked, validated and opened on ``executor`` (its name claimed in ``held``), for a caller that
    drives several tunes on one executor at once (``tunecv nested``): that caller's
    :func:`~tunecv.scheduler.drive` calls the driver's :meth:`~TuneDriver.ask`, :meth:`~TuneDriver.run_ended`
    and :meth:`~TuneDriver.cv_ended` (within :meth:`~TuneDriver.limits`), then :meth:`~TuneDriver.finish`.
    The driver shows no progress and leaves the executor open."""
    plan = _TunePlan.of(config, name=None, resume=resume, reset=False, dry_run=False)
    plan.validate(executor)
    driver = TuneDriver(plan, executor, progress=False, own_executor=False)
    driver.open(held)
    return driver
