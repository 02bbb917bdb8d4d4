"""Experiment tracking: Lightning loggers for a run (CSV always, wandb when a project is set).

wandb is imported only when ``logging.wandb_project`` is set. Each run gets id = ``run_id``,
name = ``run_name``, and the group / job_type its caller passes down (a tune groups by ``tune_name`` and
sets job_type = ``cv_name``); its files go to ``{run_dir}/wandb/``.

Runs that follow one another in one process stay apart: the ``WANDB_*`` variables that name a run
(``WANDB_RUN_ID``, ``WANDB_RUN_GROUP``, ...) are set aside while a run starts, the ``WANDB_*`` environment
is put back as it was when the run ends (whatever the run changed is undone), and a wandb run left open by
a failed run is closed before the next one starts.

wandb never blocks or kills a run: ``wandb.init`` is bounded by ``init_timeout`` (``WANDB_INIT_TIMEOUT``,
default 30 s); when the service cannot be reached the run logs offline with one warning (and the later
runs of the process go offline at once); when wandb cannot start at all the run goes on without it.
:func:`offline_runs` lists a run's offline wandb folders (each uploaded with ``wandb sync FOLDER``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Optional

from tunecv.artifacts.files import CSV_DIR, METRICS_FILE, WANDB_DIR

__all__ = ["CSV_DIR", "RunIdentity", "apply_run_identity", "csv_logger", "finish_wandb", "logger_kind",
           "offline_runs", "run_logger_spec", "start_wandb", "wandb_logger", "wandb_mode"]

log = logging.getLogger(__name__)

DEFAULT_INIT_TIMEOUT = 30.0

# Variables that name one run. tunecv passes all of these explicitly; set in the environment (by a user,
# a sweep agent or an earlier run) they would make every run of a tune claim the same identity.
_PER_RUN_VARS = ("WANDB_RUN_ID", "WANDB_RUN_GROUP", "WANDB_JOB_TYPE", "WANDB_NAME", "WANDB_RESUME",
                 "WANDB_RESUME_FROM", "WANDB_FORK_FROM", "WANDB_RUN_NAME")
# Process-wide variables wandb itself maintains: never restored.
_PROCESS_VARS = ("WANDB_SERVICE",)

# Per process: one warning per kind, and no second wait for a service already found unreachable.
_state: dict[str, Any] = {"online_failed": False, "warned": set(), "env_before_run": None}


def csv_logger(run_dir: str | Path, package: str = "lightning.pytorch") -> Any:
    """A CSVLogger writing ``{run_dir}/csv/metrics.csv`` (and ``hparams.yaml``).

    When the run is resumed, the metrics of the earlier attempt are kept as ``metrics.<k>.csv`` (Lightning's
    CSVLogger would otherwise overwrite them).
    """
    CSVLogger = importlib.import_module(f"{package}.loggers").CSVLogger

    folder = Path(run_dir) / CSV_DIR
    metrics = folder / METRICS_FILE
    if metrics.exists():
        k = 1
        while (folder / f"{metrics.stem}.{k}{metrics.suffix}").exists():
            k += 1
        metrics.rename(folder / f"{metrics.stem}.{k}{metrics.suffix}")
        for extra in folder.glob("hparams.yaml"):
            extra.unlink()
    return CSVLogger(save_dir=str(run_dir), name="", version=CSV_DIR)


def _has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    with contextlib.suppress(OSError):
        text = netrc.read_text()
        return "api.wandb.ai" in text or "wandb" in text
    return False


def wandb_mode() -> str:
    """``online``, ``offline`` or ``disabled``: ``WANDB_MODE`` if set, else online only with credentials."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode in ("offline", "disabled", "dryrun"):
        return "offline" if mode == "dryrun" else mode
    if mode == "online":
        return "online"
    return "online" if _has_credentials() else "offline"


def _warn_once(key: str, message: str, *args: Any) -> None:
    if key not in _state["warned"]:
        _state["warned"].add(key)
        log.warning(message, *args)


