"""The ``tune`` level: an Optuna study in which every trial is one cross-validation.

The tuning process alone talks to the study (ask when a device frees up, tell when a cv ends); workers
only train. Trials are named ``{tune_name}-cv{index}`` and live in ``{artifact_dir}/{tune_name}/``.
Several ``tunecv tune`` processes with the same name and a shared storage (PostgreSQL, a journal file)
share one study and never run a trial twice.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from tunecv import _trial_records as records
from tunecv import naming
from tunecv import pruning as _pruning
from tunecv._disk import stop_on_full_disk
from tunecv._io import atomic_write_json, read_json
from tunecv._storage_retry import retrying
from tunecv.artifacts import workspace
from tunecv.artifacts.files import RETRAIN_LOCK_FILE, RUN_INFOS_FILE, SPACE_FILE, STORAGE_FILE
from tunecv.config import Config, dump_yaml
from tunecv.cv import CrossValidation
from tunecv.errors import ConfigError, RunFailedError, StorageError
from tunecv.executors import Executor
from tunecv.placement import Placement, check_tune, resolve
from tunecv.progress import TuneProgress
from tunecv.scheduler import drive

__all__ = ["TuneResult", "open_storage", "open_tune", "tune"]

log = logging.getLogger(__name__)

HEARTBEAT_ATTR = "tunecv:heartbeat"
WORKER_ATTR = "tunecv:worker"
CV_INDEX_ATTR = "cv_index"
UNSTABLE_ATTR = "score_is_unstable"
HEARTBEAT_EVERY = 20.0
MAX_CONSECUTIVE_FAILURES = 5
STALE_AFTER = 120.0


@dataclass
class TuneResult:
    """What a tune left.

    Attributes:
        name: the tune name.
        tune_dir: its folder.
        best_params: hyperparameters of the best stable trial (dotted config keys → values).
        best_score: its cv score.
        best_trial: its trial number (``None`` when no stable trial completed).
        run_infos: every run of every cv (the content of ``{tune_dir}/run_infos.parquet``).
        study: the Optuna study.
        pareto_trials: for multi-objective tunes, the Pareto-optimal trial numbers.
        retrain: the retrain run (a :class:`~tunecv.train.TrainResult`) when asked for.
        stopped_by: why the tune stopped starting cvs before ``n_trials`` (``tune.timeout`` or
            ``tune.max_runs`` reached), else ``None``.
        retrain_epochs: how many epochs the retrain trained and where that number came from, else ``None``.
    """

    name: str
    tune_dir: Path
    best_params: dict[str, Any]
    best_score: float
    best_trial: Optional[int]
    run_infos: Any
    study: Any
    pareto_trials: list[int] = field(default_factory=list)
    retrain: Any = None
    stopped_by: Optional[str] = None
    retrain_epochs: Optional[str] = None

    @property
    def n_finished(self) -> int:
        return _count_finished(self.study)


# -- storage ----------------------------------------------------------------------------------------------

def redact(url: str) -> str:
    """A storage URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def open_storage(url: str) -> Any:
    """An Optuna storage for a URL: an RDB URL (``sqlite:///``, ``postgresql://``, ...) or
    ``journal:///path/to/file.log`` (a journal file on a shared disk)."""
    import optuna

    try:
        if url.startswith("journal://"):
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            path = url[len("journal://"):]
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(path))
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = _postgres_driver(url)
        if url.startswith(("postgresql", "mysql")):
            for attempt in range(6):
                try:
                    # a dropped connection is replaced (pre-ping); a call while the server is away is retried.
                    # Opening is not: a wrong URL or a server that is not there says so at once.
                    return retrying(optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True}),
                                    redact(url))
                except Exception as exc:  # workers starting together race to create the schema
                    text = _chain_text(exc)  # Optuna wraps the driver's error ("... during the commit")
                    if attempt == 5 or not any(s in text for s in ("duplicate key", "already exists",
                                                                    "UniqueViolation",
                                                                    "An exception is raised during the commit",
                                                                    "deadlock detected")):
                        raise
                    time.sleep(0.3 + random.random())
        return retrying(optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}}
                                                   if url.startswith("sqlite") else None), redact(url))
    except StorageError:
        raise
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StorageError(f"`tune.storage` cannot be opened: {redact(url)}: {redact(first)}") from None


def _chain_text(exc: BaseException) -> str:
    """The messages of ``exc`` and of the errors behind it (``__cause__`` / ``__context__``)."""
    texts, seen = [], set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return " | ".join(texts)


def _postgres_driver(url: str) -> str:
    """``postgresql://`` means psycopg2 to SQLAlchemy; use psycopg (3) when that is what is installed."""
    import importlib.util

    rest = url.split("://", 1)[1]
    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
        return f"postgresql+psycopg://{rest}"
    return f"postgresql://{rest}"


def default_storage(tune_dir: Path) -> str:
    return f"sqlite:///{(tune_dir / STORAGE_FILE).resolve()}"


# -- the study and its storage ------------------------------------------------------------------------------

class _StudyStorage:
    """A study and the storage tunecv opened for it (:func:`open_storage`).

    What ``optuna.Study`` has no method for (a trial's system attrs, failing a trial another worker left
    running) goes through Optuna's public storage API on that storage object, and so do the study's id
    (``get_study_id_from_name``) and a trial's id (``get_trial_id_from_study_id_trial_number``). For an RDB
    storage Optuna puts a write-through cache in front of that object inside the study: every write of the
    cache is a write of the object, and the cache reads unfinished trials from the object again on every
    read, so the study and tunecv see the same heartbeats, attrs and states.
    """

    def __init__(self, study: Any, storage: Any) -> None:
        self.study, self.storage = study, storage
        self.study_id = storage.get_study_id_from_name(study.study_name)

    def trial_id(self, number: int) -> int:
        """The storage's id of trial ``number`` (one lookup: callers keep it)."""
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def system_attrs(self, trial_id: int) -> dict[str, Any]:
        return self.storage.get_trial(trial_id).system_attrs

    def set_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.storage.set_trial_system_attr(trial_id, key, value)

    def fail(self, trial_id: int) -> None:
        """Mark a RUNNING trial FAIL (raises when it is finished already, e.g. by another worker)."""
        from optuna.trial import TrialState

        self.storage.set_trial_state_values(trial_id, TrialState.FAIL)


# -- helpers over trials ------------------------------------------------------------------------------------

def _n_trials(study: Any, *states: Any) -> int:
    """How many trials are in ``states`` (the trials are not copied)."""
    return len(study.get_trials(deepcopy=False, states=tuple(states)))


def _count_finished(study: Any) -> int:
    from optuna.trial import TrialState

    return _n_trials(study, TrialState.COMPLETE, TrialState.PRUNED)


