"""The Trainer of one run: its callbacks (tunecv's and the user's), its loggers (the user's with the run's identity,
then each tracker's), the ``trainer:`` arguments tunecv passes on, and a bare Trainer built first to check them."""

from __future__ import annotations

import dataclasses
import importlib
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from tunecv import tracking as trk
from tunecv.artifacts.files import CHECKPOINT_DIR
from tunecv.build import is_lightning_user_error
from tunecv.config import Config
from tunecv.errors import ConfigError
from tunecv.placement import DEVICE_KEYS

# -- callbacks ----------------------------------------------------------------------------------------------

def build_callbacks(cfg: Config, run_dir: Path, user_callbacks: Sequence[Any] = (), code_callbacks: Sequence[Any] = (),
                    package: str = "lightning.pytorch") -> tuple[list[Any], Any, Any]:
    """The run's callbacks: tunecv's (monitor checks, the metrics record, checkpointing, early stopping) and
    the user's instances, of any class.

    A ``ModelCheckpoint`` or ``EarlyStopping`` (a subclass too, of ``lightning.pytorch`` or ``pytorch_lightning``)
    among ``user_callbacks`` (``trainer.callbacks``) or ``code_callbacks`` (``train(callbacks=...)``) replaces
    tunecv's own, whatever ``checkpoint:`` / ``early_stopping:`` say: the first user ``ModelCheckpoint`` decides
    the run's best checkpoint and its monitor, and gets ``dirpath`` = the run's checkpoints folder and
    ``save_last`` where unset (``--resume`` continues from ``last.ckpt``). ``trainer.enable_checkpointing: false``
    means no checkpoint callback at all.

    Returns:
        ``(callbacks, checkpoint callback or None, the RunMetrics record)``.
    """
    # lazy: tunecv._callbacks imports lightning (heavy), which a caller reading run results never needs
    from tunecv._callbacks import for_package, is_early_stopping, is_model_checkpoint

    tc = for_package(package)
    user = [*user_callbacks, *code_callbacks]
    keys = [f"trainer.callbacks[{i}].init_args" for i in range(len(user_callbacks))] + [
        f"callbacks[{i}] ({type(cb).__name__})" for i, cb in enumerate(code_callbacks)]
    ckpt_dir = run_dir / CHECKPOINT_DIR
    checks: list[tuple[str, str]] = []  # (config key, metric) that must be logged
    default_metric, default_mode = cfg.monitor()
    user_ckpts = [cb for cb in user if is_model_checkpoint(cb)]
    checkpoint: Any = None
    own: list[Any] = []
    if not checkpointing_enabled(cfg):
        if user_ckpts:
            raise ConfigError("`trainer.enable_checkpointing` is false, but the callbacks hold a ModelCheckpoint "
                              f"({type(user_ckpts[0]).__name__}); drop one of them")
    elif user_ckpts:
        checkpoint = user_ckpts[0]
        for cb in user_ckpts:
            if cb.dirpath is None:
                cb.dirpath = str(ckpt_dir)  # next to the run's metrics, where --resume looks
            if not cb.save_last:
                cb.save_last = True  # --resume continues from last.ckpt
    else:
        ck = cfg.checkpoint
        if ck is not None and (ck.monitor or default_metric):
            monitor = ck.monitor or default_metric
            mode = ck.mode or (default_mode if monitor == default_metric else "min")
            checkpoint = tc.BestOrLastCheckpoint(
                explicit=ck.monitor is not None, dirpath=ckpt_dir, filename="best-epoch{epoch}-step{step}",
                auto_insert_metric_name=False, monitor=monitor, mode=mode, save_top_k=ck.save_top_k, save_last=True)
        else:
            checkpoint = tc.ModelCheckpoint(dirpath=ckpt_dir, filename="epoch{epoch}-step{step}",
                                            auto_insert_metric_name=False, save_top_k=1, save_last=True)
        own.append(checkpoint)
    es = cfg.early_stopping
    if es is not None and not any(is_early_stopping(cb) for cb in user):
        monitor = es.monitor or default_metric
        mode = es.mode or (default_mode if monitor == default_metric else "min")
        own.append(tc.EarlyStopping(monitor=monitor, mode=mode, patience=es.patience, min_delta=es.min_delta,
                                    check_finite=True))
        checks.append(("early_stopping.monitor", monitor))
    if isinstance(checkpoint, tc.BestOrLastCheckpoint) and checkpoint.explicit:
        checks.append(("checkpoint.monitor", checkpoint.monitor))
    for key, cb in zip(keys, user):
        if (is_model_checkpoint(cb) or is_early_stopping(cb)) and cb.monitor:
            checks.append((f"{key}.monitor", cb.monitor))
    sched = cfg.lr_scheduler
    if isinstance(sched, Mapping) and cfg.optimizer is not None and (sched.get("init_args") or {}).get("monitor"):
        checks.append(("lr_scheduler.init_args.monitor", sched["init_args"]["monitor"]))
    recorder = tc.RunMetrics()
    rng = [tc.ResumeRng()] if cfg.seed_everything is not False else []  # a resumed run goes on as it was
    return [*rng, tc.MonitorCheck(checks), recorder, *own, *user], checkpoint, recorder


