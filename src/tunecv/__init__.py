"""tunecv: tune -> cross-validate -> train any PyTorch Lightning model.

The public API is imported lazily, so ``import tunecv`` (and ``tunecv --help``) stays light: torch,
lightning, optuna and wandb load only when a function that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "CVResult",
    "Config",
    "ConfigError",
    "DatasetDataModule",
    "SearchSpaceError",
    "SplitDataModule",
    "TaskModule",
    "TrainResult",
    "TuneResult",
    "TunecvError",
    "cross_validate",
    "load_config",
    "load_run_infos",
    "register_aggregation",
    "register_executor",
    "register_fold_method",
    "register_tracker",
    "train",
    "tune",
]

_LAZY = {
    "Config": "tunecv.config",
    "load_config": "tunecv.config",
    "ConfigError": "tunecv.errors",
    "SearchSpaceError": "tunecv.errors",
    "TunecvError": "tunecv.errors",
    "SplitDataModule": "tunecv.data",
    "DatasetDataModule": "tunecv.datasets",
    "TaskModule": "tunecv.task",
    "TrainResult": "tunecv.train",
    "train": "tunecv.train",
    "CVResult": "tunecv.cv",
    "cross_validate": "tunecv.cv",
    "TuneResult": "tunecv.tune",
    "tune": "tunecv.tune",
    "load_run_infos": "tunecv.results",
    # the extension points: one registration line each (docs/extending.md)
    "register_fold_method": "tunecv.folds",
    "register_aggregation": "tunecv.aggregations",
    "register_tracker": "tunecv.trackers",
    "register_executor": "tunecv.executors",
}

if TYPE_CHECKING:
    from tunecv.aggregations import register_aggregation
    from tunecv.config import Config, load_config
    from tunecv.cv import CVResult, cross_validate
    from tunecv.data import SplitDataModule
    from tunecv.datasets import DatasetDataModule
    from tunecv.errors import ConfigError, SearchSpaceError, TunecvError
    from tunecv.executors import register_executor
    from tunecv.folds import register_fold_method
    from tunecv.results import load_run_infos
    from tunecv.task import TaskModule
    from tunecv.trackers import register_tracker
    from tunecv.train import TrainResult, train
    from tunecv.tune import TuneResult, tune


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tunecv' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