class _Counts:
    """The trial counts each ask needs (finished, live, waiting).

    A tune that is the only user of its study (its own storage) knows them: they are read from the
    storage once and then kept by the driver as it asks and tells, so an ask touches no trial list. Workers
    sharing a study read them from the storage with state filters.
    """

    def __init__(self, study: Any, shared: bool) -> None:
        from optuna.trial import TrialState

        self.study, self.shared = study, shared
        self._finished = _count_finished(study)
        self._live = _n_trials(study, TrialState.RUNNING)
        self._waiting = _n_trials(study, TrialState.WAITING)

    def finished(self) -> int:
        return _count_finished(self.study) if self.shared else self._finished

    def live(self) -> int:
        from optuna.trial import TrialState

        return _n_trials(self.study, TrialState.RUNNING) if self.shared else self._live

    def waiting(self) -> int:
        from optuna.trial import TrialState

        return _n_trials(self.study, TrialState.WAITING) if self.shared else self._waiting

    def asked(self) -> None:
        self._live += 1
        self._waiting = max(0, self._waiting - 1)  # Optuna's ask pops a waiting trial first

    def told(self, state: str) -> None:
        self._live -= 1
        self._finished += state in ("complete", "pruned")


def _directions(cfg: Config) -> list[str]:
    from tunecv.scoring import parse_metric, score_direction

    if cfg.tune.objectives:
        return ["maximize" if parse_metric(m)[1] else "minimize" for m in cfg.tune.objectives]
    return [score_direction(cfg.cv.scoring_metric)]


def _best_trial(study: Any, directions: list[str]) -> Any:
    """The best COMPLETE trial whose score is stable (never an unstable one): :func:`records.best_trial`."""
    return records.best_trial(study, directions)


class _Heartbeat:
    """Marks this process's running trials as alive, so that other workers can tell stale ones."""

    def __init__(self, store: _StudyStorage, every: float = HEARTBEAT_EVERY) -> None:
        self.store = store
        self.every = every
        self.trial_ids: set[int] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="tunecv-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()

    def add(self, trial_id: int) -> None:
        with self._lock:
            self.trial_ids.add(trial_id)
        self.beat(trial_id)

    def remove(self, trial_id: int) -> None:
        with self._lock:
            self.trial_ids.discard(trial_id)

    def beat(self, trial_id: int) -> None:
        with contextlib.suppress(Exception):
            self.store.set_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            with self._lock:
                ids = list(self.trial_ids)
            for trial_id in ids:
                self.beat(trial_id)


def worker_identity(cfg: Config) -> Optional[str]:
    """The worker slot of this process in a shared tune: ``tune.worker_id``, else the SLURM array task.

    A worker restarted in the same slot takes the trials its earlier life left running back at once,
    without waiting for their heartbeat to go stale. ``None``: no slot (stale trials wait for
    ``tune.heartbeat_grace``).
    """
    if cfg.tune.worker_id is not None:
        return str(cfg.tune.worker_id)
    job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if job and task:
        return f"slurm-array-{job}_{task}"
    return None


def _requeue_stale(store: _StudyStorage, all_running: bool, grace: float = STALE_AFTER,
                   worker: Optional[str] = None, mine: Optional[set[int]] = None) -> list[int]:
    """Fail trials left RUNNING by a crash and queue their parameters again (same cv index).

    A RUNNING trial is taken over when ``all_running`` (one process owns the study), when its heartbeat
    is older than ``grace`` seconds, or when it was started by this worker slot (``worker``) in an
    earlier life (it is not one of ``mine``, the numbers of the trials this process runs now).
    """
    from optuna.trial import TrialState

    study = store.study
    now = time.time()
    requeued = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = float(t.system_attrs.get(HEARTBEAT_ATTR, 0.0))
        if t.datetime_start is not None:  # a trial just asked for has no heartbeat yet
            beat = max(beat, t.datetime_start.timestamp())
        own_earlier = (worker is not None and t.system_attrs.get(WORKER_ATTR) == worker
                       and t.number not in (mine or set()))
        if not all_running and not own_earlier and now - beat < grace:
            continue  # another live worker is running it
        try:
            store.fail(store.trial_id(t.number))
        except Exception:  # another worker re-queued it first
            continue
        cv_index = t.user_attrs.get(CV_INDEX_ATTR, t.number)
        study.enqueue_trial(dict(t.params), user_attrs={CV_INDEX_ATTR: cv_index, "requeued_from": t.number},
                            skip_if_exists=False)
        requeued.append(t.number)
    return requeued


# -- tune ---------------------------------------------------------------------------------------------------

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
    from tunecv.build import as_config

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


@dataclass
class _TunePlan:
    """What a tune will do, checked before anything is written: its config, search space, trials and name."""

    cfg: Config
    space: Any
    points: Optional[list[dict[str, Any]]]  # the grid (``tune.n_trials: grid``), else None
    n_trials: int
    directions: list[str]
    warm_points: list[tuple[dict[str, Any], str]]
    seed: int
    sampler_name: str
    sampler: Any
    pruner: Any
    tune_name: str
    folder: Path
    where: Placement
    resume: bool
    reset: bool

    @property
    def shared(self) -> bool:
        """Workers may share the study (``tune.storage`` is set)."""
        return self.cfg.tune.storage is not None

    @property
    def multi(self) -> bool:
        return len(self.directions) > 1

    @classmethod
    def of(cls, cfg: Config, *, name: Optional[str], resume: bool, reset: bool, dry_run: bool) -> _TunePlan:
        """Check the config and plan the tune (one-line errors; nothing is written)."""
        from tunecv.search_space import SearchSpace, make_pruner, make_sampler

        _check_tune_config(cfg, resume, reset)
        space = SearchSpace.from_file(cfg.tune.search_space)
        space.check_keys(cfg)
        records.check_budget(cfg.tune.timeout, cfg.tune.max_runs)
        grid = cfg.tune.n_trials == "grid"
        if grid and cfg.tune.warm_start is not None:
            raise ConfigError("`tune.warm_start` cannot be used with `tune.n_trials: grid` (a grid runs every point "
                              "once, in order); got both")
        warm_points = records.warm_start_points(cfg.tune.warm_start, cfg.tune.warm_start_top_k, space, _load_tune)
        points = space.grid() if grid else None
        n_trials = len(points) if points is not None else int(cfg.tune.n_trials)
        directions = _directions(cfg)
        if len(directions) > 1 and cfg.tune.pruner != "none":
            raise ConfigError(f"`tune.pruner` must be none with several `tune.objectives` (Optuna cannot prune "
                              f"multi-objective trials); got {cfg.tune.pruner!r}")
        seed = cfg.tune.seed if cfg.tune.seed is not None else cfg.seed
        if cfg.tune.storage is not None and not dry_run:
            # Workers sharing a study must not draw the same points: each gets its own stream.
            seed = (seed * 1_000_003 + os.getpid() + int(time.time() * 1000)) % (2**31 - 1)
        sampler_name = "nsga2" if len(directions) > 1 and cfg.tune.sampler == "tpe" else cfg.tune.sampler
        sampler = make_sampler(sampler_name, seed=seed, space=space, n_objectives=len(directions),
                               constraints_func=_constraints_func(cfg, sampler_name))
        pruner = make_pruner(_pruning.between_runs_pruner_name(cfg.tune))  # hyperband/SHA act inside runs
        _check_pruning_and_stop(cfg, len(directions))
        tune_name, folder = _name_and_folder(cfg, name, resume=resume, reset=reset, dry_run=dry_run)
        return cls(cfg=cfg, space=space, points=points, n_trials=n_trials, directions=directions,
                   warm_points=warm_points, seed=seed, sampler_name=sampler_name, sampler=sampler, pruner=pruner,
                   tune_name=tune_name, folder=folder, where=resolve(cfg), resume=resume, reset=reset)

    def validate(self, executor: Optional[Executor]) -> None:
        """Build the model and data once and apply every grid point, before anything is written."""
        from tunecv.build import validate_objects
        from tunecv.search_space import apply

        first_values = self.points[0] if self.points else self.space.replay(_midpoint)
        validate_objects(apply(self.cfg, self.space.to_config(first_values)).replace(fold=0), executor)
        for point in self.points or []:
            apply(self.cfg, point)

    def print(self) -> None:
        """The dry run's plan."""
        _print_plan(self.cfg, self.space, self.points, self.n_trials, self.tune_name, self.where.strategy,
                    self.sampler_name)


