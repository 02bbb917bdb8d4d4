"""The Optuna study of a tune and its storage: opening (with retries), create or load, heartbeats of running
trials, stale trials re-queued, the trial counts, workers sharing one study."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import threading
import time
from pathlib import Path
from typing import Any, Optional

from tunecv._io import atomic_write_json, read_json
from tunecv._storage_retry import call_with_retries, retrying
from tunecv.artifacts.files import SPACE_FILE, STORAGE_FILE
from tunecv.config import Config
from tunecv.errors import ConfigError, StorageError

log = logging.getLogger("tunecv.tune")

HEARTBEAT_ATTR = "tunecv:heartbeat"
WORKER_ATTR = "tunecv:worker"
CV_INDEX_ATTR = "cv_index"
UNSTABLE_ATTR = "score_is_unstable"
HEARTBEAT_EVERY = 20.0
STALE_AFTER = 120.0


def redact(url: str) -> str:
    """A storage URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def open_storage(url: str, known: bool = False) -> Any:
    """An Optuna storage for a URL: an RDB URL (``sqlite:///``, ``postgresql://``, ...) or
    ``journal:///path/to/file.log`` (a journal file on a shared disk).

    A database server that cannot be reached is said at once (a wrong URL, a server never started), unless
    the storage is ``known``: the tune's folder exists, so another worker or an earlier run of this tune has
    used it, and a refused connection means a restart. That opening is retried like every later call
    (``TUNECV_STORAGE_RETRY_S``)."""
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
                    def rdb(url: str = url) -> Any:
                        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})

                    return retrying(call_with_retries(rdb, "opening", redact(url)) if known else rdb(), redact(url))
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

    def batched(self) -> Any:
        """A block whose trial attr and intermediate-value writes are one storage transaction on an RDB
        storage (:mod:`tunecv._storage_retry`); a plain block on any other storage."""
        batch = getattr(self.storage, "batched_trial_writes", None)
        return batch() if batch is not None else contextlib.nullcontext()

    def fail(self, trial_id: int) -> None:
        """Mark a RUNNING trial FAIL (raises when it is finished already, e.g. by another worker)."""
        from optuna.trial import TrialState

        self.storage.set_trial_state_values(trial_id, TrialState.FAIL)


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


def _n_trials(study: Any, *states: Any) -> int:
    """How many trials are in ``states`` (the trials are not copied)."""
    return len(study.get_trials(deepcopy=False, states=tuple(states)))


def _count_finished(study: Any) -> int:
    from optuna.trial import TrialState

    return _n_trials(study, TrialState.COMPLETE, TrialState.PRUNED)


def _count_live(study: Any) -> int:
    from optuna.trial import TrialState

    return _n_trials(study, TrialState.RUNNING)


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


def _overflow(study: Any, trial: Any, n_trials: int) -> bool:
    """Several workers may ask at once; the trials past ``n_trials`` (by number) give way.

    Only workers sharing a study can overflow (a lone driver asks under its lock after counting)."""
    from optuna.trial import TrialState

    alive = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                   TrialState.RUNNING))
             if t.number < trial.number]
    return len(alive) >= n_trials


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