def _init_timeout(value: Optional[float]) -> float:
    if value is not None:
        return float(value)
    try:
        return float(os.environ.get("WANDB_INIT_TIMEOUT", DEFAULT_INIT_TIMEOUT))
    except ValueError:
        return DEFAULT_INIT_TIMEOUT


def _wandb_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("WANDB_") and k not in _PROCESS_VARS}


def _restore_env(before: Mapping[str, str]) -> None:
    """Undo whatever a run changed in ``WANDB_*`` (``WANDB_SERVICE`` excepted)."""
    for key in _wandb_env().keys() - before.keys():
        os.environ.pop(key, None)
    for key, value in before.items():
        os.environ[key] = value


def _prepare_run(wandb: Any) -> str:
    """Before a run's logger starts: close a run left open, clear per-run variables; the mode to start in."""
    if wandb.run is not None:  # left open by a run that failed: it must not swallow this one
        finish_wandb(exit_code=1)
    _state["env_before_run"] = _wandb_env()  # restored when the run ends
    for var in _PER_RUN_VARS:
        os.environ.pop(var, None)
    mode = wandb_mode()
    if mode == "offline" and os.environ.get("WANDB_MODE", "").strip().lower() not in ("offline", "dryrun"):
        _warn_once("credentials", "wandb: no credentials found (WANDB_API_KEY or `wandb login`); logging "
                   "offline into each run folder. Upload later with `wandb sync`.")
    if mode == "online" and _state["online_failed"]:
        mode = "offline"
    return mode


def wandb_logger(
    *,
    project: str,
    entity: Optional[str],
    run_id: str,
    run_name: str,
    group: Optional[str],
    job_type: Optional[str],
    save_dir: str | Path,
    config: Optional[Mapping[str, Any]] = None,
    tags: Optional[list[str]] = None,
    init_timeout: Optional[float] = None,
    package: str = "lightning.pytorch",
) -> Any:
    """A Lightning ``WandbLogger`` for one run, started now.

    The run resumes the wandb run with the same id when there is one (``resume="allow"``; wandb ignores
    this offline and starts a run with the same id, which ``wandb sync`` later appends). Files go to
    ``{save_dir}/wandb/``.

    Args:
        project: the wandb project.
        entity: the wandb entity (team or user); ``None`` for the default.
        run_id: the run id (tunecv's ``run_id``).
        run_name: the run's display name.
        group: the wandb group (``tune_name``, or ``cv_name`` without a tune).
        job_type: the wandb job type (``cv_name``).
        save_dir: the run folder.
        config: the run's config (the resolved tunecv config, plus a trial's hyperparameters).
        tags: wandb tags.
        init_timeout: seconds ``wandb.init`` may take (default ``WANDB_INIT_TIMEOUT``, else 30).
        package: ``lightning.pytorch`` or ``pytorch_lightning`` (the package of the run's Trainer).

    Returns:
        The logger, or ``None`` when wandb cannot start at all (the run then goes on without it, after one
        warning).
    """
    import wandb

    WandbLogger = importlib.import_module(f"{package}.loggers").WandbLogger
    mode = _prepare_run(wandb)
    timeout = _init_timeout(init_timeout)

    def make(mode_: str) -> Any:
        logger = WandbLogger(
            project=project, entity=entity, id=run_id, name=run_name, group=group, job_type=job_type,
            save_dir=str(save_dir), resume="allow", mode=mode_, tags=tags, settings=_settings(wandb, mode_, timeout),
            config=dict(config or {}),
        )
        return _started(logger)

    return _start_with_fallback(wandb, make, mode)


def _settings(wandb: Any, mode: str, timeout: float) -> Any:
    # offline, the wait is only for wandb's local service to start (slow on a loaded machine)
    wait = timeout if mode == "online" else max(timeout, DEFAULT_INIT_TIMEOUT)
    return wandb.Settings(init_timeout=wait, silent=True)


def _started(logger: Any) -> Any:
    # Lightning passes `anonymous=None`, which wandb >= 0.19 warns about on every process.
    init_kwargs = getattr(logger, "_wandb_init", None)
    if isinstance(init_kwargs, dict) and init_kwargs.get("anonymous") is None:
        init_kwargs.pop("anonymous", None)  # upstream: wandb/wandb#10909 Lightning passes `anonymous` unconditionally
    _ = logger.experiment  # start now, so that a network failure shows up here, not mid-fit
    return logger