def _check_tune_config(cfg: Config, resume: bool, reset: bool) -> None:
    """The checks of a tune's config that need no file."""
    workspace.check_flags(resume, reset, "tune")
    if cfg.tune.search_space is None:
        raise ConfigError("`tune.search_space` must name a search-space file (YAML or TOML); got None")
    check_tune(cfg)


def _name_and_folder(cfg: Config, name: Optional[str], *, resume: bool, reset: bool,
                     dry_run: bool) -> tuple[str, Path]:
    """The tune's name and folder, checked against what is on disk (``--resume`` / ``--reset``)."""
    tune_name = workspace.choose_name("tune", name or cfg.name, resume=resume,
                                      free=lambda: naming.free_name(Path(cfg.artifact_dir)))
    folder = naming.tune_dir(cfg.artifact_dir, tune_name)
    shared = cfg.tune.storage is not None  # workers of a shared study join it, whether or not it exists
    if not (dry_run or shared):
        workspace.check_on_disk("tune", tune_name, folder if folder.exists() else None, folder.parent,
                                resume=resume, reset=reset)
    return tune_name, folder


@dataclass
class TrialRun:
    """A trial of the study and the cv that evaluates it: what travels from one step of the driver to the next.

    Attributes:
        trial: the ``optuna.Trial`` (from ``study.ask``).
        trial_id: its id in the storage (Optuna's public storage API, looked up once).
        values: dotted config key → the value the trial's model uses.
        session: the trial's :class:`~tunecv.cv.CrossValidation`.
        recorder: reports the cv's finished runs to the trial.
    """

    trial: Any
    trial_id: int
    values: dict[str, Any]
    session: CrossValidation
    recorder: records.TrialRecorder

    @property
    def number(self) -> int:
        return self.trial.number


