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
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

__all__ = ["CSV_DIR", "csv_logger", "finish_wandb", "offline_runs", "wandb_logger", "wandb_mode"]

log = logging.getLogger(__name__)

CSV_DIR = "csv"
WANDB_DIR = "wandb"
DEFAULT_INIT_TIMEOUT = 30.0

# Variables that name one run. tunecv passes all of these explicitly; set in the environment (by a user,
# a sweep agent or an earlier run) they would make every run of a tune claim the same identity.
_PER_RUN_VARS = ("WANDB_RUN_ID", "WANDB_RUN_GROUP", "WANDB_JOB_TYPE", "WANDB_NAME", "WANDB_RESUME",
                 "WANDB_RESUME_FROM", "WANDB_FORK_FROM", "WANDB_RUN_NAME")
# Process-wide variables wandb itself maintains: never restored.
_PROCESS_VARS = ("WANDB_SERVICE",)

# Per process: one warning per kind, and no second wait for a service already found unreachable.
_state: dict[str, Any] = {"online_failed": False, "warned": set(), "env_before_run": None}


def csv_logger(run_dir: str | Path) -> Any:
    """A CSVLogger writing ``{run_dir}/csv/metrics.csv`` (and ``hparams.yaml``).

    When the run is resumed, the metrics of the earlier attempt are kept as ``metrics.<k>.csv`` (Lightning's
    CSVLogger would otherwise overwrite them).
    """
    from lightning.pytorch.loggers import CSVLogger

    folder = Path(run_dir) / CSV_DIR
    metrics = folder / "metrics.csv"
    if metrics.exists():
        k = 1
        while (folder / f"metrics.{k}.csv").exists():
            k += 1
        metrics.rename(folder / f"metrics.{k}.csv")
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

    Returns:
        The logger, or ``None`` when wandb cannot start at all (the run then goes on without it, after one
        warning).
    """
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    mode = _prepare_run(wandb)
    timeout = _init_timeout(init_timeout)

    def make(mode_: str) -> Any:
        # offline, the wait is only for wandb's local service to start (slow on a loaded machine)
        wait = timeout if mode_ == "online" else max(timeout, DEFAULT_INIT_TIMEOUT)
        settings = wandb.Settings(init_timeout=wait, silent=True)
        logger = WandbLogger(
            project=project, entity=entity, id=run_id, name=run_name, group=group, job_type=job_type,
            save_dir=str(save_dir), resume="allow", mode=mode_, tags=tags, settings=settings,
            config=dict(config or {}),
        )
        # Lightning passes `anonymous=None`, which wandb >= 0.19 warns about on every process.
        init_kwargs = getattr(logger, "_wandb_init", None)
        if isinstance(init_kwargs, dict) and init_kwargs.get("anonymous") is None:
            init_kwargs.pop("anonymous", None)
        _ = logger.experiment  # start now, so that a network failure shows up here, not mid-fit
        return logger

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


# -- offline runs ------------------------------------------------------------------------------------------

def offline_runs(run_dir: str | Path) -> list[Path]:
    """The offline wandb runs (``offline-run-*`` folders) of a run folder, oldest first; each can be uploaded
    with ``wandb sync FOLDER``."""
    folder = Path(run_dir) / WANDB_DIR
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob("offline-run-*") if p.is_dir()), key=lambda p: p.name)