def _start_with_fallback(wandb: Any, make: Callable[[str], Any], mode: str) -> Any:
    """``make(mode)`` (it builds and starts a logger); online failures fall back to offline, and a logger
    that cannot start at all is ``None`` (after one warning)."""
    if mode == "online":
        try:
            return make("online")
        except Exception as exc:  # CommError / UsageError / TimeoutError when the service is unreachable
            _state["online_failed"] = True
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            _warn_once("online", "wandb: cannot reach the service (%s%s); runs of this process log offline "
                       "into their folders. Upload later with `wandb sync`.", type(exc).__name__,
                       f": {first}" if first else "")
            _reset_service(wandb)  # the service still holds the half-started run id
            mode = "offline"
    try:
        return make(mode)
    except Exception as exc:
        _warn_once("start", "wandb: cannot start (%s: %s); this run goes on without wandb",
                   type(exc).__name__, exc)
        _reset_service(wandb)
        _restore_after_run()
        return None


def _reset_service(wandb: Any) -> None:
    """Drop a half-started run: finish it and shut the wandb service down (the next run starts a new one)."""
    with contextlib.suppress(Exception):
        wandb.finish(exit_code=1)
    with contextlib.suppress(Exception):
        wandb.teardown(exit_code=1)


def _restore_after_run() -> None:
    before = _state["env_before_run"]
    if before is not None:
        _restore_env(before)
        _state["env_before_run"] = None


def finish_wandb(exit_code: int = 0) -> None:
    """Close the current wandb run, if any, and undo the ``WANDB_*`` changes the run made.

    A no-op when wandb was never imported. Call it when a run ends, also when it failed
    (``exit_code=1``), so that the next run in this process starts clean.
    """
    import sys

    if "wandb" not in sys.modules:
        return
    import wandb

    if wandb.run is not None:
        with contextlib.suppress(Exception):
            wandb.finish(exit_code=exit_code)
    _restore_after_run()


# -- a user's own loggers (trainer.logger) ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RunIdentity:
    """Who one run is, for every logger of the run (tunecv's naming scheme).

    Attributes:
        run_id: the run id (also the W&B run id).
        run_name: the run name.
        group: the caller's group: ``tune_name``, or ``cv_name`` without a tune (a run alone: its name).
        job_type: ``cv_name`` (a run alone: ``train``).
        run_dir: the run folder (W&B files go to it unless the logger names another folder).
        wandb_defaults: W&B settings tunecv's own tracking would use (``project``, ``entity``, ``config``,
            ``tags``); applied to a user's WandbLogger where the user set none (``config`` is merged under the
            user's, ``tags`` are added). Empty when ``logging.wandb_project`` is not set.
    """

    run_id: str
    run_name: str
    group: str
    job_type: str
    run_dir: Path
    wandb_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)


_LOGGER_KINDS = {"WandbLogger": "wandb", "TensorBoardLogger": "tensorboard", "CSVLogger": "csv",
                 "MLFlowLogger": "mlflow"}
_LOGGER_PACKAGES = ("lightning.pytorch.loggers", "pytorch_lightning.loggers", "lightning.fabric.loggers")
_DEFAULT_NAME = "lightning_logs"  # the `name` (CSV, TensorBoard) Lightning uses when none is given


def logger_kind(cls_or_path: Any) -> Optional[str]:
    """``wandb``, ``tensorboard``, ``csv`` or ``mlflow`` for Lightning's loggers of those names (either
    package, a subclass too, a short class name such as ``WandbLogger``); ``None`` for any other logger."""
    if isinstance(cls_or_path, str):
        module, _, name = cls_or_path.rpartition(".")
        if not module or module.startswith(_LOGGER_PACKAGES):
            return _LOGGER_KINDS.get(name)
        try:
            cls_or_path = getattr(importlib.import_module(module), name)
        except Exception:  # not importable here: the builder reports it
            return None
    cls = cls_or_path if isinstance(cls_or_path, type) else type(cls_or_path)
    for package in ("lightning.pytorch.loggers", "pytorch_lightning.loggers"):
        module = sys.modules.get(package.split(".")[0]) and _loaded(package)
        for name, kind in _LOGGER_KINDS.items():
            known = getattr(module, name, None) if module is not None else None
            if isinstance(known, type) and issubclass(cls, known):
                return kind
    return None