class TuneDriver:
    """Drives one tune: the tuning process alone talks to the study (workers only train).

    Its steps, in the order a trial meets them: :meth:`ask` (a trial, unless the tune is done), :meth:`start_cv`
    (its cv), :meth:`run_ended` (report a finished run, decide pruning), :meth:`cv_ended` (:meth:`tell` the
    trial, add the cv to the tune table), and at the end :meth:`finish` (the result, the retrain). The
    scheduler (:func:`tunecv.scheduler.drive`) calls ``ask``, ``run_ended`` and ``cv_ended``; a trial travels between
    them as a :class:`TrialRun`.

    Args:
        plan: the checked plan of the tune.
        executor: where the runs execute.
        progress: show a progress bar and one line per finished trial.
        own_executor: the driver shuts the executor down when the runs are over.
    """

    def __init__(self, plan: _TunePlan, executor: Executor, *, progress: bool, own_executor: bool) -> None:
        self.plan, self.cfg, self.executor = plan, plan.cfg, executor
        self.progress, self.own_executor = progress, own_executor
        self.trials: dict[int, TrialRun] = {}  # id(cv) -> the trial it evaluates, for the cvs in flight
        self.consecutive_failures = 0
        self.failures: list[str] = []  # "cv: why", for every failed trial
        self.duplicates_in_a_row = 0
        self.lock = threading.Lock()
        self.worker = worker_identity(self.cfg) if plan.shared else None
        self.grace = float(self.cfg.tune.heartbeat_grace)
        self.last_stale_check = 0.0
        self.damaged: Optional[str] = None  # why the tune's own optuna.db was set aside, if it was
        self.rebuilt = False  # the study was rebuilt from the tune's folder
        # set by open()
        self.study: Any = None
        self.store: _StudyStorage
        self.counts: _Counts
        self.table: _TuneTable
        self.budget: records.Budget
        self.heartbeat: _Heartbeat
        self.best_watch = _BestWatch(plan.directions)
        # in-run pruning and the convergence stop (tunecv.pruning, tunecv.terminator)
        from tunecv.terminator import ConvergenceStop

        self.epochs = _pruning.InRunPruning(self.cfg, plan.tune_name, plan.directions[0])
        self.convergence = ConvergenceStop(self.cfg.tune)
        self.reporter = TuneProgress(plan.tune_name, plan.n_trials, enabled=progress, directions=plan.directions,
                                     refresh_every=HEARTBEAT_EVERY)

    # -- opening ----------------------------------------------------------------------------------------------
    def open(self, held: contextlib.ExitStack) -> None:
        """Claim the tune's name (in ``held``), open its storage and study, and take over what a crash left."""
        plan = self.plan
        if not plan.shared:  # one command per tune name at a time (workers of a shared study share the name)
            held.enter_context(workspace.claimed("tune", plan.tune_name, plan.folder.parent, resume=plan.resume,
                                                 reset=plan.reset,
                                                 found=lambda: plan.folder if plan.folder.exists() else None))
        naming.announce("tune", plan.tune_name)
        created = self._open_study()
        self._enqueue(created)
        if plan.resume or plan.shared:
            requeued = _requeue_stale(self.store, all_running=not plan.shared, grace=self.grace, worker=self.worker)
            if requeued:
                log.info("re-queued trials left running by a crash: %s", requeued)
        self.reporter.refresh(self.study)
        self.counts = _Counts(self.study, plan.shared)
        self.table = _TuneTable(plan.folder, self.study)
        if plan.resume or plan.shared:
            self.table.repair()
            self.table.compact()
        self.last_stale_check = time.monotonic()
        self.budget = records.Budget(self.study, self.cfg.tune.timeout, self.cfg.tune.max_runs)
        self.heartbeat = _Heartbeat(self.store, every=min(HEARTBEAT_EVERY, self.grace / 4))

    def _open_study(self) -> bool:
        """Reset (``--reset``), open the storage, write the tune's config, create or load the study; whether
        it was created."""
        import optuna

        from tunecv.search_space import make_sampler

        plan = self.plan
        url = self.cfg.tune.storage or default_storage(plan.folder)
        if plan.reset and plan.folder.exists():
            if plan.shared:
                with contextlib.suppress(Exception):
                    optuna.delete_study(study_name=plan.tune_name, storage=open_storage(url))
            workspace.discard([plan.folder])
        storage = open_storage(url) if plan.shared else None
        plan.folder.mkdir(parents=True, exist_ok=True)
        if storage is None:
            storage, study, created = self._open_own_study(url)
        else:
            study, created = _create_or_load(optuna, plan.tune_name, storage, plan.sampler, plan.pruner,
                                             plan.directions, url)
        workspace.snapshot(plan.folder, dump_yaml(self.cfg.replace(name=plan.tune_name)))
        # a study created on --resume replaces a lost one: the space is checked against the folder's record
        # before the trials are rebuilt in it
        _check_space_unchanged(study, plan.space, plan.folder, created and not plan.resume)
        rebuilt = created and plan.resume and self._rebuild(study, url)
        if (not created or rebuilt) and not plan.shared:
            # A seeded sampler built again would restart its stream and propose the same points again.
            study.sampler = make_sampler(plan.sampler_name, seed=continued_seed(plan.seed, len(study.trials)),
                                         space=plan.space, n_objectives=len(plan.directions),
                                         constraints_func=_constraints_func(self.cfg, plan.sampler_name))
        self.study, self.store = study, _StudyStorage(study, storage)
        self.rebuilt = rebuilt
        return created

    def _open_own_study(self, url: str) -> tuple[Any, Any, bool]:
        """Open the storage and the study of a tune that is their only user; on ``--resume``, a default
        ``optuna.db`` that cannot be opened (truncated, overwritten) is set aside for a new one, which
        :meth:`_rebuild` fills from the tune's folder."""
        import optuna

        plan = self.plan
        try:
            storage = open_storage(url)
            return (storage, *_create_or_load(optuna, plan.tune_name, storage, plan.sampler, plan.pruner,
                                              plan.directions, url))
        except StorageError as exc:
            path = plan.folder / STORAGE_FILE
            if not (plan.resume and self.cfg.tune.storage is None and path.is_file()):
                raise
            aside = path.with_name(f"{STORAGE_FILE}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(path, aside)
            for extra in ("-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    os.replace(f"{path}{extra}", f"{aside}{extra}")
            self.damaged = f"{exc} (set aside as {aside.name})"
        storage = open_storage(url)
        return (storage, *_create_or_load(optuna, plan.tune_name, storage, plan.sampler, plan.pruner,
                                          plan.directions, url))

    def _rebuild(self, study: Any, url: str) -> bool:
        """Fill a study created on ``--resume`` (the tune's own was missing or damaged) from the trials the
        tune's folder records; whether there were any. Says so in one line."""
        from tunecv._study_rebuild import rebuild_study
        from tunecv.search_space import apply

        plan = self.plan

        def new_session(values: dict[str, Any], cv_name: str) -> CrossValidation:
            return CrossValidation(apply(self.cfg, plan.space.to_config(values)), cv_name, plan.folder / cv_name,
                                   resume=True)

        summary = rebuild_study(study, plan, plan.folder, new_session, _run_score, _objective_value)
        if summary is None:
            return False
        why = self.damaged or f"no study {self.plan.tune_name!r} in {redact(url)}"
        log.warning("the study of tune %s could not be opened (%s): rebuilt it from the tune's folder (trials: %s); "
                    "no finished run is trained again", self.plan.tune_name, why, summary)
        return True

    def _enqueue(self, created: bool) -> None:
        """A new study gets the grid's points, then the warm start's, in order (a rebuilt study those that
        no trial it holds has)."""
        if not created:
            return
        space = self.plan.space
        seen = [t.params or t.system_attrs.get("fixed_params") for t in self.study.get_trials(deepcopy=False)
                ] if self.rebuilt else []
        for point in self.plan.points or []:
            if space.to_trial_params(point) not in seen:
                self.study.enqueue_trial(space.to_trial_params(point), user_attrs={"grid": True})
        for values, source in self.plan.warm_points[:self.plan.n_trials]:
            if space.to_trial_params(values) not in seen:
                self.study.enqueue_trial(space.to_trial_params(values),
                                         user_attrs={records.WARM_START_ATTR: source}, skip_if_exists=False)

    # -- running ----------------------------------------------------------------------------------------------
    def run(self) -> TuneResult:
        """Run trials until the tune is done, then :meth:`finish`."""
        options = self.plan.where.drive_options(self.executor, "tune")
        with self.heartbeat, self.reporter:
            try:
                drive(self.executor, self.ask, quiet=True, **options, on_run_end=self.run_ended, on_session_end=self.cv_ended,
                      on_job_states=self.reporter.job_states if self.progress else None)
            finally:
                if self.own_executor:
                    self.executor.shutdown()
                self.budget.save()
        return self.finish()

    def limits(self) -> tuple[int, int]:
        """Runs of one cv in flight at once (``cv-parallel``: the executor's slots) and cvs in flight at once
        (``tune-parallel``: the executor's slots); 1 and 1 in series."""
        options = self.plan.where.drive_options(self.executor, "tune")
        return options["per_session"], options["max_sessions"]

    def ask(self) -> Optional[CrossValidation]:
        """The cv of a new trial, or ``None`` when this process starts no more (the scheduler's source)."""
        with self.lock:
            if self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                return None
            self._requeue_stale_now_and_then()
            while self._may_ask():
                trial = self._new_trial()
                if trial is None:
                    return None
                values = self.plan.space.suggest(trial)
                trial_id = self.store.trial_id(trial.number)
                if not self._is_duplicate(trial, trial_id):
                    return self.start_cv(trial, trial_id, values)
            return None

    def _requeue_stale_now_and_then(self) -> None:
        """Workers sharing a study take over trials whose worker stopped beating (a trial goes stale in
        ``grace``: no need to look often)."""
        if not self.plan.shared or time.monotonic() - self.last_stale_check < min(HEARTBEAT_EVERY, self.grace / 4):
            return
        self.last_stale_check = time.monotonic()
        mine = {tr.number for tr in self.trials.values()}
        requeued = _requeue_stale(self.store, all_running=False, grace=self.grace, worker=self.worker, mine=mine)
        if requeued:
            log.info("re-queued trials whose worker stopped beating: %s", requeued)

    def _may_ask(self) -> bool:
        """Whether a new trial may start: the study is short of ``n_trials``, the budget holds and the space
        has points left. Waits while only other workers' trials keep the study from ``n_trials``."""
        plan, counts = self.plan, self.counts
        while True:
            finished = counts.finished()
            if finished >= plan.n_trials or self.budget.exhausted(tr.session for tr in self.trials.values()):
                return False
            if self.convergence.converged(self.study):  # tune.stop_when
                return False
            live = counts.live()
            if finished + live >= plan.n_trials or (plan.points is not None and not counts.waiting()):
                if self.trials or not plan.shared or live == 0:
                    return False  # our own trials end this tune (or the grid has nothing left)
                # Trials of other workers are running: wait until they finish, or until one goes stale and
                # is queued again for us, instead of leaving with the study short.
                _wait_for_others(self.store, plan.n_trials, self.grace, self.worker)
                continue
            exhausted = _space_exhausted(self.study, plan.space, plan.points is not None, self.duplicates_in_a_row)
            if exhausted:
                log.warning("%s; the tune stops with %d finished trials", exhausted, finished)
                return False
            return True

    def _new_trial(self) -> Any:
        """A trial asked from the study, or ``None`` when it is past ``n_trials`` (a worker sharing the
        study raced us to the last one; the trial is told FAIL)."""
        from optuna.trial import TrialState

        trial = self.study.ask()
        self.counts.asked()
        if self.plan.shared and _overflow(self.study, trial, self.plan.n_trials):
            trial.set_user_attr("overflow", True)  # asked past n_trials by a racing worker
            self.study.tell(trial, state=TrialState.FAIL)
            return None
        return trial

    def _is_duplicate(self, trial: Any, trial_id: int) -> bool:
        """Whether the sampler proposed a point already evaluated: never trained twice, the trial is told FAIL."""
        from optuna.trial import TrialState

        twin = None if self.plan.points is not None else _finished_twin(self.store, trial, trial_id)
        if twin is None:
            self.duplicates_in_a_row = 0
            return False
        trial.set_user_attr("duplicate_of", twin)
        self.study.tell(trial, state=TrialState.FAIL)
        self.counts.told("fail")
        self.duplicates_in_a_row += 1
        return True

    def start_cv(self, trial: Any, trial_id: int, values: dict[str, Any]) -> CrossValidation:
        """The cv of a new trial: its folder and config written, the runs it kept from disk reported."""
        from tunecv.search_space import apply

        plan = self.plan
        self.heartbeat.add(trial_id)
        if self.worker is not None:
            self.store.set_system_attr(trial_id, WORKER_ATTR, self.worker)
        trial.set_user_attr(records.CONFIG_VALUES_ATTR, values)
        cv_index = int(trial.user_attrs.get(CV_INDEX_ATTR, trial.number))
        if CV_INDEX_ATTR not in trial.user_attrs:
            trial.set_user_attr(CV_INDEX_ATTR, cv_index)
        cv_name = naming.cv_name(plan.tune_name, cv_index)
        trial_cfg = apply(self.cfg, plan.space.to_config(values))
        extra = {"tune_name": plan.tune_name, "trial": trial.number, "trial_state": "running", **values}
        session = CrossValidation(trial_cfg, cv_name, plan.folder / cv_name, resume=True,
                                  tracking={"group": plan.tune_name, "job_type": cv_name,
                                            "config": {"trial": trial.number, **values}},
                                  extra_columns=extra)
        recorder = records.TrialRecorder(trial, session, lambda row: _run_score(session, row), report=not plan.multi)
        self.trials[id(session)] = TrialRun(trial, trial_id, values, session, recorder)
        recorder.adopt()
        self.epochs.hook(self.study, trial, session)  # in-run pruning: each run gets its spec
        if _pruning.was_pruned_inside(session.rows.values()):  # a resumed trial whose run was pruned inside
            session.stop("pruned", completed_columns={"trial_state": "pruned"})
        (plan.folder / cv_name).mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            workspace.snapshot(plan.folder / cv_name, dump_yaml(trial_cfg.replace(name=cv_name)))
        self.reporter.started(cv_name, trial.number)
        return session

    def run_ended(self, session: CrossValidation, run: Any, row: dict) -> None:
        """Report a finished run to its trial and prune the cv when the pruner says so."""
        tr = self.trials[id(session)]
        tr.recorder.run_ended(run.index, row)
        self.epochs.run_ended(tr.trial, run)  # the run's curve into its trial (in-run pruning)
        self.budget.save()
        if row["status"] == "pruned" and not tr.session.done:  # pruned inside the run: the trial stops
            session.stop("pruned", completed_columns={"trial_state": "pruned"})
            log.info("%s pruned inside run %s at epoch %s", session.name, run.name, row.get("pruned_at_epoch"))
        elif self._should_prune(tr, row):
            session.stop("pruned", completed_columns={"trial_state": "pruned"})
            log.info("%s pruned after %d runs", session.name, len(session.rows))

    def _should_prune(self, tr: TrialRun, row: Mapping[str, Any]) -> bool:
        if self.plan.multi or self.cfg.tune.pruner == "none" or row["status"] != "completed":
            return False
        return not tr.session.done and tr.trial.should_prune()

    def cv_ended(self, session: CrossValidation) -> None:
        """Tell the trial of a finished cv, keep the best-trial record and the counts, add the cv to the table."""
        tr = self.trials.pop(id(session))
        state = self.tell(tr)
        if self.best_watch.may_change(state, session):
            records.record_best(self.study, _best_trial(self.study, self.plan.directions), self.plan.directions)
            self.best_watch.update(self.study)
        if state == "fail":
            self.consecutive_failures += 1
            self.failures.append(f"{session.name}: {session.failure_summary() or 'no finite score'}")
        else:
            self.consecutive_failures = 0
        self.counts.told(state)
        self.heartbeat.remove(tr.trial_id)
        self.epochs.forget(tr.trial)
        self.table.add(session, tr.trial, state)
        self.reporter.finished(self.study, session, tr.trial, state, tr.values)

    def tell(self, tr: TrialRun) -> str:
        """Tell the study how the trial's cv ended; its state (``complete``, ``pruned`` or ``fail``)."""
        from optuna.trial import TrialState

        session, trial, multi = tr.session, tr.trial, self.plan.multi
        result = session.result()
        state: Any
        if result.n_completed == 0 and _pruning.was_pruned_inside(session.rows.values()):
            state, values = TrialState.PRUNED, None  # its first run was pruned inside itself
        elif result.n_completed == 0:
            state, values = TrialState.FAIL, None
            trial.set_user_attr("error", session.failure_summary()[:1000])
        elif multi:
            values = [_objective_value(result.run_infos, m) for m in self.cfg.tune.objectives or []]
            state = TrialState.COMPLETE if all(math.isfinite(v) for v in values) else TrialState.FAIL
        else:
            values = [result.score]
            state = TrialState.PRUNED if session.stopped is not None else TrialState.COMPLETE
            if not math.isfinite(result.score):
                state = TrialState.FAIL
        # everything is set before the tell: a finished trial cannot be changed. A pruned trial's value is its
        # last intermediate value, the cv score so far (see tunecv._trial_records).
        tr.recorder.before_tell(result.score, result.score_is_unstable)
        if state == TrialState.COMPLETE and not multi:  # tune.stop_when: the trial's cv scores
            self.convergence.report(trial, tr.recorder.run_scores.values())
        _record_constraints(self.cfg, trial, result.run_infos)
        if state in (TrialState.PRUNED, TrialState.FAIL):
            self.study.tell(trial, state=state)
        else:
            self.study.tell(trial, values if multi else values[0])
        session.extra_columns["trial_state"] = state.name.lower()
        for row in session.rows.values():  # the cv's own table says how its trial ended, as the tune's does
            if row.get("trial") == trial.number:
                row["trial_state"] = state.name.lower()
        session.write()
        return state.name.lower()

    # -- finishing --------------------------------------------------------------------------------------------
    def finish(self) -> TuneResult:
        """The tune table compacted, the result (raises when too many trials in a row failed), the retrain."""
        plan = self.plan
        self.table.compact()
        if self.budget.reason:
            log.info("tune %s stopped starting new cvs: %s", plan.tune_name, self.budget.reason)
        if self.convergence.reason and not self.budget.reason:
            log.info("tune %s stopped starting new cvs: %s", plan.tune_name, self.convergence.reason)
        if self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            raise RunFailedError(f"tune {plan.tune_name!r} stopped after {MAX_CONSECUTIVE_FAILURES} trials in a row "
                                 f"failed: " + " | ".join(self.failures[-MAX_CONSECUTIVE_FAILURES:]))
        result = _result(plan.tune_name, plan.folder, self.study, plan.space, plan.directions)
        result.stopped_by = self.budget.reason or self.convergence.reason
        if (self.cfg.tune.retrain_and_test and result.best_trial is not None
                and _claim_retrain(self.study, plan.folder, plan.shared, plan.n_trials)):
            result.retrain = _retrain(self.cfg, plan.space, result, plan.folder, plan.tune_name)
        if self.progress:
            self.reporter.summary(result)  # the best, its interval against the runner-up, its parameters
            from rich.console import Console

            console = Console()
            for line in closing_lines(result):
                console.print(line, markup=False, highlight=False, soft_wrap=True)  # paths stay whole
        return result


def closing_lines(result: TuneResult) -> list[str]:
    """The tune's last lines after the best trial's summary: the retrain's test metrics (when
    ``tune.retrain_and_test``) and the ``tunecv report`` command to run next."""
    import shlex

    lines = []
    retrain = result.retrain
    if retrain is not None:
        if retrain.status == "completed":
            metrics = retrain.metrics or {}
            tested = {k: v for k, v in metrics.items() if k.startswith("test/")}
            shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(tested.items()))
            lines.append(f"retrain: test {shown or '(no test/* metric logged)'} ({retrain.run_dir})")
        else:
            lines.append(f"retrain: {retrain.status}: {(retrain.error or '').splitlines()[0] if retrain.error else ''}"
                         f" ({retrain.run_dir})")
        if result.retrain_epochs:
            lines.append(f"  trained {result.retrain_epochs}")
    folder = Path(result.tune_dir)
    with contextlib.suppress(ValueError):
        folder = folder.resolve().relative_to(Path.cwd().resolve())
    lines.append(f"next: tunecv report {shlex.quote(str(folder))}")
    return lines


def _load_tune(folder: Path) -> tuple[Any, Optional[dict]]:
    """An earlier tune's Optuna study and its search-space fingerprint (for ``tune.warm_start``)."""
    import optuna

    old_cfg = workspace.read_snapshot(folder)
    url = (old_cfg.get("tune") or {}).get("storage") or default_storage(folder)
    study = optuna.load_study(study_name=old_cfg.get("name") or folder.name, storage=open_storage(url))
    return study, read_json(folder / SPACE_FILE)


def _claim_retrain(study: Any, folder: Path, shared: bool, n_trials: int) -> bool:
    """With several workers on one study, the worker that sees the last trial finish retrains, once
    (an O_EXCL lock file on the shared disk decides between two that finish together)."""
    if not shared:
        return True
    if _count_finished(study) < n_trials or _count_live(study) > 0:
        log.info("other workers are still running trials; the last one to finish retrains the best parameters")
        return False
    try:
        fd = os.open(folder / RETRAIN_LOCK_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        log.info("another worker retrains the best parameters")
        return False
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    return True


def _wait_for_others(store: _StudyStorage, n_trials: int, grace: float, worker: Optional[str]) -> None:
    """Block while other workers run the last trials; return when one finished or one was re-queued.

    A worker of a shared study never ends while the study is short of ``n_trials`` and a trial is
    RUNNING: that trial's worker may be dead, and its trial is taken over once its heartbeat is
    ``grace`` seconds old.
    """
    from optuna.trial import TrialState

    study = store.study
    poll = max(0.5, min(5.0, grace / 8))
    said = -1e9
    before = (_count_finished(study), _count_live(study))
    while True:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return  # they finished between the caller's count and this look: the caller counts again
        if time.monotonic() - said >= 60:
            said = time.monotonic()
            log.info("waiting for %d trial(s) that other workers run (%s): the study has %d of %d trials; a trial "
                     "whose worker stops beating for %.0f s (tune.heartbeat_grace) is taken over",
                     len(running), ", ".join(str(t.number) for t in running), before[0], n_trials, grace)
        time.sleep(poll)
        if _requeue_stale(store, all_running=False, grace=grace, worker=worker):
            return
        now = (_count_finished(study), _count_live(study))
        if now != before or _n_trials(study, TrialState.WAITING):
            return


def continued_seed(seed: int, n_trials_so_far: int) -> int:
    """The sampler seed of a tune that already holds ``n_trials_so_far`` trials.

    A fresh tune (no trial yet) uses ``seed`` itself, so it reproduces exactly; a resumed one continues
    with a seed derived from both, instead of restarting the stream and proposing its first points again.
    """
    if n_trials_so_far <= 0:
        return seed
    return (seed * 1_000_003 + n_trials_so_far * 7_919 + 1) % (2**31 - 1)


def _finished_twin(store: _StudyStorage, trial: Any, trial_id: int) -> Optional[int]:
    """The number of a finished trial with exactly ``trial``'s parameters (``None`` if there is none).

    A point that was queued on purpose (re-queued after a crash, warm start) is never a twin.
    """
    from optuna.trial import TrialState

    if not trial.params or "fixed_params" in store.system_attrs(trial_id):
        return None
    for other in store.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if other.params == trial.params:
            return other.number
    return None


MAX_DUPLICATES_IN_A_ROW = 50


def _space_exhausted(study: Any, space: Any, grid: bool, duplicates_in_a_row: int) -> Optional[str]:
    """Why no new point can be proposed (every point of a discrete space finished), else ``None``."""
    from optuna.trial import TrialState

    if grid:
        return None
    if duplicates_in_a_row >= MAX_DUPLICATES_IN_A_ROW:
        return (f"the sampler proposed only points that were already evaluated, {duplicates_in_a_row} times in a "
                f"row: the search space looks exhausted")
    if not space.is_grid_compatible:
        return None
    size = space.grid_size()
    seen = {tuple(sorted(t.params.items())) for t in
            study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))}
    if len(seen) >= size:
        return f"the search space is exhausted: all {size} of its points were evaluated"
    return None


