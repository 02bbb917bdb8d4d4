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
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from tunecv import _trial_records as records
from tunecv import naming
from tunecv._io import atomic_write_json, atomic_write_text, read_json
from tunecv.config import PARALLEL_STRATEGIES, Config, dump_yaml
from tunecv.cv import RUN_INFOS, CrossValidation, drive, make_cv_executor, resolve_parallel
from tunecv.errors import ConfigError, ResumeError, RunFailedError, StorageError, check_resume_reset
from tunecv.progress import TuneProgress

__all__ = ["TuneResult", "open_storage", "tune"]

log = logging.getLogger(__name__)

STORAGE_FILE = "optuna.db"
SPACE_FILE = "search_space.json"
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
                    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
                except Exception as exc:  # workers starting together race to create the schema
                    text = str(exc)
                    if attempt == 5 or not any(s in text for s in ("duplicate key", "already exists",
                                                                    "UniqueViolation")):
                        raise
                    time.sleep(0.3 + random.random())
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}}
                                          if url.startswith("sqlite") else None)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StorageError(f"`tune.storage` cannot be opened: {redact(url)}: {redact(first)}") from None


def _postgres_driver(url: str) -> str:
    """``postgresql://`` means psycopg2 to SQLAlchemy; use psycopg (3) when that is what is installed."""
    import importlib.util

    rest = url.split("://", 1)[1]
    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
        return f"postgresql+psycopg://{rest}"
    return f"postgresql://{rest}"


def default_storage(tune_dir: Path) -> str:
    return f"sqlite:///{(tune_dir / STORAGE_FILE).resolve()}"


# -- helpers over trials ------------------------------------------------------------------------------------

def _n_trials(study: Any, *states: Any) -> int:
    """How many trials are in ``states``, through the storage's state-filtered count (no trial copies)."""
    return study._storage.get_n_trials(study._study_id, state=tuple(states))


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
    """The best COMPLETE trial whose score is stable (never an unstable one)."""
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if not t.user_attrs.get(UNSTABLE_ATTR) and t.values and all(math.isfinite(v) for v in t.values)]
    if not trials or len(directions) != 1:
        return None
    sign = 1 if directions[0] == "maximize" else -1
    return max(trials, key=lambda t: (sign * t.values[0], -t.number))


class _Heartbeat:
    """Marks this process's running trials as alive, so that other workers can tell stale ones."""

    def __init__(self, study: Any, every: float = HEARTBEAT_EVERY) -> None:
        self.study = study
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
            self.study._storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

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


def _requeue_stale(study: Any, space: Any, all_running: bool, grace: float = STALE_AFTER,
                   worker: Optional[str] = None, mine: Optional[set[int]] = None) -> list[int]:
    """Fail trials left RUNNING by a crash and queue their parameters again (same cv index).

    A RUNNING trial is taken over when ``all_running`` (one process owns the study), when its heartbeat
    is older than ``grace`` seconds, or when it was started by this worker slot (``worker``) in an
    earlier life (it is not one of ``mine``, the trials this process runs now).
    """
    from optuna.trial import TrialState

    now = time.time()
    requeued = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = float(t.system_attrs.get(HEARTBEAT_ATTR, 0.0))
        if t.datetime_start is not None:  # a trial just asked for has no heartbeat yet
            beat = max(beat, t.datetime_start.timestamp())
        own_earlier = (worker is not None and t.system_attrs.get(WORKER_ATTR) == worker
                       and t._trial_id not in (mine or set()))
        if not all_running and not own_earlier and now - beat < grace:
            continue  # another live worker is running it
        try:
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except Exception:  # another worker re-queued it first
            continue
        cv_index = t.user_attrs.get(CV_INDEX_ATTR, t.number)
        study.enqueue_trial(dict(t.params), user_attrs={CV_INDEX_ATTR: cv_index, "requeued_from": t.number},
                            skip_if_exists=False)
        requeued.append(t.number)
    return requeued


# -- tune ---------------------------------------------------------------------------------------------------

