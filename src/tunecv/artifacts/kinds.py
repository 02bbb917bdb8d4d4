"""What kind of folder of the artifact tree a path is: a run, a cv, a tune or a nested cv.

The kind is read from the files a level leaves (:mod:`tunecv.artifacts.files`), in this order: a run
records ``run_info.json`` (a run still training: its ``{name}-{run_id}`` folder with ``config.yaml`` and
``csv/``); a nested cv ``nested.json``; a tune its search space or its Optuna storage (before its
first cv ended, a tune holds no table yet); a cv ``run_infos.parquet``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from tunecv import naming
from tunecv.artifacts.files import (
    CONFIG_FILE,
    CSV_DIR,
    NESTED_FILE,
    RUN_INFO_FILE,
    RUN_INFOS_FILE,
    SPACE_FILE,
    STORAGE_FILE,
)

__all__ = ["KINDS", "FolderKind", "folder_kind", "is_level_folder", "is_running_run"]

FolderKind = Literal["run", "cv", "tune", "nested"]
KINDS: tuple[FolderKind, ...] = ("run", "cv", "tune", "nested")


def folder_kind(path: str | Path) -> Optional[FolderKind]:
    """``run``, ``nested``, ``tune`` or ``cv`` for a level's folder; ``None`` for any other path."""
    root = Path(path)
    if not root.is_dir():
        return None
    if (root / RUN_INFO_FILE).is_file() or is_running_run(root):
        return "run"
    if (root / NESTED_FILE).is_file():
        return "nested"
    if (root / SPACE_FILE).is_file() or (root / STORAGE_FILE).is_file():
        return "tune"
    if (root / RUN_INFOS_FILE).is_file():
        return "cv"
    return None


def is_running_run(path: str | Path) -> bool:
    """A run folder whose run is still training: ``{run_name}-{run_id}`` holding its config and metrics."""
    root = Path(path)
    return (naming.split_run_dir_name(root.name) is not None and (root / CONFIG_FILE).is_file()
            and (root / CSV_DIR).is_dir())


def is_level_folder(path: str | Path) -> bool:
    """A folder that a finished run, a cv or a tune marked as its own (what ``tunecv report`` lists below an
    artifact folder)."""
    root = Path(path)
    return any((root / f).is_file() for f in (RUN_INFOS_FILE, SPACE_FILE, RUN_INFO_FILE))