class _BestWatch:
    """Whether a just-told trial can change the best-trial record (best and runner-up), so that the
    record, which reads every trial, is only rewritten when it can.

    Only a trial whose stable score enters the two best this process has seen can: the two best of a
    subset of the trials never beat the two best of all of them, also when other workers share the study.
    """

    def __init__(self, directions: list[str]) -> None:
        self.direction = directions[0]
        self.sign = 1.0 if directions[0] == "maximize" else -1.0
        self.multi = len(directions) > 1
        self.top: Optional[list[float]] = None  # the two best signed stable scores, best first

    def may_change(self, state: str, session: CrossValidation) -> bool:
        if self.multi or self.top is None:
            return True
        result = session.result()
        if state == "complete" and result.score_is_unstable:
            return True  # it may become study.best_trial: the record's reason then says why tunecv differs
        if state != "complete" or not math.isfinite(result.score):
            return False
        return len(self.top) < 2 or self.sign * result.score >= self.top[-1]

    def update(self, study: Any) -> None:
        from optuna.trial import TrialState

        if self.multi:
            return
        ranked = records.ranked_trials(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                                       self.direction)
        self.top = [self.sign * t.values[0] for t in ranked[:2]]


def _count_live(study: Any) -> int:
    from optuna.trial import TrialState

    return _n_trials(study, TrialState.RUNNING)


