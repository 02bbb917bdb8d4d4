"""Lightning callbacks for the monitors of a run (imported when a run is built: it imports lightning)."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from tunecv.errors import ConfigError

log = logging.getLogger("tunecv.train")


def _validation_ran(trainer: Any) -> bool:
    return bool(sum(trainer.num_val_batches or [0]))


class MonitorCheck(L.Callback):
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


class BestOrLastCheckpoint(ModelCheckpoint):
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