def _loaded(package: str) -> Any:
    """``package``, imported when its top-level package already is (a logger of it can exist only then)."""
    try:
        return importlib.import_module(package)
    except Exception:
        return None


def _unset(value: Any, *defaults: Any) -> bool:
    return value is None or value == "" or any(value == d for d in defaults)


def _merged_tags(user: Any, ours: Any) -> list:
    out = list(user or [])
    return out + [t for t in (ours or []) if t not in out]


def run_logger_spec(spec: Any, identity: RunIdentity) -> dict:
    """A logger spec (``{class_path, init_args, dict_kwargs}``, or a class path) with the run's identity.

    Apply it to the spec of every ``trainer.logger`` entry before instantiating it, once per run, so that no
    two runs share a logger. What is set per class (the user's other arguments are kept):

    - ``WandbLogger``: ``id`` = run_id, ``name`` = run_name, ``group``, ``job_type``, ``resume: allow``, and
      ``save_dir`` = the run folder unless the user set a folder; project / entity / config / tags from
      ``identity.wandb_defaults`` where the user set none (config merged, tags added).
    - ``TensorBoardLogger`` / ``CSVLogger``: ``version`` = ``{run_name}-{run_id}``; ``name`` = group unless the
      user named one (Lightning's default ``lightning_logs`` counts as none).
    - ``MLFlowLogger``: ``run_name`` = run_name, tags ``group``, ``job_type`` and ``run_id`` added, and no
      fixed MLflow ``run_id`` (each run starts its own MLflow run).
    - any other class: unchanged (it is still built afresh for each run).

    Group, job type and W&B's other ``wandb.init`` arguments go to ``dict_kwargs`` (LightningCLI's place
    for arguments a class takes as ``**kwargs``). Class paths of ``lightning.pytorch.loggers`` and
    ``pytorch_lightning.loggers`` and short names (``WandbLogger``) are recognised; the class path is kept.
    """
    if isinstance(spec, str):
        spec = {"class_path": spec}
    out = {k: v for k, v in dict(spec).items()}
    init = dict(out.get("init_args") or {})
    for key in [k for k in out if k not in ("class_path", "init_args", "dict_kwargs")]:
        init[key] = out.pop(key)  # LightningCLI's shorthand {class_path, save_dir: ...} means init_args
    extra = dict(out.get("dict_kwargs") or {})
    kind = logger_kind(out.get("class_path", ""))
    if kind == "wandb":
        init, extra = _wandb_spec(init, extra, identity)
    elif kind in ("csv", "tensorboard"):
        init["version"] = f"{identity.run_name}-{identity.run_id}"
        if "name" not in init or init["name"] == _DEFAULT_NAME:
            init["name"] = identity.group
        if _unset(init.get("save_dir")):
            init["save_dir"] = str(identity.run_dir)
    elif kind == "mlflow":
        init["run_name"] = identity.run_name
        init["tags"] = {**dict(init.get("tags") or {}), **_mlflow_tags(identity)}
        init["run_id"] = None
    out["init_args"] = init
    if extra or "dict_kwargs" in out:
        out["dict_kwargs"] = extra
    return out


def _mlflow_tags(identity: RunIdentity) -> dict[str, str]:
    return {"group": identity.group, "job_type": identity.job_type, "run_id": identity.run_id}


_WANDB_KWARGS = ("group", "job_type", "resume", "entity", "config", "tags", "mode")  # wandb.init's, not WandbLogger's