def _overflow(study: Any, trial: Any, n_trials: int) -> bool:
    """Several workers may ask at once; the trials past ``n_trials`` (by number) give way.

    Only workers sharing a study can overflow (a lone driver asks under its lock after counting)."""
    from optuna.trial import TrialState

    alive = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                   TrialState.RUNNING))
             if t.number < trial.number]
    return len(alive) >= n_trials


def _midpoint(param: Any) -> Any:
    values = param.values() if param.is_discrete else None
    if values:
        return values[0]
    if param.distribution == "constant":
        return param.value
    low, high = param.low, param.high
    mid = (low + high) / 2
    return int(mid) if param.distribution == "intuniform" else mid


def _create_or_load(optuna: Any, name: str, storage: Any, sampler: Any, pruner: Any, directions: list[str],
                    url: str) -> tuple[Any, bool]:
    kwargs: dict[str, Any] = {"study_name": name, "storage": storage, "sampler": sampler, "pruner": pruner}
    if len(directions) == 1:
        kwargs["direction"] = directions[0]
    else:
        kwargs["directions"] = directions
    try:
        try:
            return optuna.create_study(load_if_exists=False, **kwargs), True
        except Exception as exc:  # two workers creating one study at once: the loser's insert fails
            text = str(exc)
            if isinstance(exc, optuna.exceptions.DuplicatedStudyError) or not any(
                    s in text for s in ("UNIQUE constraint", "duplicate key", "IntegrityError")):
                raise
            raise optuna.exceptions.DuplicatedStudyError(text) from None
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        if [d.name.lower() for d in study.directions] != directions:
            raise ConfigError(f"the study {name!r} in {redact(url)} optimizes "
                              f"{[d.name.lower() for d in study.directions]}, but the config asks for "
                              f"{directions} (cv.scoring_metric / tune.objectives changed)") from None
        return study, False
    except Exception as exc:
        raise StorageError(f"`tune.storage` cannot be used: {redact(url)}: "
                           f"{redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}") from None


