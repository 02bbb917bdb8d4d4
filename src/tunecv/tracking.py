"""Experiment tracking: Lightning loggers for a run (CSV always, wandb when a project is set).

wandb is imported only when ``logging.wandb_project`` is set. Each run gets id = ``run_id``,
name = ``run_name``, and the group / job_type its caller passes down (a tune groups by ``tune_name`` and
sets job_type = ``cv_name``). ``WANDB_*`` settings of one run never leak into the next, and wandb never
blocks a run: without credentials or network it goes offline with one warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

__all__ = ["csv_logger", "wandb_logger", "wandb_mode"]

log = logging.getLogger(__name__)

# Variables that describe one run; set by wandb or a user for one run, they must not reach the next.
_PER_RUN_VARS = ("WANDB_RUN_ID", "WANDB_RUN_GROUP", "WANDB_JOB_TYPE", "WANDB_NAME", "WANDB_RESUME",
                 "WANDB_RUN_NAME", "WANDB_NOTES", "WANDB_TAGS", "WANDB_DIR")


CSV_DIR = "csv"


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
        return "api.wandb.ai" in netrc.read_text() or "wandb" in netrc.read_text()
    return False


def wandb_mode() -> str:
    """``online``, ``offline`` or ``disabled``: ``WANDB_MODE`` if set, else online only with credentials."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode in ("offline", "disabled", "dryrun"):
        return "offline" if mode == "dryrun" else mode
    if mode == "online":
        return "online"
    return "online" if _has_credentials() else "offline"


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
    init_timeout: float = 30.0,
) -> Any:
    """A Lightning ``WandbLogger`` for one run, resumable by id, offline when wandb cannot be reached."""
    for var in _PER_RUN_VARS:
        os.environ.pop(var, None)
    from lightning.pytorch.loggers import WandbLogger
    import wandb

    mode = wandb_mode()
    if mode != "online" and os.environ.get("WANDB_MODE", "").lower() not in ("offline", "disabled"):
        log.warning("wandb: no credentials found (WANDB_API_KEY or `wandb login`); logging offline into %s. "
                    "Upload later with `wandb sync`.", save_dir)

    def make(mode_: str) -> Any:
        settings = wandb.Settings(init_timeout=init_timeout, silent=True)
        logger = WandbLogger(
            project=project, entity=entity, id=run_id, name=run_name, group=group, job_type=job_type,
            save_dir=str(save_dir), resume="allow", mode=mode_, tags=tags, settings=settings,
            config=dict(config or {}),
        )
        _ = logger.experiment  # start now, so that a network failure shows up here
        return logger

    if mode == "online":
        try:
            return make("online")
        except Exception as exc:  # wandb raises CommError / UsageError / TimeoutError when unreachable
            log.warning("wandb: cannot reach the service (%s); this run logs offline into %s",
                        type(exc).__name__, save_dir)
            with contextlib.suppress(Exception):
                wandb.finish(exit_code=1)
    return make(mode)


def finish_wandb(exit_code: int = 0) -> None:
    """Close the current wandb run, if any (so the next run in this process starts clean)."""
    import sys

    if "wandb" not in sys.modules:
        return
    import wandb

    if wandb.run is not None:
        with contextlib.suppress(Exception):
            wandb.finish(exit_code=exit_code)
    for var in _PER_RUN_VARS:
        os.environ.pop(var, None)
