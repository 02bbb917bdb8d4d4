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
from collections.abc import Mapping
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


class _ResumeRng:
    """The random generators' states travel in the run's checkpoints, so that a resumed run is the run it
    replaces (on CPU with a fixed seed: the same metrics and weights, exactly).

    A run resumed from ``last.ckpt`` seeds again (``seed_everything``) and builds its train loader again,
    whose generator would replay the first epoch's order and whose dropout masks would come from the seed's
    stream. Each checkpoint therefore holds, as they were when it was written (at the end of an epoch):
    Python's ``random``, NumPy's and torch's CPU generators (CUDA's where CUDA is initialised) and the
    generators of the train loaders (the loader's, its sampler's). The first resumed epoch puts them back in
    ``on_train_epoch_start`` (after Lightning's restore, after its sanity check, which runs in
    ``isolate_rng`` anyway), then creates the train loader's iterator again, as an uninterrupted run does at
    every epoch start: the iterator Lightning created before (it draws a base seed from the loader's generator
    when it is made, and a ``RandomSampler`` without a generator draws its seed from torch's) saw the
    generators of the fresh start, not the restored ones.

    A checkpoint written in the middle of an epoch (``every_n_train_steps``) gets the generators back when
    training starts again; Lightning then replays the loader from its start, which is not exact.
    """

    def __init__(self) -> None:
        self._pending: Optional[dict[str, Any]] = None  # the states of the checkpoint resumed from
        self._trainer: Any = None

    def state_dict(self) -> dict[str, Any]:
        import random

        import numpy as np
        import torch

        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        # plain types and tensors only: a checkpoint must load with torch.load(weights_only=True)
        state: dict[str, Any] = {
            "python": random.getstate(), "torch": torch.get_rng_state(),
            "numpy": [str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
            "loaders": [g.get_state() for g in _loader_generators(self._trainer)]}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = dict(state_dict) if state_dict else None

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._trainer = trainer  # state_dict() is called without it

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self._pending is not None and getattr(trainer.fit_loop, "restarted_mid_epoch", False):
            self._restore(trainer, again=False)  # no on_train_epoch_start for the resumed epoch

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self._pending is not None:
            self._restore(trainer, again=True)

    def _restore(self, trainer: Any, *, again: bool) -> None:
        import random

        import numpy as np
        import torch

        state, self._pending = self._pending or {}, None
        if "python" in state:
            random.setstate(_as_tuples(state["python"]))
        if "numpy" in state:
            kind, keys, pos, has_gauss, gauss = state["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
        if "torch" in state:
            torch.set_rng_state(state["torch"].cpu())
        cuda = state.get("cuda")
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([c.cpu() for c in cuda])
        generators, saved = _loader_generators(trainer), state.get("loaders") or []
        if len(generators) == len(saved):
            for generator, value in zip(generators, saved):
                generator.set_state(value.cpu())
        elif saved:
            log.warning("the train loaders' generators differ from the checkpoint's; their order is not restored")
        fetcher = getattr(trainer.fit_loop, "_data_fetcher", None)
        if again and fetcher is not None and getattr(fetcher, "combined_loader", None) is not None:
            iter(fetcher)  # the epoch's iterator, made from the restored generators (as at every epoch start)


def _train_loaders(trainer: Any) -> list[Any]:
    combined = getattr(getattr(trainer, "fit_loop", None), "_combined_loader", None)
    if combined is not None:
        return list(combined.flattened)
    loaders = getattr(trainer, "train_dataloader", None)
    if loaders is None:
        return []
    if isinstance(loaders, Mapping):
        return list(loaders.values())
    return list(loaders) if isinstance(loaders, (list, tuple)) else [loaders]


def _loader_generators(trainer: Any) -> list[Any]:
    """The ``torch.Generator`` objects of the train loaders (the loader's, its sampler's), each once."""
    import torch

    if trainer is None:
        return []
    found: list[Any] = []
    for loader in _train_loaders(trainer):
        batch_sampler = getattr(loader, "batch_sampler", None)
        for owner in (loader, getattr(loader, "sampler", None), batch_sampler, getattr(batch_sampler, "sampler", None)):
            generator = getattr(owner, "generator", None)
            if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
                found.append(generator)
    return found


def _as_tuples(value: Any) -> Any:
    """``random.setstate`` wants tuples; a checkpoint may give back lists."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value


def _make(package: Any) -> types.SimpleNamespace:
    callbacks = package.callbacks
    ns = types.SimpleNamespace(
        package=package.__name__, Callback=package.Callback, ModelCheckpoint=callbacks.ModelCheckpoint,
        EarlyStopping=callbacks.EarlyStopping, Logger=package.loggers.Logger,
        LightningDataModule=package.LightningDataModule)
    ns.MonitorCheck = type("MonitorCheck", (_MonitorCheck, package.Callback), {"__module__": __name__})
    ns.RunMetrics = type("RunMetrics", (_RunMetrics, package.Callback), {"__module__": __name__})
    ns.ResumeRng = type("ResumeRng", (_ResumeRng, package.Callback), {"__module__": __name__})
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


class ResumeRng(_ResumeRng, L.Callback):
    __doc__ = _ResumeRng.__doc__


LIGHTNING.MonitorCheck, LIGHTNING.RunMetrics, LIGHTNING.BestOrLastCheckpoint = MonitorCheck, RunMetrics, BestOrLastCheckpoint
LIGHTNING.ResumeRng = ResumeRng


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
