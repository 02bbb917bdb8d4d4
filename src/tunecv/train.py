"""The ``train`` level: one Lightning run with its own accelerator, strategy and devices.

``train`` never learns whether a cv or a tune called it: a caller passes down the run's resolved name
and folder (``run_dir``); called alone it places the run in ``{artifact_dir}/_runs/{run_name}-{run_id}``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

from tunecv import _chatter
from tunecv._run_folder import (
    checkpoint_problem,
    claim,
    distributed_job_key,
    global_rank,
    is_rank_zero,
    last_checkpoint,
    resolve_run_folder,
    resolve_standalone_dir,
    resumable_checkpoint,
)
from tunecv._run_trainer import (
    build_callbacks,
    check_trainer,
    checkpointing_enabled,
    package_of,
    run_loggers,
    trainer_error,
    with_run_loggers,
)
from tunecv._run_trainer import trainer_kwargs as run_trainer_kwargs
from tunecv.artifacts import run_info, workspace
from tunecv.artifacts.files import RUN_INFO_FILE
from tunecv.build import (
    as_config,
    attach_optimizers,
    build_objects,
    build_run,
    instantiate,
    is_lightning_user_error,
)
from tunecv.config import Config, dump_yaml
from tunecv.errors import ConfigError, TunecvError
from tunecv.placement import lightning_devices, trainer_device_kwargs
from tunecv.trackers import run_trackers
from tunecv.tracking import RunIdentity

# The run's folder, ranks and resume checkpoint (tunecv._run_folder) and its callbacks (tunecv._run_trainer) are
# public names of this module, as before they moved (and in the API reference).
__all__ = [
    "RUN_INFO_FILE",
    "TrainResult",
    "build_callbacks",
    "checkpoint_problem",
    "checkpointing_enabled",
    "distributed_job_key",
    "global_rank",
    "lightning_devices",
    "resolve_standalone_dir",
    "resumable_checkpoint",
    "train",
]

# Object construction lives in the config layer (tunecv.build); these names stay importable from here.
_BUILD_NAMES = (as_config, attach_optimizers, build_objects, instantiate)
# A run's devices are placed by tunecv.placement; these names stay importable from here.
_PLACEMENT_NAMES = (lightning_devices, trainer_device_kwargs)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What one training run left.

    Attributes:
        name: the run name.
        run_id: 8 characters ``[a-z0-9]``; also the wandb run id.
        run_dir: the run folder.
        metrics: every metric in ``trainer.callback_metrics`` (validation metrics of the best checkpoint,
            and test metrics when there is a test split).
        checkpoint: path of the best checkpoint (``None`` without checkpointing).
        last_checkpoint: path of the ``last`` checkpoint.
        fold: the fold trained.
        seed: the seed used.
        status: ``completed``, ``failed`` or ``pruned`` (stopped inside the run by a tune's pruner).
        error: the error message of a failed run.
        started_at: UTC start time.
        finished_at: UTC end time.
        duration: seconds.
    """

    name: str
    run_id: str
    run_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: Optional[str] = None
    last_checkpoint: Optional[str] = None
    fold: int = 0
    seed: int = 42
    status: str = "completed"
    error: Optional[str] = None
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    duration: float = 0.0
    pruned_at_epoch: Optional[int] = None  # in-run pruning (tunecv.pruning): the epochs done when pruned

    def to_row(self) -> dict[str, Any]:
        """The run as one ``run_infos`` row (level names are added by the caller)."""
        row = {
            "run_name": self.name, "run_id": self.run_id, "fold": self.fold, "seed": self.seed,
            "started_at": self.started_at, "finished_at": self.finished_at, "duration": self.duration,
            "checkpoint": self.checkpoint, "status": self.status, "error": self.error, **self.metrics,
        }
        if self.pruned_at_epoch is not None:
            row["pruned_at_epoch"] = self.pruned_at_epoch
        return row

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["run_dir"] = str(self.run_dir)
        for key in ("started_at", "finished_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainResult:
        kwargs = dict(data)
        kwargs["run_dir"] = Path(kwargs["run_dir"])
        for key in ("started_at", "finished_at"):
            if kwargs.get(key):
                kwargs[key] = datetime.fromisoformat(kwargs[key])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in kwargs.items() if k in known})