def _wandb_spec(init: dict, extra: dict, identity: RunIdentity) -> tuple[dict, dict]:
    for key in _WANDB_KWARGS:  # where a class takes **kwargs, LightningCLI keeps them in dict_kwargs
        if key in init:
            extra.setdefault(key, init.pop(key))
    init["name"], init["id"] = identity.run_name, identity.run_id
    if "version" in init:
        init["version"] = None  # WandbLogger takes `version or id`
    if _unset(init.get("save_dir"), ".") and _unset(init.get("dir")):
        init["save_dir"] = str(identity.run_dir)
    extra.update(group=identity.group, job_type=identity.job_type, resume="allow")
    _add_wandb_defaults(init, extra, identity)
    return init, extra


def _add_wandb_defaults(with_project: dict, others: dict, identity: RunIdentity) -> None:
    """tunecv's W&B settings (``logging.wandb_*``, the run's config and tags) where the user set none:
    ``project`` into ``with_project``, ``entity``, ``config`` and ``tags`` into ``others``."""
    defaults = dict(identity.wandb_defaults or {})
    if _unset(with_project.get("project"), _DEFAULT_NAME) and defaults.get("project"):
        with_project["project"] = defaults["project"]
    if _unset(others.get("entity")) and defaults.get("entity"):
        others["entity"] = defaults["entity"]
    if defaults.get("config"):
        others["config"] = {**dict(defaults["config"]), **dict(others.get("config") or {})}
    if defaults.get("tags"):
        others["tags"] = _merged_tags(others.get("tags"), defaults["tags"])


def apply_run_identity(logger: Any, identity: RunIdentity) -> Any:
    """The logger, built again through its class's constructor with the run's identity (as
    :func:`run_logger_spec` does for a spec); its other arguments are kept.

    Possible only while the logger has not started its experiment; a logger that has (a W&B run already
    running under another id) is returned as it is, with a warning, and so is one whose class has its own
    ``__init__`` (its arguments cannot be read back). Other classes are returned unchanged.
    """
    kind = logger_kind(logger)
    if kind == "wandb":
        started = getattr(logger, "_experiment", None)
        if started is not None:
            if getattr(started, "id", None) != identity.run_id:
                log.warning("the WandbLogger of run %s was started before the run (W&B id %s); it keeps that "
                            "identity", identity.run_name, getattr(started, "id", None))
            return logger
        args, init = _wandb_args(logger)
        if _unset(args.get("save_dir"), "."):
            args["save_dir"] = str(identity.run_dir)
        args.update(name=identity.run_name, id=identity.run_id)
        init.update(group=identity.group, job_type=identity.job_type, resume="allow")
        _add_wandb_defaults(args, init, identity)
        return _rebuilt(logger, args, init, identity)
    if kind in ("csv", "tensorboard") and getattr(logger, "_experiment", None) is None:
        args, extra = _file_logger_args(logger, kind)
        args["version"] = f"{identity.run_name}-{identity.run_id}"
        if args["name"] == _DEFAULT_NAME:
            args["name"] = identity.group
        return _rebuilt(logger, args, extra, identity)
    if kind == "mlflow" and not getattr(logger, "_initialized", False):
        args = _mlflow_args(logger)
        args.update(run_name=identity.run_name, tags={**dict(args.get("tags") or {}), **_mlflow_tags(identity)})
        return _rebuilt(logger, args, {}, identity)
    return logger


# What a built logger was constructed with, read back so that it can be built again with the run's identity
# (Lightning's loggers have no setters for their name, version or W&B init arguments).
_WANDB_NAMED = ("name", "project", "dir", "id", "anonymous")  # the wandb.init keys WandbLogger's own arguments set


def _wandb_args(logger: Any) -> tuple[dict, dict]:
    """A WandbLogger's constructor arguments: (named ones, the rest of its ``wandb.init`` arguments)."""
    init = dict(logger._wandb_init)
    args = {"name": init.get("name"), "project": init.get("project"), "save_dir": init.get("dir"),
            "id": init.get("id"), "anonymous": init.get("anonymous") == "allow", "offline": logger._offline,
            "log_model": logger._log_model, "prefix": logger._prefix,
            "checkpoint_name": getattr(logger, "_checkpoint_name", None),
            "add_file_policy": getattr(logger, "add_file_policy", None)}
    return args, {k: v for k, v in init.items() if k not in _WANDB_NAMED}


