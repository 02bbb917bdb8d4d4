"""A callback added on the command line of both runs (the project's own ``fit`` and ``tunecv train``).

``--trainer.callbacks+=_probe.Probe`` (``_probe.PLProbe`` for projects built on the standalone
``pytorch_lightning`` package: jsonargparse only accepts a callback of the package the project's Trainer
comes from). At the start of training it writes a JSON snapshot of what the run was built from to the
path in the environment variable ``PROBE_OUT``: model class and hyperparameters, data module class and
hyperparameters, optimizer and its arguments, lr schedulers, callbacks and loggers (class and key
attributes), a few trainer settings and the seed. The projects' own files are never edited for it.
"""

from __future__ import annotations

import inspect
import json
import os
from typing import Any

import lightning.pytorch as L
import pytorch_lightning as pl

_ATTRS = ("monitor", "mode", "save_top_k", "patience", "min_delta", "logging_interval", "every_n_epochs",
          "check_finite", "strict", "filename", "save_last", "save_weights_only", "log_momentum", "max_depth",
          "data_update", "num_samples", "nrow")


def _simple(value: Any) -> bool:
    return isinstance(value, (int, float, bool, str, type(None)))


def _jsonable(value: Any) -> Any:
    if _simple(value):
        return value
    if isinstance(value, (list, tuple)) and all(_simple(v) for v in value):
        return list(value)
    if isinstance(value, dict) and all(isinstance(k, str) and _simple(v) for k, v in value.items()):
        return dict(value)
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def _name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _attrs(obj: Any, names: Any = None) -> dict[str, Any]:
    if names is None:
        names = [p for p in inspect.signature(type(obj).__init__).parameters if p not in ("self", "args", "kwargs")]
    return {n: _jsonable(getattr(obj, n)) for n in names if hasattr(obj, n)}


def _hparams(obj: Any) -> dict[str, Any]:
    # LightningCLI records its instantiator (_class_path, _instantiator) in the hparams: not the user's
    return {k: _jsonable(v) for k, v in dict(getattr(obj, "hparams", {})).items() if not k.startswith("_")}


def _logger_attrs(logger: Any) -> list:
    """What a logger was built with: the W&B run's init arguments (project, tags, mode, entity) for wandb."""
    init = getattr(logger, "_wandb_init", None)
    if isinstance(init, dict):
        return sorted((k, _jsonable(sorted(v) if k == "tags" and v else v)) for k, v in init.items()
                      if k in ("project", "tags", "mode", "entity", "name"))
    return []


def snapshot(trainer: Any, pl_module: Any) -> dict[str, Any]:
    opts = trainer.optimizers
    datamodule = getattr(trainer, "datamodule", None)
    return {
        "model": _name(pl_module),
        "model_hparams": _hparams(pl_module),
        "datamodule": _name(datamodule) if datamodule is not None else None,
        "datamodule_hparams": _hparams(datamodule) if datamodule is not None else {},
        "datamodule_attrs": _attrs(datamodule) if datamodule is not None else {},
        "optimizers": [(_name(o), {k: _jsonable(v) for k, v in o.defaults.items()}) for o in opts],
        "schedulers": [(_name(c.scheduler), c.monitor, c.interval, c.frequency) for c in trainer.lr_scheduler_configs],
        "callbacks": sorted([_name(cb), sorted(_attrs(cb, _ATTRS).items())] for cb in trainer.callbacks
                            if not isinstance(cb, (Probe, PLProbe))),
        "loggers": sorted([_name(lg), _logger_attrs(lg)] for lg in trainer.loggers),
        "trainer": {"trainer_class": _name(trainer), "max_epochs": trainer.max_epochs,
                    "precision": str(trainer.precision), "accumulate_grad_batches": trainer.accumulate_grad_batches,
                    "gradient_clip_val": trainer.gradient_clip_val,
                    "check_val_every_n_epoch": trainer.check_val_every_n_epoch},
        "seed": os.environ.get("PL_GLOBAL_SEED"),
    }


def _write(trainer: Any, pl_module: Any) -> None:
    path = os.environ.get("PROBE_OUT")
    if path:
        with open(path, "w") as f:
            json.dump(snapshot(trainer, pl_module), f, indent=1, sort_keys=True, default=str)


class Probe(L.Callback):
    """The probe for projects built on ``lightning.pytorch``."""

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        _write(trainer, pl_module)


class PLProbe(pl.Callback):
    """The probe for projects built on the standalone ``pytorch_lightning`` package."""

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        _write(trainer, pl_module)
