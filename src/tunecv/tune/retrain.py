"""The retrain of a tune's best parameters on all non-test data (``tune.retrain_and_test``): its epochs from the
best cv's checkpoints, its run, and which worker of a shared study does it."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from tunecv import naming, search_space
from tunecv.artifacts.files import RETRAIN_LOCK_FILE
from tunecv.config import Config
from tunecv.train import train
from tunecv.tune.result import TuneResult
from tunecv.tune.study import _count_finished, _count_live

log = logging.getLogger("tunecv.tune")

def _retrain(cfg: Config, space: Any, result: TuneResult, folder: Path, tune_name: str) -> Any:
    """Train the best parameters once on all non-test data and test it.

    With ``fold_method: none`` the run's ``val/*`` is computed on the data it trains on, so nothing may be
    chosen by it: the retrain trains for the epochs the best cv's runs needed to reach their best checkpoint
    (:func:`retrain_epochs`), without early stopping, and keeps its last checkpoint.
    """
    best_cfg = search_space.apply(cfg, space.to_config(result.best_params))
    epochs, why = retrain_epochs(result)
    trainer = {k: v for k, v in (best_cfg.trainer or {}).items() if k not in ("min_epochs", "max_steps")}
    if epochs is not None:
        trainer["max_epochs"] = epochs
    callbacks = trainer.get("callbacks")
    if isinstance(callbacks, list):  # a user's EarlyStopping would stop on the training data too
        trainer["callbacks"] = [cb for cb in callbacks if not _is_early_stopping_spec(cb)]
    best_cfg = best_cfg.replace(**{"split.fold_method": "none", "fold": 0, "cv.n_folds": None,
                                   "early_stopping": None, "checkpoint": None, "trainer": trainer})
    run_name = naming.retrain_name(tune_name)
    existing = naming.find_run_dirs(folder, run_name)
    run_dir = existing[-1] if existing else naming.run_dir(folder, run_name, naming.new_run_id())
    log.info("retraining the best parameters (trial %s) on all non-test data for %s into %s", result.best_trial,
             why, run_dir)
    result.retrain_epochs = why
    return train(best_cfg, name=run_name, run_dir=run_dir, resume=bool(existing),
                 tracking={"group": tune_name, "job_type": "retrain", "config": result.best_params})


def _is_early_stopping_spec(spec: Any) -> bool:
    if isinstance(spec, Mapping):
        return str(spec.get("class_path", "")).rsplit(".", 1)[-1] == "EarlyStopping"
    from tunecv._callbacks import is_early_stopping  # lazy: tunecv._callbacks imports lightning

    return bool(is_early_stopping(spec))


_EPOCH_IN_NAME = re.compile(r"epoch[=_]?(\d+)")


def checkpoint_epoch(path: Any) -> Optional[int]:
    """The 0-based epoch a checkpoint was saved at: from its file name (``best-epoch3-step40.ckpt``,
    Lightning's ``epoch=3-step=40.ckpt``), else from the file (``checkpoint["epoch"]``); ``None`` when neither
    says."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        return None
    match = _EPOCH_IN_NAME.search(Path(path).name)
    if match:
        return int(match.group(1))
    try:
        import torch

        ckpt = torch.load(str(path), map_location="cpu", weights_only=False, mmap=True)
        return int(ckpt["epoch"])
    except Exception:
        return None


def retrain_epochs(result: TuneResult) -> tuple[Optional[int], str]:
    """The epochs the retrain trains: the median over the best cv's completed runs of the epochs to their best
    checkpoint (its 0-based epoch + 1), rounded half up; ``None`` (the config's ``max_epochs``) when no run
    says. Returns it with a phrase saying where it came from."""
    import statistics

    df = result.run_infos
    cv_name = None
    with contextlib.suppress(Exception):
        cv_name = next(t for t in result.study.trials if t.number == result.best_trial).user_attrs.get("cv_name")
    if df is None or not len(df) or "checkpoint" not in df.columns:
        return None, "trainer.max_epochs epochs (no run of the best cv recorded a checkpoint)"
    rows = df[df["cv_name"] == cv_name] if cv_name is not None and "cv_name" in df.columns else \
        df[df["trial"] == result.best_trial]
    if "status" in rows.columns:
        rows = rows[rows["status"] == "completed"]
    epochs = [e + 1 for e in (checkpoint_epoch(p) for p in rows["checkpoint"]) if e is not None]
    if not epochs:
        return None, "trainer.max_epochs epochs (no run of the best cv recorded a checkpoint epoch)"
    n = math.floor(statistics.median(epochs) + 0.5)
    return n, (f"{n} epoch{'s' if n != 1 else ''} (the median epochs to the best checkpoint of {cv_name or 'the best cv'}'s "
               f"{len(epochs)} runs: {', '.join(map(str, sorted(epochs)))}; no early stopping, last checkpoint kept)")


def _claim_retrain(study: Any, folder: Path, shared: bool, n_trials: int) -> bool:
    """With several workers on one study, the worker that sees the last trial finish retrains, once
    (an O_EXCL lock file on the shared disk decides between two that finish together)."""
    if not shared:
        return True
    if _count_finished(study) < n_trials or _count_live(study) > 0:
        log.info("other workers are still running trials; the last one to finish retrains the best parameters")
        return False
    try:
        fd = os.open(folder / RETRAIN_LOCK_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        log.info("another worker retrains the best parameters")
        return False
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    return True