def tune(
    config: Union[Config, Mapping, str, os.PathLike],
    *,
    name: Optional[str] = None,
    resume: bool = False,
    reset: bool = False,
    dry_run: bool = False,
    progress: bool = True,
    executor: Any = None,
) -> Optional[TuneResult]:
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
            built from ``strategy`` / ``devices`` and its section); a given executor is not shut down.

    Returns:
        The :class:`TuneResult`.
    """
    with contextlib.ExitStack() as held:  # the tune's name stays claimed until it ends
        return _tune(config, name=name, resume=resume, reset=reset, dry_run=dry_run, progress=progress,
                     executor=executor, held=held)


def _tune(config: Union[Config, Mapping, str, os.PathLike], *, name: Optional[str], resume: bool, reset: bool,
          dry_run: bool, progress: bool, executor: Any, held: contextlib.ExitStack) -> Optional[TuneResult]:
    import optuna

    from tunecv.build import as_config
    from tunecv.search_space import SearchSpace, apply, make_pruner, make_sampler

    cfg = as_config(config)
    check_resume_reset(resume, reset, "tune")
    if cfg.tune.search_space is None:
        raise ConfigError("`tune.search_space` must name a search-space file (YAML or TOML); got None")
    strategy = cfg.device_setting("strategy")
    strategies = {cfg.strategy, (cfg.trainer or {}).get("strategy")}
    if set(PARALLEL_STRATEGIES) <= strategies:
        raise ConfigError("`strategy` tune-parallel and cv-parallel exclude each other: tune-parallel runs several "
                          "cvs at once (runs in series), cv-parallel the runs of one cv at once; pick one")
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
    multi = len(directions) > 1
    if multi and cfg.tune.pruner != "none":
        raise ConfigError(f"`tune.pruner` must be none with several `tune.objectives` (Optuna cannot prune "
                          f"multi-objective trials); got {cfg.tune.pruner!r}")
    seed = cfg.tune.seed if cfg.tune.seed is not None else cfg.seed
    if cfg.tune.storage is not None and not dry_run:
        # Workers sharing a study must not draw the same points: each gets its own stream.
        seed = (seed * 1_000_003 + os.getpid() + int(time.time() * 1000)) % (2**31 - 1)
    sampler_name = cfg.tune.sampler
    if multi and sampler_name == "tpe":
        sampler_name = "nsga2"
    sampler = make_sampler(sampler_name, seed=seed, space=space, n_objectives=len(directions))
    pruner = make_pruner(cfg.tune.pruner)

    tune_name = naming.validate_name(name or cfg.name) if (name or cfg.name) else None
    if tune_name is None:
        if resume:
            raise ResumeError("--resume needs the `name` of the tune to continue (--name NAME)")
        tune_name = naming.free_name(Path(cfg.artifact_dir))
    folder = naming.tune_dir(cfg.artifact_dir, tune_name)
    shared = cfg.tune.storage is not None
    if not dry_run:
        if folder.exists() and not (resume or reset or shared):
            raise ResumeError(f"a tune named {tune_name!r} exists in {folder}; pass --resume to finish it or "
                              f"--reset to delete it and start over")
        if resume and not folder.exists() and not shared:
            raise ResumeError(f"nothing to resume: no tune named {tune_name!r} in {folder.parent}")

    # Validate everything (data, model, each grid point's config) before anything is written.
    from tunecv.cv import validate_objects

    parallel, accelerator = resolve_parallel(cfg)
    # A pool starts its worker server (importing torch and lightning) now, while we validate.
    own_executor = executor is None
    if own_executor and not dry_run:
        executor = make_cv_executor(cfg, parallel, accelerator)
    try:
        first_values = points[0] if points else {p.key: _midpoint(p) for p in space}
        validate_objects(apply(cfg, first_values).replace(fold=0), executor)
        if points:
            for point in points:
                apply(cfg, point)
        if dry_run:
            _print_plan(cfg, space, points, n_trials, tune_name, strategy, sampler_name)
            return None

        if not shared:  # one command per tune name at a time (workers of a shared study share the name)
            held.enter_context(naming.claim_name(folder.parent, tune_name, "tune"))
            if folder.exists() and not (resume or reset):
                raise ResumeError(f"a tune named {tune_name!r} exists in {folder}; pass --resume to finish it or "
                                  f"--reset to delete it and start over")
        naming.announce("tune", tune_name)
        storage_url = cfg.tune.storage or default_storage(folder)
        if reset and folder.exists():
            if shared:
                with contextlib.suppress(Exception):
                    optuna.delete_study(study_name=tune_name, storage=open_storage(storage_url))
            shutil.rmtree(folder)
        storage = open_storage(storage_url) if shared else None
        folder.mkdir(parents=True, exist_ok=True)
        if storage is None:
            storage = open_storage(storage_url)
        atomic_write_text(folder / "config.yaml", dump_yaml(cfg.replace(name=tune_name)))

        study, created = _create_or_load(optuna, tune_name, storage, sampler, pruner, directions, storage_url)
        if not created and not shared:
            # A seeded sampler built again would restart its stream and propose the same points again.
            study.sampler = make_sampler(sampler_name, seed=continued_seed(seed, len(study.trials)), space=space,
                                         n_objectives=len(directions))
        _check_space_unchanged(study, space, folder, created)
        if created and points is not None:
            for point in points:
                study.enqueue_trial(space.to_trial_params(point), user_attrs={"grid": True})
        if created:
            for values, source in warm_points[:n_trials]:
                study.enqueue_trial(space.to_trial_params(values), user_attrs={records.WARM_START_ATTR: source},
                                    skip_if_exists=False)
        worker = worker_identity(cfg) if shared else None
        grace = float(cfg.tune.heartbeat_grace)
        requeued = (_requeue_stale(study, space, all_running=not shared, grace=grace, worker=worker)
                    if (resume or shared) else [])
        if requeued:
            log.info("re-queued trials left running by a crash: %s", requeued)

        per_session_parallel = strategy == "cv-parallel"
        tune_parallel = strategy == "tune-parallel"
        pinned = bool(executor.pinned)
        reporter = TuneProgress(tune_name, n_trials, enabled=progress, directions=directions,
                                 best_trial=_best_trial, refresh_every=HEARTBEAT_EVERY)
        reporter.refresh(study)
        counts = _Counts(study, shared)
        best_watch = _BestWatch(directions)
        table = _TuneTable(folder, study)
        if resume or shared:
            table.repair()
            table.compact()
        last_stale_check = time.monotonic()
        in_flight: dict[int, Any] = {}  # cv session id -> optuna trial
        recorders: dict[int, records.TrialRecorder] = {}  # cv session id -> what it reports to Optuna
        budget = records.Budget(study, cfg.tune.timeout, cfg.tune.max_runs)
        lock = threading.Lock()

        failures = {"consecutive": 0, "errors": []}
        duplicates = {"in_a_row": 0}

        def ask() -> Optional[CrossValidation]:
            with lock:
                if failures["consecutive"] >= MAX_CONSECUTIVE_FAILURES:
                    return None
                nonlocal last_stale_check
                if shared and time.monotonic() - last_stale_check >= min(HEARTBEAT_EVERY, grace / 4):
                    last_stale_check = time.monotonic()  # a trial goes stale in `grace`: no need to look often
                    requeued_now = _requeue_stale(study, space, all_running=False, grace=grace, worker=worker,
                                                  mine=set(heartbeat.trial_ids))
                    if requeued_now:
                        log.info("re-queued trials whose worker stopped beating: %s", requeued_now)
                while True:
                    finished = counts.finished()
                    if finished >= n_trials:
                        return None
                    if budget.exhausted(r.session for r in recorders.values()):
                        return None
                    live = counts.live()
                    if finished + live >= n_trials or (points is not None and not counts.waiting()):
                        if in_flight or not shared or live == 0:
                            return None  # our own trials end this tune (or the grid has nothing left)
                        # Trials of other workers are running: wait until they finish, or until one goes
                        # stale and is queued again for us, instead of leaving with the study short.
                        _wait_for_others(study, space, n_trials, grace, worker)
                        continue
                    exhausted = _space_exhausted(study, space, points is not None, duplicates["in_a_row"])
                    if exhausted:
                        log.warning("%s; the tune stops with %d finished trials", exhausted, finished)
                        return None
                    trial = study.ask()
                    counts.asked()
                    if shared and _overflow(study, trial, n_trials):
                        trial.set_user_attr("overflow", True)  # asked past n_trials by a racing worker
                        study.tell(trial, state=optuna.trial.TrialState.FAIL)
                        return None
                    values = space.suggest(trial)
                    twin = None if points is not None else _finished_twin(study, trial)
                    if twin is not None:  # never train a point that was already evaluated
                        trial.set_user_attr("duplicate_of", twin)
                        study.tell(trial, state=optuna.trial.TrialState.FAIL)
                        counts.told("fail")
                        duplicates["in_a_row"] += 1
                        continue
                    duplicates["in_a_row"] = 0
                    heartbeat.add(trial._trial_id)
                    if worker is not None:
                        study._storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker)
                    break
                trial.set_user_attr(records.CONFIG_VALUES_ATTR, values)
                cv_index = int(trial.user_attrs.get(CV_INDEX_ATTR, trial.number))
                if CV_INDEX_ATTR not in trial.user_attrs:
                    trial.set_user_attr(CV_INDEX_ATTR, cv_index)
                cv_name = naming.cv_name(tune_name, cv_index)
                trial_cfg = apply(cfg, values)
                extra = {"tune_name": tune_name, "trial": trial.number, "trial_state": "running", **values}
                session = CrossValidation(trial_cfg, cv_name, folder / cv_name, resume=True,
                                          tracking={"group": tune_name, "job_type": cv_name,
                                                    "config": {"trial": trial.number, **values}},
                                          extra_columns=extra)
                session.trial = trial  # type: ignore[attr-defined]
                session.values = values  # type: ignore[attr-defined]
                in_flight[id(session)] = trial
                recorder = records.TrialRecorder(trial, session, lambda row, s=session: _run_score(s, row),
                                                 report=not multi)
                recorder.adopt()
                recorders[id(session)] = recorder
                (folder / cv_name).mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(OSError):
                    atomic_write_text(folder / cv_name / "config.yaml", dump_yaml(trial_cfg.replace(name=cv_name)))
                reporter.started(cv_name, trial.number)
                return session

        def on_run_end(session: CrossValidation, run: Any, row: dict) -> None:
            recorders[id(session)].run_ended(run.index, row)
            budget.save()
            if multi or cfg.tune.pruner == "none" or row["status"] != "completed":
                return
            trial = session.trial  # type: ignore[attr-defined]
            if session.done:
                return
            if trial.should_prune():
                session.prune()
                log.info("%s pruned after %d runs", session.name, len(session.rows))

        def on_session_end(session: CrossValidation) -> None:
            trial = in_flight.pop(id(session))
            state = _tell(study, trial, session, cfg, directions, multi, recorders.pop(id(session)))
            if best_watch.may_change(state, session):
                records.record_best(study, _best_trial(study, directions), directions)
                best_watch.update(study)
            if state == "fail":
                failures["consecutive"] += 1
                failures["errors"].append(f"{session.name}: {session.failure_summary() or 'no finite score'}")
            else:
                failures["consecutive"] = 0
            counts.told(state)
            heartbeat.remove(trial._trial_id)
            table.add(session, trial, state)
            reporter.finished(study, session, trial, state, session.values)  # type: ignore[attr-defined]

    except BaseException:
        if own_executor and executor is not None:
            executor.shutdown()
        raise
    with _Heartbeat(study, every=min(HEARTBEAT_EVERY, grace / 4)) as heartbeat, reporter:
        try:
            drive(executor, ask, per_session=executor.n_slots if per_session_parallel else 1,
                  max_sessions=executor.n_slots if tune_parallel else 1, quiet=True,
                  pinned=pinned, on_run_end=on_run_end, on_session_end=on_session_end)
        finally:
            if own_executor:
                executor.shutdown()
            budget.save()
    table.compact()
    if budget.reason:
        log.info("tune %s stopped starting new cvs: %s", tune_name, budget.reason)
    if failures["consecutive"] >= MAX_CONSECUTIVE_FAILURES:
        raise RunFailedError(f"tune {tune_name!r} stopped after {MAX_CONSECUTIVE_FAILURES} trials in a row failed: "
                             + " | ".join(failures["errors"][-MAX_CONSECUTIVE_FAILURES:]))
    result = _result(tune_name, folder, study, space, directions)
    result.stopped_by = budget.reason
    if cfg.tune.retrain_and_test and result.best_trial is not None and _claim_retrain(study, folder, shared,
                                                                                        n_trials):
        result.retrain = _retrain(cfg, space, result, folder, tune_name)
    if progress:
        reporter.summary(result)
    return result


def _load_tune(folder: Path) -> tuple[Any, Optional[dict]]:
    """An earlier tune's Optuna study and its search-space fingerprint (for ``tune.warm_start``)."""
    import optuna
    import yaml

    old_cfg = yaml.safe_load((folder / "config.yaml").read_text()) or {}
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
        fd = os.open(folder / ".retrain.lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        log.info("another worker retrains the best parameters")
        return False
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    return True


def _wait_for_others(study: Any, space: Any, n_trials: int, grace: float, worker: Optional[str]) -> None:
    """Block while other workers run the last trials; return when one finished or one was re-queued.

    A worker of a shared study never ends while the study is short of ``n_trials`` and a trial is
    RUNNING: that trial's worker may be dead, and its trial is taken over once its heartbeat is
    ``grace`` seconds old.
    """
    from optuna.trial import TrialState

    poll = max(0.5, min(5.0, grace / 8))
    said = -1e9
    before = (_count_finished(study), _count_live(study))
    while True:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if time.monotonic() - said >= 60:
            said = time.monotonic()
            log.info("waiting for %d trial(s) that other workers run (%s): the study has %d of %d trials; a trial "
                     "whose worker stops beating for %.0f s (tune.heartbeat_grace) is taken over",
                     len(running), ", ".join(str(t.number) for t in running), before[0], n_trials, grace)
        time.sleep(poll)
        if _requeue_stale(study, space, all_running=False, grace=grace, worker=worker):
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


def _finished_twin(study: Any, trial: Any) -> Optional[int]:
    """The number of a finished trial with exactly ``trial``'s parameters (``None`` if there is none).

    A point that was queued on purpose (re-queued after a crash, warm start) is never a twin.
    """
    from optuna.trial import TrialState

    if not trial.params or "fixed_params" in study._storage.get_trial(trial._trial_id).system_attrs:
        return None
    for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
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
        values = [self.sign * t.values[0] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if not t.user_attrs.get(UNSTABLE_ATTR) and t.values and math.isfinite(t.values[0])]
        self.top = sorted(values, reverse=True)[:2]


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


def _run_score(session: CrossValidation, row: Mapping[str, Any]) -> Optional[float]:
    import pandas as pd

    from tunecv.scoring import score_runs

    try:
        value = score_runs(pd.DataFrame([row]), session.cfg.cv.scoring_metric, session.cfg.cv.multi_score_strategy)
    except Exception:
        return None
    return value if math.isfinite(value) else None


def _tell(study: Any, trial: Any, session: CrossValidation, cfg: Config, directions: list[str],
          multi: bool, recorder: records.TrialRecorder) -> str:
    from optuna.trial import TrialState

    result = session.result()
    state: Any
    if result.n_completed == 0:
        state, values = TrialState.FAIL, None
        trial.set_user_attr("error", session.failure_summary()[:1000])
    elif multi:
        values = [_objective_value(result.run_infos, m) for m in cfg.tune.objectives or []]
        state = TrialState.COMPLETE if all(math.isfinite(v) for v in values) else TrialState.FAIL
    else:
        values = [result.score]
        state = TrialState.PRUNED if session.pruned else TrialState.COMPLETE
        if not math.isfinite(result.score):
            state = TrialState.FAIL
    # everything is set before the tell: a finished trial cannot be changed. A pruned trial's value is its
    # last intermediate value, the cv score so far (see tunecv._trial_records).
    recorder.before_tell(result.score, result.score_is_unstable)
    if state in (TrialState.PRUNED, TrialState.FAIL):
        study.tell(trial, state=state)
    else:
        study.tell(trial, values if multi else values[0])
    session.extra_columns["trial_state"] = state.name.lower()
    session.write()
    return state.name.lower()


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
        for t in self.study.get_trials(deepcopy=False, states=done):
            cv_name = t.user_attrs.get("cv_name")
            if not cv_name or f"{_part_name(cv_name, t.number)}.parquet" in have:
                continue
            df = read_run_infos(self.folder / cv_name / RUN_INFOS)
            if len(df) and "trial" in df.columns and (df["trial"] == t.number).any():
                write_run_infos_part(self.folder, _part_name(cv_name, t.number), _with_trial_states(df, self.study))


def _part_name(cv_name: str, number: int) -> str:
    return f"{cv_name}.trial{number}"


def _with_trial_states(df: Any, study: Any, known: Optional[Mapping[int, str]] = None) -> Any:
    """``df`` with ``trial_state`` taken from the study for every row's trial (``known`` first)."""
    import pandas as pd

    if "trial" not in df.columns:
        return df
    states = dict(known or {})
    for number in {int(t) for t in df["trial"] if pd.notna(t)} - set(states):
        with contextlib.suppress(Exception):
            trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
            states[number] = study._storage.get_trial(trial_id).state.name.lower()
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
        best_params=space.params_from_trial(best.params) if best is not None else {},
        best_score=float(best.values[0]) if best is not None else float("nan"),
        best_trial=best.number if best is not None else None,
        run_infos=read_tune_table(folder), study=study, pareto_trials=pareto)


def _retrain(cfg: Config, space: Any, result: TuneResult, folder: Path, tune_name: str) -> Any:
    from tunecv.search_space import apply
    from tunecv.train import train

    best_cfg = apply(cfg, result.best_params)
    best_cfg = best_cfg.replace(**{"split.fold_method": "none", "fold": 0, "cv.n_folds": None})
    run_name = naming.retrain_name(tune_name)
    existing = naming.find_run_dirs(folder, run_name)
    run_dir = existing[-1] if existing else naming.run_dir(folder, run_name, naming.new_run_id())
    log.info("retraining the best parameters (trial %s) on all non-test data into %s", result.best_trial,
             run_dir)
    return train(best_cfg, name=run_name, run_dir=run_dir, resume=bool(existing),
                 tracking={"group": tune_name, "job_type": "retrain", "config": result.best_params})


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
