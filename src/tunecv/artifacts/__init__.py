"""The artifact tree: every file name (:mod:`~tunecv.artifacts.files`), the kind of a folder
(:mod:`~tunecv.artifacts.kinds`), the one ``run_info.json`` schema and writer
(:mod:`~tunecv.artifacts.run_info`) and the one workspace lifecycle of every level, name → folder →
resume / reset → claim → ``config.yaml`` (:mod:`~tunecv.artifacts.workspace`).

It imports only :mod:`tunecv.naming` (the folder layout and the name claim), :mod:`tunecv._io` and
:mod:`tunecv.errors`, so that levels, executors and trackers may all use it.
"""

from __future__ import annotations

from tunecv.artifacts import files, kinds, run_info, workspace
from tunecv.artifacts.files import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    CSV_DIR,
    EPOCH_SCORES_FILE,
    LAST_CHECKPOINT,
    METRICS_FILE,
    NESTED_FILE,
    PARTS_DIR,
    PARTS_LOCK_FILE,
    REPORT_DIR,
    RETRAIN_LOCK_FILE,
    RUN_INFO_FILE,
    RUN_INFOS_FILE,
    SLURM_DIR,
    SPACE_FILE,
    STORAGE_FILE,
    WANDB_DIR,
)
from tunecv.artifacts.kinds import folder_kind

__all__ = [
    "CHECKPOINT_DIR",
    "CONFIG_FILE",
    "CSV_DIR",
    "EPOCH_SCORES_FILE",
    "LAST_CHECKPOINT",
    "METRICS_FILE",
    "NESTED_FILE",
    "PARTS_DIR",
    "PARTS_LOCK_FILE",
    "REPORT_DIR",
    "RETRAIN_LOCK_FILE",
    "RUN_INFOS_FILE",
    "RUN_INFO_FILE",
    "SLURM_DIR",
    "SPACE_FILE",
    "STORAGE_FILE",
    "WANDB_DIR",
    "files",
    "folder_kind",
    "kinds",
    "run_info",
    "workspace",
]
