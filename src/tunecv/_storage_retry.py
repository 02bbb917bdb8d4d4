"""Storage calls that survive a database restart: transient errors are retried with backoff, for a bounded
time, and said in one line when the retries give up.

Optuna's ``RDBStorage`` opens a session per call; with SQLAlchemy's ``pool_pre_ping`` (set by
:func:`tunecv.tune.open_storage`) a connection the server dropped is replaced when it is next checked out,
but a call made while the server is down (restarting, failing over) or while SQLite is locked raises.
:func:`retrying` wraps a storage so that each call of Optuna's storage API is tried again on such an
error until it succeeds or ``budget`` seconds have passed since the first failure.

The proxy also batches a trial's writes: inside ``with storage.batched_trial_writes():`` the trial user and
system attrs and intermediate values set through it (``Trial.set_user_attr``, ``Trial.report``: Optuna's
``Trial`` keeps its own copy up to date as always) are held and written when the block ends, on an
``RDBStorage`` as one transaction (one commit, one fsync of a SQLite file, instead of one per value), else
call by call. The rows are those the separate calls would have written, so ``optuna.load_study`` reads the
same trial.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Optional

from tunecv.errors import StorageError

log = logging.getLogger("tunecv.tune")

RETRY_ENV = "TUNECV_STORAGE_RETRY_S"  # until a config key (tune.storage_retry_timeout) exists
DEFAULT_BUDGET_S = 120.0
_TRANSIENT_TEXT = (
    "database is locked", "server closed the connection", "connection refused", "could not connect",
    "the database system is starting up", "the database system is shutting down", "terminating connection",
    "connection is closed", "connection already closed", "consuming input failed", "ssl syscall",
    "connection reset", "broken pipe", "no connection to the server", "server has gone away",
    "lost connection", "timeout expired", "the database system is in recovery mode", "connection timed out",
    "not yet accepting connections", "closed unexpectedly", "could not receive data from server",
    "could not send data to server",
)


def budget_s() -> float:
    """How long a storage call is retried (``TUNECV_STORAGE_RETRY_S``, default 120 s; 0 turns retries off)."""
    try:
        return max(0.0, float(os.environ.get(RETRY_ENV, DEFAULT_BUDGET_S)))
    except ValueError:
        return DEFAULT_BUDGET_S


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error behind it) says the database went away or is locked for a moment."""
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "connection_invalidated", False):
            return True
        text = str(current).lower()
        if any(s in text for s in _TRANSIENT_TEXT):
            return True
        current = current.__cause__ or current.__context__
    return False


def first_line(exc: BaseException) -> str:
    for e in (exc, exc.__cause__, exc.__context__):
        if e is not None and str(e).strip() and "An exception is raised during the commit" not in str(e):
            return f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
    return type(exc).__name__


def call_with_retries(fn: Callable[[], Any], what: str, where: str, budget: Optional[float] = None) -> Any:
    """``fn()``, tried again on transient errors with exponential backoff (0.2 s doubling to 5 s, jittered)
    for up to ``budget`` seconds; then :class:`StorageError`, one line naming ``where`` and the last error."""
    budget = budget_s() if budget is None else budget
    started: Optional[float] = None
    delay = 0.2
    while True:
        try:
            result = fn()
        except Exception as exc:
            if started is not None and _done_before(exc, what):
                return True  # the attempt the connection was lost in had written it
            if not is_transient(exc):
                raise
            now = time.monotonic()
            if started is None:
                started = now
                log.warning("the storage %s failed (%s) in %s; retrying for up to %.0f s", where, first_line(exc),
                            what, budget)
            if now - started >= budget:
                message = (f"the storage {where} could not be reached for {budget:.0f} s ({first_line(exc)}, in "
                           f"{what}); giving up: once it is back, finish with --resume (or set {RETRY_ENV} to "
                           f"wait longer)")
                log.error("%s", message)
                raise StorageError(message) from exc
            time.sleep(min(delay, max(0.0, started + budget - now)) * (0.5 + random.random() / 2))
            delay = min(delay * 2, 5.0)
            continue
        if started is not None:
            log.info("the storage %s is back after %.1f s", where, time.monotonic() - started)
        return result


def _done_before(exc: BaseException, what: str) -> bool:
    """Whether a retried trial-state write failed only because its first attempt had committed."""
    import optuna

    return what == "set_trial_state_values" and isinstance(exc, optuna.exceptions.UpdateFinishedTrialError)


_CLASS: Any = None


def retrying(storage: Any, where: str) -> Any:
    """``storage`` (an Optuna storage) behind a proxy whose every storage-API call is retried
    (:func:`call_with_retries`); an ``RDBStorage`` gets Optuna's own cache in front of it first, as
    ``optuna.create_study`` would give it."""
    global _CLASS
    import optuna

    if isinstance(storage, optuna.storages.RDBStorage):
        try:
            from optuna.storages._cached_storage import _CachedStorage

            storage = _CachedStorage(storage)
        except ImportError:  # pragma: no cover - a future Optuna without it: no cache
            pass
    if _CLASS is None:
        _CLASS = _make_class(optuna.storages.BaseStorage)
    return _CLASS(storage, where)