def checkpointing_enabled(cfg: Config) -> bool:
    """``trainer.enable_checkpointing`` as the user set it (Lightning's default: on)."""
    return (cfg.trainer or {}).get("enable_checkpointing") is not False


# -- loggers ------------------------------------------------------------------------------------------------

def with_run_loggers(cfg: Config, run: Any) -> Config:
    """``cfg`` whose ``trainer.logger`` specs carry the run's identity (:func:`tunecv.tracking.run_logger_spec`),
    so that the loggers built from it afresh for this run share nothing with another run's."""
    specs = (cfg.trainer or {}).get("logger")
    if specs is False:
        raise ConfigError("`trainer.logger` cannot be false: tunecv always writes CSV metrics")
    if not isinstance(specs, (Mapping, list)):
        return cfg
    if isinstance(specs, Mapping):  # one logger stays one (a project's hooks may read trainer.logger.init_args)
        logger: Any = trk.run_logger_spec(specs, run)
    else:
        logger = [trk.run_logger_spec(spec, run) for spec in specs]
    return dataclasses.replace(cfg, trainer={**cfg.trainer, "logger": logger})


def run_loggers(run: Any, user_loggers: Sequence[Any], trackers: Sequence[Any],
                package: str = "lightning.pytorch") -> list[Any]:
    """The run's loggers: the user's first (each with the run's identity; ``trainer.logger`` is the user's
    first, as under the project's own CLI), those a tracker keeps (:meth:`tunecv.trackers.Tracker.select`),
    then each tracker's own, in the order of ``logging.trackers`` (tunecv's CSV logger, its wandb logger when
    a wandb project is set and the user has no WandbLogger: one W&B run per run)."""
    users: list[Any] = []
    for lg in user_loggers:
        users.append(trk.apply_run_identity(lg, run))  # built again with the run's identity
    for tracker in trackers:
        users = list(tracker.select(run, users))
    ours: list[Any] = []
    for tracker in trackers:
        ours += tracker.loggers(run, users, package)
    return users + ours


def package_of(model: Any) -> str:
    """``pytorch_lightning`` for a model of the standalone package, else ``lightning.pytorch``."""
    pl = sys.modules.get("pytorch_lightning")
    if pl is not None and isinstance(model, pl.LightningModule):
        return "pytorch_lightning"
    return "lightning.pytorch"


# -- Trainer arguments --------------------------------------------------------------------------------------

def trainer_kwargs(cfg: Config, *, quiet: bool = False, progress_bar: Optional[bool] = None) -> dict[str, Any]:
    """``trainer:`` arguments other than devices, callbacks and loggers (which tunecv sets itself)."""
    kwargs = {k: v for k, v in (cfg.trainer or {}).items()
              if k not in (*DEVICE_KEYS, "callbacks", "logger", "default_root_dir") and not (k in ("plugins", "profiler") and isinstance(v, (Mapping, list)))}
    if quiet:
        kwargs["enable_progress_bar"] = False
        kwargs.setdefault("enable_model_summary", False)
    elif progress_bar is not None:
        kwargs["enable_progress_bar"] = progress_bar
    kwargs.setdefault("log_every_n_steps", cfg.logging.log_every_n_steps)
    return kwargs


def trainer_error(exc: BaseException) -> Optional[ConfigError]:
    """Lightning's user errors about Trainer arguments as tunecv's one-line error (``None``: not one)."""
    if isinstance(exc, (TypeError, ValueError)) or is_lightning_user_error(exc):
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        return ConfigError(f"`trainer` (or accelerator/strategy/devices) is invalid: {first}")
    return None


def check_trainer(cfg: Config, device_kwargs: dict, package: str = "lightning.pytorch") -> None:
    """Build a bare Trainer of this run's arguments, so that Lightning's errors come before any folder."""
    trainer_cls = importlib.import_module(package).Trainer
    kwargs = {**trainer_kwargs(cfg, quiet=True), "enable_checkpointing": False}  # no callbacks here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            trainer_cls(**kwargs, **device_kwargs, logger=False, callbacks=[])
        except Exception as exc:
            error = trainer_error(exc)
            if error is None:
                raise
            raise error from None
