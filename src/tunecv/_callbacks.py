"""Lightning callbacks of a run: monitor checks, the default checkpoint, and the record of the run's metrics.

Imported when a run is built (it imports lightning). Each callback exists for ``lightning.pytorch`` and, made
on demand by :func:`for_package`, for the standalone ``pytorch_lightning`` package (a Trainer of one package
does not take the callbacks of the other).
"""

from __future__ import annotations

import functools
import logging
import math
import types
from typing import Any, Optional

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import Logger

from tunecv.errors import ConfigError

log = logging.getLogger("tunecv.train")


def _validation_ran(trainer: Any) -> bool:
    return bool(sum(trainer.num_val_batches or [0]))


def _to_float(value: Any) -> Optional[float]:
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError, RuntimeError):
        return None


def as_floats(source: Any) -> dict[str, float]:
    """The numeric entries of a metrics mapping (tensors included) as floats."""
    out = {}
    for key, value in dict(source or {}).items():
        number = _to_float(value)
        if number is not None:
            out[str(key)] = number
    return out


class _MonitorCheck:
    """After the first validation epoch: every monitor the config names must have been logged.

    Args:
        checks: ``(config key, metric)`` pairs; the key is named in the error.
    """

    def __init__(self, checks: list[tuple[str, str]]) -> None:
        self.checks = list(checks)
        self.done = False

    def _check(self, trainer: Any) -> None:
        if self.done or trainer.sanity_checking:
            return
        self.done = True
        logged = sorted(trainer.callback_metrics)
        for key, metric in self.checks:
            if metric not in trainer.callback_metrics:
                raise ConfigError(f"`{key}` is {metric!r}, but the model never logs it; logged metrics: "
                                  f"{', '.join(logged) or 'none'}")

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self._check(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not _validation_ran(trainer):  # no validation loop: check what training logged
            self._check(trainer)


class _BestOrLastCheckpoint:
    """``ModelCheckpoint`` on a monitor; a default monitor the model never logs falls back to the last epoch.

    Args:
        explicit: the config named the monitor (then :class:`MonitorCheck` reports a missing one).
        **kwargs: ``ModelCheckpoint`` arguments.
    """

    def __init__(self, *, explicit: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.explicit = explicit
        self._resolved = explicit

    def _resolve(self, trainer: Any) -> None:
        if self._resolved or trainer.sanity_checking:
            return
        self._resolved = True
        if self.monitor in trainer.callback_metrics:
            return
        log.warning("the model does not log %r (the first cv.scoring_metric); keeping the last epoch's "
                    "checkpoint, as Lightning does (set checkpoint.monitor to choose a metric)", self.monitor)
        self.monitor = None

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self._resolve(trainer)
        super().on_validation_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not _validation_ran(trainer):
            self._resolve(trainer)
        super().on_train_epoch_end(trainer, pl_module)


def _fitting(trainer: Any) -> bool:
    """The run's own fit is under way (not a ``validate`` / ``test`` a user's hook started, no sanity check)."""
    fn = getattr(getattr(trainer, "state", None), "fn", None)
    return str(getattr(fn, "value", fn)) == "fit" and not trainer.sanity_checking


class _RunMetrics:
    """Records the metrics of the run's own fit: one record per validation (and per training epoch).

    A record is what ``trainer.callback_metrics`` held when a validation of the fit ended, updated when its
    training epoch ended (the epoch's training metrics). Hooks of a ``validate`` or ``test`` that a user's
    callback starts inside the fit (``on_fit_end``, ``teardown``) are not recorded, nor sanity checks. The
    records travel in the run's checkpoints, so that a resumed run still knows the epochs before it.
    """

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []  # {"epoch", "step", "metrics"}

    def _record(self, trainer: Any, *, epoch_end: bool) -> None:
        if not _fitting(trainer):
            return
        metrics = as_floats(trainer.callback_metrics)
        last = self.records[-1] if self.records else None
        if epoch_end and last is not None and last["epoch"] == trainer.current_epoch:
            last["metrics"].update(metrics)  # the epoch's training metrics join its last validation
            last["step"] = trainer.global_step
            return
        self.records.append({"epoch": trainer.current_epoch, "step": trainer.global_step, "metrics": metrics})

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self._record(trainer, epoch_end=False)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._record(trainer, epoch_end=True)

    def state_dict(self) -> dict[str, Any]:
        return {"records": [dict(r, metrics=dict(r["metrics"])) for r in self.records]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.records = [dict(r, metrics=dict(r["metrics"])) for r in state_dict.get("records") or []]

    def metrics_of(self, checkpoint: Any) -> Optional[dict[str, float]]:
        """The metrics of the epoch of ``checkpoint``'s best model (its monitored score), else of the last
        record; ``None`` when nothing was recorded."""
        if not self.records:
            return None
        monitor = getattr(checkpoint, "monitor", None)
        score = _to_float(getattr(checkpoint, "best_model_score", None))
        if monitor and score is not None and getattr(checkpoint, "best_model_path", None):
            for record in self.records:  # the first epoch that reached the best score is the one kept
                value = record["metrics"].get(monitor)
                if value is not None and (value == score or math.isclose(value, score, rel_tol=1e-6)):
                    return dict(record["metrics"])
        return dict(self.records[-1]["metrics"])


def _make(package: Any) -> types.SimpleNamespace:
    callbacks = package.callbacks
    ns = types.SimpleNamespace(
        package=package.__name__, Callback=package.Callback, ModelCheckpoint=callbacks.ModelCheckpoint,
        EarlyStopping=callbacks.EarlyStopping, Logger=package.loggers.Logger,
        LightningDataModule=package.LightningDataModule)
    ns.MonitorCheck = type("MonitorCheck", (_MonitorCheck, package.Callback), {"__module__": __name__})
    ns.RunMetrics = type("RunMetrics", (_RunMetrics, package.Callback), {"__module__": __name__})
    ns.BestOrLastCheckpoint = type("BestOrLastCheckpoint", (_BestOrLastCheckpoint, callbacks.ModelCheckpoint),
                                   {"__module__": __name__})
    return ns


LIGHTNING = types.SimpleNamespace(package="lightning.pytorch", Callback=L.Callback, ModelCheckpoint=ModelCheckpoint,
                                  EarlyStopping=EarlyStopping, Logger=Logger, LightningDataModule=L.LightningDataModule)


class MonitorCheck(_MonitorCheck, L.Callback):
    __doc__ = _MonitorCheck.__doc__


class RunMetrics(_RunMetrics, L.Callback):
    __doc__ = _RunMetrics.__doc__


class BestOrLastCheckpoint(_BestOrLastCheckpoint, ModelCheckpoint):
    __doc__ = _BestOrLastCheckpoint.__doc__


LIGHTNING.MonitorCheck, LIGHTNING.RunMetrics, LIGHTNING.BestOrLastCheckpoint = MonitorCheck, RunMetrics, BestOrLastCheckpoint


@functools.cache
def for_package(name: str = "lightning.pytorch") -> types.SimpleNamespace:
    """tunecv's callbacks, and Lightning's ``Callback`` / ``ModelCheckpoint`` / ``EarlyStopping``, of one
    package: ``lightning.pytorch`` or ``pytorch_lightning``."""
    if name == "lightning.pytorch":
        return LIGHTNING
    import importlib

    return _make(importlib.import_module(name))


def bases(attr: str) -> tuple[type, ...]:
    """Lightning's class ``attr`` (``Callback``, ``ModelCheckpoint``, ``EarlyStopping``, ``Logger``) of
    ``lightning.pytorch``, and of ``pytorch_lightning`` once that was imported (by a user's class; it is never
    imported here: none of its objects can exist before)."""
    import sys

    out = [getattr(LIGHTNING, attr)]
    if "pytorch_lightning" in sys.modules:
        out.append(getattr(for_package("pytorch_lightning"), attr))
    return tuple(out)


def is_callback(obj: Any) -> bool:
    return isinstance(obj, bases("Callback"))


def is_model_checkpoint(obj: Any) -> bool:
    """A ``ModelCheckpoint`` (a subclass too) of ``lightning.pytorch`` or of ``pytorch_lightning``."""
    return isinstance(obj, bases("ModelCheckpoint"))


def is_early_stopping(obj: Any) -> bool:
    """An ``EarlyStopping`` (a subclass too) of ``lightning.pytorch`` or of ``pytorch_lightning``."""
    return isinstance(obj, bases("EarlyStopping"))
