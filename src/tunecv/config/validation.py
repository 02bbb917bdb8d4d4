"""Checks of a config that types alone cannot express: ranges, combinations, registered names."""

from __future__ import annotations

import os
from pathlib import Path

from tunecv import naming
from tunecv.aggregations import aggregation
from tunecv.config.schema import Config, SplitConfig
from tunecv.constraints import parse_constraints
from tunecv.errors import ConfigError, one_of
from tunecv.folds import FOLD_METHODS, fold_method
from tunecv.trackers import TRACKERS


def validate(cfg: Config) -> None:
    """Checks that types alone cannot express (ranges, combinations)."""
    if cfg.name is not None:
        naming.validate_name(cfg.name, key="name")
    _validate_artifact_dir(cfg.artifact_dir)
    devices = cfg.devices
    if isinstance(devices, bool) or (isinstance(devices, list) and not devices) or \
            (isinstance(devices, int) and devices < -1):
        raise ConfigError("`devices` must be a non-empty list of device ids such as [0, 2, 5, 6], a count (2), "
                          f"-1 (all) or auto; got {devices!r}")
    if cfg.num_nodes < 1:
        raise ConfigError(f"`num_nodes` must be >= 1; got {cfg.num_nodes}")
    if cfg.runs_per_device < 1:
        raise ConfigError(f"`runs_per_device` must be >= 1; got {cfg.runs_per_device}")
    _validate_executor(cfg)
    _validate_extensions(cfg)
    sp = cfg.split
    makes_folds = fold_method(sp).makes_folds
    if makes_folds and sp.total_folds < 2:
        raise ConfigError(f"`split.total_folds` must be >= 2 for fold_method {sp.fold_method!r}; "
                          f"got {sp.total_folds}")
    if not makes_folds and sp.total_folds < 1:
        raise ConfigError(f"`split.total_folds` must be >= 1; got {sp.total_folds}")
    n_folds = fold_method(sp).fold_count()
    if not 0 <= cfg.fold < n_folds:
        raise ConfigError(f"`fold` must be in [0, {n_folds - 1}] (split.total_folds={n_folds}); got {cfg.fold}")
    _validate_test_split_by(sp)
    if cfg.cv.n_folds is not None and not 1 <= cfg.cv.n_folds <= n_folds:
        raise ConfigError(f"`cv.n_folds` must be in [1, {n_folds}] (split.total_folds); got {cfg.cv.n_folds}")
    if cfg.cv.n_seeds < 1:
        raise ConfigError(f"`cv.n_seeds` must be >= 1; got {cfg.cv.n_seeds}")
    if not cfg.cv.scoring_metric:
        raise ConfigError("`cv.scoring_metric` must list at least one metric such as val/loss:lower; got []")
    for metric in cfg.cv.scoring_metric:
        _check_metric_spec(metric, "cv.scoring_metric")
    for metric in cfg.tune.objectives or []:
        _check_metric_spec(metric, "tune.objectives")
    parse_constraints(cfg.tune.constraints)
    if not cfg.tune.heartbeat_grace > 0:
        raise ConfigError(f"`tune.heartbeat_grace` must be > 0 (seconds); got {cfg.tune.heartbeat_grace}")
    if cfg.tune.worker_id is not None and not str(cfg.tune.worker_id).strip():
        raise ConfigError(f"`tune.worker_id` must be a non-empty string or null; got {cfg.tune.worker_id!r}")
    _validate_nested(cfg)
    if isinstance(cfg.tune.n_trials, int) and cfg.tune.n_trials < 1:
        raise ConfigError(f"`tune.n_trials` must be >= 1 or 'grid'; got {cfg.tune.n_trials}")
    for sec in ("model", "data"):
        spec = getattr(cfg, sec)
        if cfg.cli is None and spec is not None and not isinstance(spec.get("class_path"), str):
            raise ConfigError(f"`{sec}` must have a `class_path` string (and optional `init_args`); "
                              f"got keys {sorted(spec)}")


def _validate_nested(cfg: Config) -> None:
    ne = cfg.nested
    if not fold_method(SplitConfig(fold_method=ne.fold_method), "nested.fold_method").makes_folds:
        methods = ", ".join(m for m in FOLD_METHODS.names() if m != "none")
        raise ConfigError(f"`nested.fold_method` must cut outer folds (one of {methods}); got 'none'")
    if ne.total_folds < 2:
        raise ConfigError(f"`nested.total_folds` must be >= 2; got {ne.total_folds}")
    if ne.n_folds is not None and not 1 <= ne.n_folds <= ne.total_folds:
        raise ConfigError(f"`nested.n_folds` must be in [1, {ne.total_folds}] (nested.total_folds) or null; "
                          f"got {ne.n_folds}")


def _validate_artifact_dir(path: str) -> None:
    """``artifact_dir`` must be (or become) a folder: no part of it may be a regular file."""
    p = Path(path).expanduser()
    for part in [p, *p.parents]:
        if part.exists():
            if not part.is_dir():
                where = "" if part == p else f" ({str(part)!r})"
                raise ConfigError(f"`artifact_dir` must be a folder path, not under a regular file; got {path!r}"
                                  f"{where} is a regular file")
            if not os.access(part, os.W_OK | os.X_OK):
                raise ConfigError(f"`artifact_dir` must be writable; got {path!r} ({str(part)!r} is not writable)")
            return

def _validate_extensions(cfg: Config) -> None:
    """The names of the extension points (fold method, scoring aggregation, trackers) are registered ones."""
    FOLD_METHODS.check(cfg.split.fold_method, "split.fold_method")
    aggregation(cfg.cv.multi_score_strategy)
    trackers = cfg.logging.trackers
    if not isinstance(trackers, list):
        raise ConfigError(f"`logging.trackers` must be a list of tracker names such as [csv, wandb]; got {trackers!r}")
    for i, name in enumerate(trackers):
        TRACKERS.check(name, f"logging.trackers[{i}]")


def _validate_executor(cfg: Config) -> None:
    from tunecv.executors import check_executor_config  # lazy: as in schema._executor_sections

    check_executor_config(cfg)


def _check_metric_spec(metric: str, key: str) -> None:
    if not isinstance(metric, str) or not metric:
        raise ConfigError(f"`{key}` entries must be metric names such as val/acc or val/loss:lower; got {metric!r}")
    if ":" in metric:
        direction = metric.rsplit(":", 1)[1]
        if direction not in ("higher", "lower"):
            raise one_of(f"{key} direction", direction, ("higher", "lower"))


def _validate_test_split_by(sp: SplitConfig) -> None:
    by = sp.test_split_by
    if sp.test_split == "none":
        return
    if sp.test_split == "random":
        if (by is None or len(by) != 1 or isinstance(by[0], (str, bool))
                or not 0 < float(by[0]) < 1):
            raise ConfigError("`split.test_split_by` must be one fraction in (0, 1) such as [0.2] for "
                              f"test_split 'random'; got {by!r}")
        return
    if not by:
        what = "region names" if sp.test_split == "region" else "sample ids"
        raise ConfigError(f"`split.test_split_by` must list {what} for test_split {sp.test_split!r}; got {by!r}")