def _check_space_unchanged(study: Any, space: Any, folder: Path, created: bool) -> None:
    fingerprint = space.fingerprint()
    stored = study.user_attrs.get("tunecv:search_space")
    if stored is None:
        stored = read_json(folder / SPACE_FILE) if not created else None
    if stored is not None:
        changes = space.diff(stored)
        if changes:
            raise ConfigError("the search space changed since this tune started (use a new --name, or --reset): "
                              + "; ".join(changes))
    else:
        study.set_user_attr("tunecv:search_space", fingerprint)
    atomic_write_json(folder / SPACE_FILE, fingerprint)


def _check_pruning_and_stop(cfg: Config, n_objectives: int) -> None:
    """One-line errors for in-run pruning (tunecv.pruning) and ``tune.stop_when`` (tunecv.terminator)."""
    from tunecv import terminator

    _pruning.check_config(cfg.tune)
    if n_objectives > 1 and _pruning.run_pruner_name(cfg.tune) != "none":
        raise ConfigError(f"`tune.run_pruner` must be none with several `tune.objectives` (Optuna cannot prune "
                          f"multi-objective trials); got {_pruning.run_pruner_name(cfg.tune)!r}")
    terminator.check_config(cfg.tune, n_objectives)


def _run_score(session: CrossValidation, row: Mapping[str, Any]) -> Optional[float]:
    import pandas as pd

    from tunecv.scoring import score_runs

    try:
        value = score_runs(pd.DataFrame([row]), session.cfg.cv.scoring_metric, session.cfg.cv.multi_score_strategy)
    except Exception:
        return None
    return value if math.isfinite(value) else None


def _constraints_func(cfg: Config, sampler_name: str) -> Any:
    """Optuna's ``constraints_func`` of ``tune.constraints`` for the samplers that take one, else ``None``;
    also ``None`` from Optuna 5 on, where each trial sets its constraints (``Trial.set_constraint``) and
    the samplers read them (``constraints_func`` is deprecated there)."""
    from optuna.trial import Trial

    from tunecv.constraints import SAMPLERS_WITH_CONSTRAINTS, constraints_func, parse_constraints

    constraints = parse_constraints(cfg.tune.constraints)
    if not constraints or sampler_name not in SAMPLERS_WITH_CONSTRAINTS or hasattr(Trial, "set_constraint"):
        return None
    return constraints_func(len(constraints))


def _record_constraints(cfg: Config, trial: Any, frame: Any) -> None:
    """The trial's constraint values and whether it is feasible (user attrs; before it is told)."""
    from tunecv.constraints import FEASIBLE_ATTR, VALUES_ATTR, evaluate, parse_constraints

    constraints = parse_constraints(cfg.tune.constraints)
    if not constraints:
        return
    values = evaluate(constraints, frame)
    trial.set_user_attr(VALUES_ATTR, values)
    trial.set_user_attr(FEASIBLE_ATTR, all(v <= 0 for v in values))
    if hasattr(trial, "set_constraint"):  # Optuna >= 5: what its samplers and study.best_trial read
        for c, v in zip(constraints, values, strict=True):
            trial.set_constraint(str(c), v)
    broken = [str(c) for c, v in zip(constraints, values, strict=True) if not v <= 0]
    if broken:
        log.info("trial %d breaks tune.constraints %s (not a candidate for the best trial)", trial.number,
                 ", ".join(broken))


def _objective_value(frame: Any, metric: str) -> float:
    from tunecv.scoring import score_runs

    return float(score_runs(frame[frame["status"] == "completed"], [metric], "arithmetic"))