# what a batch holds: (kind, trial_id, key or step) -> value, in the order first set
_BATCHED = {"set_trial_user_attr": "user", "set_trial_system_attr": "system",
            "set_trial_intermediate_value": "value"}


def _rdb_behind(storage: Any) -> Any:
    """The ``RDBStorage`` a storage is or wraps (Optuna's ``_CachedStorage`` keeps it as ``_backend``; read
    only), else ``None``."""
    import optuna

    storage = getattr(storage, "_backend", storage)
    return storage if isinstance(storage, optuna.storages.RDBStorage) else None


def _one_transaction(rdb: Any, writes: dict[tuple[str, int, Any], Any]) -> Optional[Callable[[], None]]:
    """A function writing ``writes`` into ``rdb`` in one session and one commit, through ``RDBStorage``'s own
    per-row writers (the ones its public setters call); ``None`` when this Optuna lacks them.

    Private API of Optuna: it has no public call that sets several attrs or values of a trial at once; a bulk
    ``set_trial_user_attrs`` was proposed upstream (optuna/optuna#5665, closed unmerged) and until it exists
    the per-row writers are the only way to one commit. Only called here, never set."""
    try:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session
    except ImportError:  # pragma: no cover - an Optuna whose RDB internals moved: separate calls
        return None
    set_attr = getattr(rdb, "_set_trial_attr_without_commit", None)
    set_value = getattr(rdb, "_set_trial_intermediate_value_without_commit", None)
    if set_attr is None or set_value is None:  # pragma: no cover - as above
        return None
    models_of = {"user": models.TrialUserAttributeModel, "system": models.TrialSystemAttributeModel}

    def write() -> None:
        with _create_scoped_session(rdb.scoped_session, True) as session:
            for (kind, trial_id, key), value in writes.items():
                if kind == "value":
                    set_value(session, trial_id, key, value)
                else:
                    set_attr(session, models_of[kind], trial_id, key, value)

    return write


def _flush(inner: Any, where: str, writes: dict[tuple[str, int, Any], Any]) -> None:
    """Write a batch: one transaction on an RDB storage, else the separate calls (each retried)."""
    rdb = _rdb_behind(inner)
    write = _one_transaction(rdb, writes) if rdb is not None and writes else None
    if write is not None:
        call_with_retries(write, "set_trial_user_attr", where)
        return
    method = {kind: name for name, kind in _BATCHED.items()}
    for (kind, trial_id, key), value in writes.items():
        call_with_retries(functools.partial(getattr(inner, method[kind]), trial_id, key, value), method[kind], where)


def _make_class(base: type) -> type:
    def __init__(self: Any, inner: Any, where: str) -> None:
        self._inner, self._where = inner, where
        self._batch: Optional[dict[tuple[str, int, Any], Any]] = None
        self._batch_thread: Optional[int] = None

    def __getattr__(self: Any, name: str) -> Any:  # anything that is not the storage API
        return getattr(self.__dict__["_inner"], name)

    def wrap(name: str) -> Callable[..., Any]:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            if name in _BATCHED and self._batch is not None and self._batch_thread == threading.get_ident():
                trial_id, key, value = _batched_args(name, *args, **kwargs)
                self._batch[(_BATCHED[name], trial_id, key)] = value
                return None
            bound = getattr(self._inner, name)
            return call_with_retries(functools.partial(bound, *args, **kwargs), name, self._where)

        method.__name__ = name
        return method

    @contextmanager
    def batched_trial_writes(self: Any) -> Iterator[None]:
        """Hold this thread's trial attr and intermediate-value writes; write them when the block ends, also
        when it raises (what was set before the error is kept, as separate calls would have kept it; the
        block's error is the one raised). A block inside another one joins the outer batch."""
        if self._batch is not None:
            yield
            return
        writes: dict[tuple[str, int, Any], Any] = {}
        self._batch, self._batch_thread = writes, threading.get_ident()
        try:
            yield
        except BaseException:
            self._batch, self._batch_thread = None, None
            try:
                _flush(self._inner, self._where, writes)
            except Exception:
                log.warning("the storage %s: a trial's records before an error were not written", self._where,
                            exc_info=True)
            raise
        self._batch, self._batch_thread = None, None
        _flush(self._inner, self._where, writes)

    namespace: dict[str, Any] = {"__init__": __init__, "__getattr__": __getattr__,
                                 "batched_trial_writes": batched_trial_writes}
    for name in dir(base):
        if not name.startswith("_") and callable(getattr(base, name)):
            namespace[name] = wrap(name)
    return type("RetryingStorage", (base,), namespace)


def _batched_args(name: str, trial_id: int, key: Any = None, value: Any = None, **kwargs: Any) -> tuple[int, Any, Any]:
    """``(trial_id, key or step, value)`` of a batched setter's call, positional or by keyword."""
    if name == "set_trial_intermediate_value":
        key = kwargs.get("step", key)
        value = kwargs.get("intermediate_value", value)
    else:
        key, value = kwargs.get("key", key), kwargs.get("value", value)
    return trial_id, key, value