write_run_info = run_info.write_result  # the run's part of ``run_info.json`` (the executor's part is kept)


def read_result(run_dir: str | Path) -> Optional[TrainResult]:
    """The result a run folder recorded, or ``None`` when the run never finished."""
    data = run_info.read_run_info(run_dir)
    if not data:
        return None
    try:
        return TrainResult.from_json(data)
    except (TypeError, ValueError, KeyError):
        return None


def _to_float(value: Any) -> Optional[float]:
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError, RuntimeError):
        return None


def _metrics(source: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in source.items():
        number = _to_float(value)
        if number is not None:
            out[str(key)] = number
    return out


# -- train --------------------------------------------------------------------------------------------------

def train(
    config: Union[Config, Mapping, str, os.PathLike],
    *,
    name: Optional[str] = None,
    run_dir: Optional[Union[str, os.PathLike]] = None,
    resume: bool = False,
    reset: bool = False,
    callbacks: Sequence[Any] = (),
    tracking: Optional[Mapping[str, Any]] = None,
    progress_bar: Optional[bool] = None,
    quiet: bool = False,
) -> TrainResult:
    """Fit one model (then test it when the split holds out a test set).

    Args:
        config: a :class:`~tunecv.config.Config`, a mapping or a YAML path.
        name: the run name (default ``config.name``, else generated).
        run_dir: the folder ``{...}/{run_name}-{run_id}`` chosen by a caller (cv, tune); when given,
            ``name`` must be given too, and ``resume`` continues whatever that folder holds.
        resume: continue an interrupted run from its ``last`` checkpoint (a completed run is returned
            as it is).
        reset: delete the run's folder first and start over.
        callbacks: extra Lightning callbacks (a tune passes its pruning reporter here).
        tracking: extra wandb settings from the caller: ``group``, ``job_type``, ``tags``, ``config``.
        progress_bar: show Lightning's progress bar (default: the trainer config, else on).
        quiet: no model summary, no progress bar, fewer log lines (parallel workers).

    Returns:
        The run's :class:`TrainResult`.

    Raises:
        ConfigError: a bad key or value (raised before anything is written).
        ResumeError: ``--resume`` / ``--reset`` misuse.
    """
    with contextlib.ExitStack() as held:  # a run called alone keeps its name claimed until it ends
        return _train(config, name=name, run_dir=run_dir, resume=resume, reset=reset, callbacks=callbacks,
                      tracking=tracking, progress_bar=progress_bar, quiet=quiet, held=held)


def _train(config: Union[Config, Mapping, str, os.PathLike], *, name: Optional[str],
           run_dir: Optional[Union[str, os.PathLike]], resume: bool, reset: bool, callbacks: Sequence[Any],
           tracking: Optional[Mapping[str, Any]], progress_bar: Optional[bool], quiet: bool,
           held: contextlib.ExitStack) -> TrainResult:
    cfg = as_config(config)
    run_name, run_id, folder, existed, stale = resolve_run_folder(cfg, name, run_dir, resume=resume, reset=reset)
    if resume and existed:
        done = read_result(folder)
        if done is not None and done.status in ("completed", "pruned"):  # a pruned run is never restarted
            log.info("run %s is already %s; nothing to resume", run_name, done.status)
            return done

    import lightning as L  # lazy: lightning is heavy, and a finished run returned above never needs it

    _chatter.install()  # Lightning's device lines and tips stay out unless --verbose (TUNECV_VERBOSE=1)
    if cfg.seed_everything is not False:
        L.seed_everything(cfg.seed, workers=True, verbose=False)  # before the model exists: seeded weights
    identity = _run_identity(cfg, run_name, run_id, folder, tracking)
    # every config error surfaces here, before the folder exists; a cv's run (run_dir given) gets its fold
    built = build_run(with_run_loggers(cfg, identity), folds=run_dir is not None)
    model, data = built.model, built.data
    package = package_of(model)
    user_callbacks, user_loggers = built.callbacks, built.loggers
    trackers = run_trackers(cfg)  # logging.trackers: one of each per run
    callbacks_list, checkpoint_cb, recorder = build_callbacks(cfg, folder, user_callbacks, callbacks, package)
    device_kwargs = trainer_device_kwargs(cfg)
    check_trainer(cfg, device_kwargs, package)

    if run_dir is None and is_rank_zero():
        held.enter_context(claim(cfg, run_name, folder, resume=resume, reset=reset))
    workspace.discard(stale)
    existed = existed and folder.exists()
    if not resume and existed and run_dir is not None:
        workspace.discard([folder])  # a caller asked for a fresh run in a folder left by an older attempt
    workspace.snapshot(folder, f"# run_id: {run_id}\n" + dump_yaml(cfg.replace(name=run_name)))
    write_run_info(folder, None)

    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    # Processes that Lightning launches for this run (plain ddp re-runs the command) find the same folder.
    os.environ["TUNECV_RUN_ID"], os.environ["TUNECV_RUN_NAME"] = run_id, run_name
    try:
        result = _fit(cfg, identity, model, data, _RunObjects(callbacks_list, checkpoint_cb, recorder, user_loggers,
                                                              package, built.trainer, built, trackers), device_kwargs,
                      resume=resume and existed, progress_bar=progress_bar, quiet=quiet, started=started, t0=t0)
    except BaseException as exc:
        _record_failure(cfg, exc, run_name, run_id, folder, started, t0, trackers=trackers, run=identity)
        raise
    finally:
        os.environ.pop("TUNECV_RUN_ID", None)
        os.environ.pop("TUNECV_RUN_NAME", None)
    result = _mark_pruned(result, callbacks)  # in-run pruning (tunecv.pruning)
    if is_rank_zero():
        write_run_info(folder, result.to_json())
    return result


def _mark_pruned(result: TrainResult, callbacks: Sequence[Any]) -> TrainResult:
    """A run that a tune's in-run pruner stopped (a callback with ``pruned_at_epoch`` set) is ``pruned``."""
    epochs = [getattr(cb, "pruned_at_epoch", None) for cb in callbacks]
    epochs = [e for e in epochs if e is not None]
    if epochs and result.status == "completed":
        result = dataclasses.replace(result, status="pruned", pruned_at_epoch=int(epochs[0]))
    return result


def _record_failure(cfg: Config, exc: BaseException, run_name: str, run_id: str, folder: Path,
                    started: datetime, t0: float, *, trackers: Sequence[Any] = (), run: Any = None) -> None:
    """A run that raised: its trackers finish it (a W&B run is closed, so that the next run starts clean), and
    (unless stopped) it is written down as failed."""
    for tracker in trackers:
        tracker.finish(run, 1)
    if not isinstance(exc, (KeyboardInterrupt, SystemExit)) and is_rank_zero():
        failed = TrainResult(
            name=run_name, run_id=run_id, run_dir=folder, fold=cfg.fold, seed=cfg.seed, status="failed",
            error=f"{type(exc).__name__}: {exc}".strip()[:2000], started_at=started,
            finished_at=datetime.now(timezone.utc), duration=time.perf_counter() - t0,
            last_checkpoint=str(last_checkpoint(folder) or "") or None)
        with contextlib.suppress(OSError):
            write_run_info(folder, failed.to_json())


@dataclass
class _RunObjects:
    """What :func:`tunecv._run_trainer.build_callbacks` and :func:`tunecv.build.build_run` made for one run."""

    callbacks: list[Any]
    checkpoint: Any
    recorder: Any
    user_loggers: list[Any]
    package: str = "lightning.pytorch"
    trainer_args: dict = field(default_factory=dict)  # Trainer arguments built as objects (plugins, profiler)
    built: Any = None  # the BuiltRun: the project CLI's before_fit / after_fit hooks
    trackers: list[Any] = field(default_factory=list)  # the run's trackers (logging.trackers)


def _run_identity(cfg: Config, run_name: str, run_id: str, folder: Path,
                  tracking: Optional[Mapping[str, Any]]) -> Any:
    """The run's :class:`tunecv.tracking.RunIdentity`: group / job_type from the caller (a run alone: its own
    name, ``train``); tunecv's W&B settings when ``logging.wandb_project`` is set."""
    tracking = dict(tracking or {})
    defaults: dict[str, Any] = {}
    if cfg.logging.wandb_project:
        defaults = {"project": cfg.logging.wandb_project, "entity": cfg.logging.wandb_entity,
                    "config": {**cfg.to_dict(), **dict(tracking.get("config") or {})}, "tags": tracking.get("tags")}
    return RunIdentity(run_id=run_id, run_name=run_name, group=tracking.get("group", run_name),
                       job_type=tracking.get("job_type", "train"), run_dir=folder, wandb_defaults=defaults)


_said: set[str] = set()  # messages logged once per process


def _fit(cfg: Config, run: Any, model: Any, data: Any, objects: _RunObjects, device_kwargs: dict, *, resume: bool,
         progress_bar: Optional[bool], quiet: bool, started: datetime, t0: float) -> TrainResult:
    import lightning as L  # lazy: lightning is heavy (a caller reading run results never needs it)

    run_name, run_id, folder = run.run_name, run.run_id, run.run_dir
    if cfg.seed_everything is not False:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    loggers = run_loggers(run, objects.user_loggers, objects.trackers, objects.package)
    trainer_kwargs = {**run_trainer_kwargs(cfg, quiet=quiet, progress_bar=progress_bar), **objects.trainer_args}
    if os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and "plugins" not in trainer_kwargs:
        # submitit owns requeue (Checkpointable); Lightning's own SLURM requeue handler would fight it
        environments = importlib.import_module(f"{objects.package}.plugins.environments")
        trainer_kwargs["plugins"] = [environments.SLURMEnvironment(auto_requeue=False)]
    if not checkpointing_enabled(cfg) and "checkpointing" not in _said:
        _said.add("checkpointing")
        log.warning("trainer.enable_checkpointing is false: runs keep no checkpoint (no best checkpoint, no test "
                    "of one), and --resume starts an unfinished run again from scratch")

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*Experiment logs directory.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        try:
            trainer = importlib.import_module(objects.package).Trainer(
                **trainer_kwargs, **device_kwargs, logger=loggers, callbacks=objects.callbacks,
                default_root_dir=str(folder))
        except Exception as exc:
            error = trainer_error(exc)
            if error is None:
                raise
            raise error from None
        if objects.built is not None:
            objects.built.before_fit(trainer)  # the project CLI's hook, before its W&B run starts (as under fit)
        for tracker in objects.trackers:
            tracker.start(run, trainer, loggers)
        _fit_model(trainer, model, data, _fit_kwargs(cfg, folder, run_name, resume=resume))
        if objects.built is not None:
            objects.built.after_fit()
        if trainer.interrupted:
            raise KeyboardInterrupt(f"run {run_name} was interrupted")
        metrics, best = _run_metrics(trainer, objects.recorder, objects.checkpoint)
        test_error = _test_phase(trainer, model, data, best, metrics, run_name)
    for lg in loggers:
        with contextlib.suppress(Exception):
            lg.finalize("success")
    for tracker in objects.trackers:
        tracker.finish(run, 0)
    last = last_checkpoint(folder)
    return TrainResult(
        name=run_name, run_id=run_id, run_dir=folder, metrics=metrics, checkpoint=best,
        last_checkpoint=str(last) if last else None, fold=cfg.fold, seed=cfg.seed, status="completed",
        error=test_error, started_at=started, finished_at=datetime.now(timezone.utc), duration=time.perf_counter() - t0)


def _fit_kwargs(cfg: Config, folder: Path, run_name: str, *, resume: bool) -> dict[str, Any]:
    """``Trainer.fit``'s ``ckpt_path`` (the run's last checkpoint when it resumes) and ``weights_only``."""
    ckpt_path = cfg.ckpt_path  # LightningCLI's ckpt_path: start from that checkpoint
    if resume and not checkpointing_enabled(cfg):
        log.warning("run %s keeps no checkpoint (trainer.enable_checkpointing is false); it starts %s", run_name,
                    f"again from {ckpt_path}" if ckpt_path else "again from scratch")
    elif resume:
        start = resumable_checkpoint(folder)
        if start is not None:
            ckpt_path = str(start)
            log.info("resuming %s from %s", run_name, start)
        else:
            log.warning("run %s has no loadable checkpoint; it starts %s", run_name,
                        f"again from {ckpt_path}" if ckpt_path else "again from scratch")
    fit_kwargs: dict[str, Any] = {"ckpt_path": ckpt_path}
    if cfg.weights_only is not None:
        fit_kwargs["weights_only"] = cfg.weights_only
    return fit_kwargs


def _fit_model(trainer: Any, model: Any, data: Any, fit_kwargs: Mapping[str, Any]) -> None:
    """``trainer.fit``; Lightning's user errors before a single step become config errors."""
    try:
        trainer.fit(model, datamodule=data, **fit_kwargs)
    except TunecvError:
        raise
    except Exception as exc:
        # Lightning's user errors while the run starts (before a single step) are config errors
        if is_lightning_user_error(exc) and trainer.global_step == 0:
            first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
            raise ConfigError(f"the run cannot start: {first}") from None
        raise


def _run_metrics(trainer: Any, recorder: Any, checkpoint_cb: Any) -> tuple[dict[str, float], Optional[str]]:
    """The run's metrics and its best checkpoint's path.

    The metrics are those the run's own fit logged at its best checkpoint's epoch (the last epoch without a
    monitored best), from the :class:`~tunecv._callbacks.RunMetrics` record, never from
    ``trainer.callback_metrics`` after the fact (a user's callback may have run ``validate`` / ``test`` since).
    """
    best = (checkpoint_cb.best_model_path or None) if checkpoint_cb is not None else None
    metrics = recorder.metrics_of(checkpoint_cb) if recorder is not None else None
    if metrics is None:  # nothing recorded (no epoch ended): what the trainer holds
        metrics = _metrics(trainer.callback_metrics)
    return metrics, best


def _defines_test(data: Any) -> bool:
    from tunecv._callbacks import bases  # lazy: tunecv._callbacks imports lightning (heavy)

    base = next((b for b in bases("LightningDataModule") if isinstance(data, b)), bases("LightningDataModule")[0])
    return type(data).test_dataloader is not base.test_dataloader


def _test_phase(trainer: Any, model: Any, data: Any, best: Optional[str], metrics: dict[str, float],
                run_name: str) -> Optional[str]:
    """``Trainer.test`` when the split holds out a test set and the model has a ``test_step``.

    Its metrics go into ``metrics``. A finished run is never failed by its test phase alone: an error
    there is logged and returned (it becomes the run's ``error``, its status stays completed).
    """
    # lazy: tunecv.data and tunecv.fold_data import lightning (heavy), which a caller reading run results never needs
    from tunecv.data import SplitDataModule
    from tunecv.fold_data import FoldedBase  # lazy: lightning (see above)

    is_overridden = importlib.import_module(f"{package_of(model)}.utilities.model_helpers").is_overridden
    has_test = data.has_test if isinstance(data, (SplitDataModule, FoldedBase)) else _defines_test(data)
    if not has_test:
        return None
    if not is_overridden("test_step", model):
        log.info("run %s: no test phase: %s has no test_step", run_name, type(model).__name__)
        return None
    try:
        out = trainer.test(model, datamodule=data, ckpt_path=best, verbose=False)
    except Exception as exc:
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        message = f"test phase failed: {type(exc).__name__}: {first}".rstrip(": ")
        log.error("run %s: %s (the trained run is kept as completed)", run_name, message)
        return message
    for part in out:
        metrics.update(_metrics(part))
    return None