def _file_logger_args(logger: Any, kind: str) -> tuple[dict, dict]:
    """A CSVLogger's or TensorBoardLogger's constructor arguments: (named ones, a TensorBoard writer's others)."""
    args = {"save_dir": logger.save_dir, "name": logger.name, "version": getattr(logger, "_version", None),
            "prefix": logger._prefix}
    if kind == "csv":
        args["flush_logs_every_n_steps"] = logger._flush_logs_every_n_steps
        return args, {}
    args.update(log_graph=logger._log_graph, default_hp_metric=logger._default_hp_metric, sub_dir=logger.sub_dir)
    return args, dict(getattr(logger, "_kwargs", None) or {})


def _mlflow_args(logger: Any) -> dict:
    synchronous = getattr(logger, "_log_batch_kwargs", {}).get("synchronous")
    return {"experiment_name": logger._experiment_name, "run_name": logger._run_name,
            "tracking_uri": logger._tracking_uri, "tags": logger.tags, "log_model": logger._log_model,
            "prefix": logger._prefix, "artifact_location": logger._artifact_location, "run_id": logger._run_id,
            "synchronous": synchronous}


def _rebuilt(logger: Any, args: Mapping[str, Any], extra: Mapping[str, Any], identity: Optional[RunIdentity]) -> Any:
    """``type(logger)(**args, **extra)``: ``args`` that its constructor names (a ``None`` for an argument added in a
    later Lightning is left out), ``extra`` as its ``**kwargs``. A class with its own ``__init__`` (a user's
    subclass) cannot be read back: ``logger`` itself, with a warning."""
    cls = type(logger)
    if not getattr(cls.__init__, "__module__", "").startswith(_LIGHTNING_PACKAGES):
        if identity is not None:
            _warn_once(f"rebuild-{cls.__qualname__}", "%s has its own __init__: tunecv cannot give it the run's "
                       "identity (name it in trainer.logger as a class_path, or give each run its own)",
                       cls.__qualname__)
        return logger
    params = inspect.signature(cls).parameters
    named = {k: v for k, v in args.items() if k in params and not (v is None and params[k].default is not None)}
    return cls(**named, **extra)


_LIGHTNING_PACKAGES = ("lightning.pytorch.", "pytorch_lightning.", "lightning.fabric.")


def start_wandb(logger: Any, init_timeout: Optional[float] = None) -> Any:
    """Start a user's ``WandbLogger`` as tunecv starts its own: a run left open is closed first, the per-run
    ``WANDB_*`` variables are set aside (and put back by :func:`finish_wandb`), the mode is tunecv's unless
    the logger sets one (``offline``, ``mode``), ``wandb.init`` is bounded, and an unreachable service means
    offline. The logger is built again (through its constructor) for each try.

    Returns:
        The started logger (a new object: put it where ``logger`` was), or ``None`` when wandb cannot start
        at all.
    """
    import wandb

    mode = _prepare_run(wandb)
    timeout = _init_timeout(init_timeout)
    args, init = _wandb_args(logger)
    own_mode, own_settings = bool(args["offline"]) or "mode" in init, "settings" in init

    def make(mode_: str) -> Any:
        extra = dict(init)
        if not own_mode:
            extra["mode"] = mode_
        if not own_settings:
            extra["settings"] = _settings(wandb, mode_, timeout)
        rebuilt = _rebuilt(logger, args, extra, None)
        return _started(rebuilt)

    return _start_with_fallback(wandb, make, mode)


# -- offline runs ------------------------------------------------------------------------------------------

def offline_runs(run_dir: str | Path) -> list[Path]:
    """The offline wandb runs (``offline-run-*`` folders) of a run folder, oldest first; each can be uploaded
    with ``wandb sync FOLDER``."""
    folder = Path(run_dir) / WANDB_DIR
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob("offline-run-*") if p.is_dir()), key=lambda p: p.name)