class _TuneTable:
    """``{tune_dir}/run_infos.parquet`` in time independent of the tune's size: one part file per finished
    cv (written once, with its trial's final state), compacted into the table when the parts not yet in
    it reach a quarter of those that are (so each row is rewritten a bounded number of times) and at the
    end. :func:`tunecv.results.read_tune_table` reads table and parts alike."""

    def __init__(self, folder: Path, study: Any) -> None:
        self.folder, self.study = folder, study
        self.held = 0  # parts in the compacted table at its last compaction by this process
        self.pending: dict[str, Any] = {}  # parts this process wrote since, by name: not read back from disk

    def add(self, session: CrossValidation, trial: Any, state: str) -> None:
        from tunecv.results import write_run_infos_part

        df = session.frame()
        if len(df):
            name = _part_name(session.name, trial.number)
            df = _with_trial_states(df, self.study, {trial.number: state})
            write_run_infos_part(self.folder, name, df)
            self.pending[name] = df
        if len(self.pending) >= max(1, self.held // 4):
            self.compact()

    def compact(self) -> None:
        from tunecv.results import compact_run_infos

        self.held = compact_run_infos(self.folder, self._pareto if len(self.study.directions) > 1 else None,
                                      known=self.pending)
        self.pending = {}

    def _pareto(self, df: Any) -> Any:
        pareto: set[int] = set()
        with contextlib.suppress(Exception):
            pareto = {t.number for t in self.study.best_trials}
        if "trial" in df.columns:
            import pandas as pd

            df["is_pareto_optimal"] = [bool(pd.notna(t) and int(t) in pareto) for t in df["trial"]]
        return df

    def repair(self) -> None:
        """Write the parts a crash left unwritten (a trial told, its part not yet on disk)."""
        from optuna.trial import TrialState

        from tunecv.results import PARTS_DIR, read_run_infos, write_run_infos_part

        done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        have = {p.name for p in (self.folder / PARTS_DIR).glob("*.parquet")}
        trials = self.study.get_trials(deepcopy=False)
        states = {t.number: t.state.name.lower() for t in trials}
        for t in trials:
            cv_name = t.user_attrs.get("cv_name")
            if t.state not in done or not cv_name or f"{_part_name(cv_name, t.number)}.parquet" in have:
                continue
            df = read_run_infos(self.folder / cv_name / RUN_INFOS_FILE)
            if len(df) and "trial" in df.columns and (df["trial"] == t.number).any():
                write_run_infos_part(self.folder, _part_name(cv_name, t.number),
                                     _with_trial_states(df, self.study, states))


def _part_name(cv_name: str, number: int) -> str:
    return f"{cv_name}.trial{number}"


def _with_trial_states(df: Any, study: Any, known: Optional[Mapping[int, str]] = None) -> Any:
    """``df`` with ``trial_state`` taken from the study for every row's trial (``known`` first)."""
    import pandas as pd

    if "trial" not in df.columns:
        return df
    states = dict(known or {})
    unknown = {int(t) for t in df["trial"] if pd.notna(t)} - set(states)
    if unknown:
        with contextlib.suppress(Exception):
            states.update({t.number: t.state.name.lower() for t in study.get_trials(deepcopy=False)
                           if t.number in unknown})
    current = df["trial_state"] if "trial_state" in df.columns else [None] * len(df)
    df["trial_state"] = [states.get(int(t), s) if pd.notna(t) else s for t, s in zip(df["trial"], current,
                                                                                    strict=False)]
    return df


def _result(name: str, folder: Path, study: Any, space: Any, directions: list[str]) -> TuneResult:
    from tunecv.results import read_tune_table

    best = _best_trial(study, directions)
    pareto = []
    if len(directions) > 1:
        with contextlib.suppress(Exception):
            pareto = sorted(t.number for t in study.best_trials)
    return TuneResult(
        name=name, tune_dir=folder,
        best_params=space.params_from_trial(best.params, best.distributions) if best is not None else {},
        best_score=float(best.values[0]) if best is not None else float("nan"),
        best_trial=best.number if best is not None else None,
        run_infos=read_tune_table(folder), study=study, pareto_trials=pareto)


def _retrain(cfg: Config, space: Any, result: TuneResult, folder: Path, tune_name: str) -> Any:
    """Train the best parameters once on all non-test data and test it.

    With ``fold_method: none`` the run's ``val/*`` is computed on the data it trains on, so nothing may be
    chosen by it: the retrain trains for the epochs the best cv's runs needed to reach their best checkpoint
    (:func:`retrain_epochs`), without early stopping, and keeps its last checkpoint.
    """
    from tunecv.search_space import apply
    from tunecv.train import train

    best_cfg = apply(cfg, space.to_config(result.best_params))
    epochs, why = retrain_epochs(result)
    trainer = {k: v for k, v in (best_cfg.trainer or {}).items() if k not in ("min_epochs", "max_steps")}
    if epochs is not None:
        trainer["max_epochs"] = epochs
    callbacks = trainer.get("callbacks")
    if isinstance(callbacks, list):  # a user's EarlyStopping would stop on the training data too
        trainer["callbacks"] = [cb for cb in callbacks if not _is_early_stopping_spec(cb)]
    best_cfg = best_cfg.replace(**{"split.fold_method": "none", "fold": 0, "cv.n_folds": None,
                                   "early_stopping": None, "checkpoint": None, "trainer": trainer})
    run_name = naming.retrain_name(tune_name)
    existing = naming.find_run_dirs(folder, run_name)
    run_dir = existing[-1] if existing else naming.run_dir(folder, run_name, naming.new_run_id())
    log.info("retraining the best parameters (trial %s) on all non-test data for %s into %s", result.best_trial,
             why, run_dir)
    result.retrain_epochs = why
    return train(best_cfg, name=run_name, run_dir=run_dir, resume=bool(existing),
                 tracking={"group": tune_name, "job_type": "retrain", "config": result.best_params})


def _is_early_stopping_spec(spec: Any) -> bool:
    if isinstance(spec, Mapping):
        return str(spec.get("class_path", "")).rsplit(".", 1)[-1] == "EarlyStopping"
    from tunecv._callbacks import is_early_stopping

    return bool(is_early_stopping(spec))


_EPOCH_IN_NAME = re.compile(r"epoch[=_]?(\d+)")


def checkpoint_epoch(path: Any) -> Optional[int]:
    """The 0-based epoch a checkpoint was saved at: from its file name (``best-epoch3-step40.ckpt``,
    Lightning's ``epoch=3-step=40.ckpt``), else from the file (``checkpoint["epoch"]``); ``None`` when neither
    says."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        return None
    match = _EPOCH_IN_NAME.search(Path(path).name)
    if match:
        return int(match.group(1))
    try:
        import torch

        ckpt = torch.load(str(path), map_location="cpu", weights_only=False, mmap=True)
        return int(ckpt["epoch"])
    except Exception:
        return None


def retrain_epochs(result: TuneResult) -> tuple[Optional[int], str]:
    """The epochs the retrain trains: the median over the best cv's completed runs of the epochs to their best
    checkpoint (its 0-based epoch + 1), rounded half up; ``None`` (the config's ``max_epochs``) when no run
    says. Returns it with a phrase saying where it came from."""
    import statistics

    df = result.run_infos
    cv_name = None
    with contextlib.suppress(Exception):
        cv_name = next(t for t in result.study.trials if t.number == result.best_trial).user_attrs.get("cv_name")
    if df is None or not len(df) or "checkpoint" not in df.columns:
        return None, "trainer.max_epochs epochs (no run of the best cv recorded a checkpoint)"
    rows = df[df["cv_name"] == cv_name] if cv_name is not None and "cv_name" in df.columns else \
        df[df["trial"] == result.best_trial]
    if "status" in rows.columns:
        rows = rows[rows["status"] == "completed"]
    epochs = [e + 1 for e in (checkpoint_epoch(p) for p in rows["checkpoint"]) if e is not None]
    if not epochs:
        return None, "trainer.max_epochs epochs (no run of the best cv recorded a checkpoint epoch)"
    n = math.floor(statistics.median(epochs) + 0.5)
    return n, (f"{n} epoch{'s' if n != 1 else ''} (the median epochs to the best checkpoint of {cv_name or 'the best cv'}'s "
               f"{len(epochs)} runs: {', '.join(map(str, sorted(epochs)))}; no early stopping, last checkpoint kept)")


def _print_plan(cfg: Config, space: Any, points: Any, n_trials: int, tune_name: str, strategy: str,
                sampler: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    sp = cfg.split
    folds = cfg.cv.n_folds or (sp.total_folds if sp.fold_method != "none" else 1)
    runs = folds * cfg.cv.n_seeds
    console.print(f"tune {tune_name}: {n_trials} trials x {runs} runs each ({folds} folds x {cfg.cv.n_seeds} "
                  f"seeds), sampler {sampler}, pruner {cfg.tune.pruner}, strategy {strategy}")
    rungs_line = _pruning.plan_line(cfg)  # in-run pruning: the epoch rungs
    if rungs_line:
        console.print(rungs_line)
    if cfg.tune.stop_when:
        console.print(f"stop when: {cfg.tune.stop_when} (after at least {cfg.tune.stop_min_trials} complete trials)")
    console.print(f"folder: {naming.tune_dir(cfg.artifact_dir, tune_name)}")
    table = Table(title="search space")
    table.add_column("key")
    table.add_column("distribution")
    for p in space:
        table.add_row(p.key, p.describe())
    console.print(table)
    if points is not None:
        grid_table = Table(title=f"grid: {len(points)} trials")
        grid_table.add_column("cv")
        keys = [p.key for p in space]
        for k in keys:
            grid_table.add_column(k)
        for i, point in enumerate(points):
            grid_table.add_row(naming.cv_name(tune_name, i), *(str(point.get(k)) for k in keys))
        console.print(grid_table)
    console.print("dry run: nothing was created")
