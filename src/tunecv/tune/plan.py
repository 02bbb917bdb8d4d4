"""A tune's plan (``_TunePlan``), checked before anything is written: config checks, search space, trials,
sampler and pruner, name and folder; the warm start's earlier tunes; the sampler seed of a resumed tune."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from tunecv import _trial_records as records
from tunecv import naming, search_space, terminator
from tunecv import pruning as _pruning
from tunecv._io import read_json
from tunecv.artifacts import workspace
from tunecv.artifacts.files import SPACE_FILE
from tunecv.build import validate_objects
from tunecv.config import Config
from tunecv.constraints import SAMPLERS_WITH_CONSTRAINTS, constraints_func, parse_constraints
from tunecv.errors import ConfigError
from tunecv.executors import Executor
from tunecv.placement import Placement, check_tune, resolve
from tunecv.tune.dryrun import _print_plan
from tunecv.tune.study import default_storage, open_storage


@dataclass
class _TunePlan:
    """What a tune will do, checked before anything is written: its config, search space, trials and name."""

    cfg: Config
    space: Any
    points: Optional[list[dict[str, Any]]]  # the grid (``tune.n_trials: grid``), else None
    n_trials: int
    directions: list[str]
    warm_points: list[tuple[dict[str, Any], str]]
    seed: int
    sampler_name: str
    sampler: Any
    pruner: Any
    tune_name: str
    folder: Path
    where: Placement
    resume: bool
    reset: bool

    @property
    def shared(self) -> bool:
        """Workers may share the study (``tune.storage`` is set)."""
        return self.cfg.tune.storage is not None

    @property
    def multi(self) -> bool:
        return len(self.directions) > 1

    @classmethod
    def of(cls, cfg: Config, *, name: Optional[str], resume: bool, reset: bool, dry_run: bool) -> _TunePlan:
        """Check the config and plan the tune (one-line errors; nothing is written)."""
        _check_tune_config(cfg, resume, reset)
        space = search_space.SearchSpace.from_file(cfg.tune.search_space)
        space.check_keys(cfg)
        records.check_budget(cfg.tune.timeout, cfg.tune.max_runs)
        grid = cfg.tune.n_trials == "grid"
        if grid and cfg.tune.warm_start is not None:
            raise ConfigError("`tune.warm_start` cannot be used with `tune.n_trials: grid` (a grid runs every point "
                              "once, in order); got both")
        warm_points = records.warm_start_points(cfg.tune.warm_start, cfg.tune.warm_start_top_k, space, _load_tune)
        points = space.grid() if grid else None
        n_trials = len(points) if points is not None else int(cfg.tune.n_trials)
        directions = _directions(cfg)
        if len(directions) > 1 and cfg.tune.pruner != "none":
            raise ConfigError(f"`tune.pruner` must be none with several `tune.objectives` (Optuna cannot prune "
                              f"multi-objective trials); got {cfg.tune.pruner!r}")
        seed = cfg.tune.seed if cfg.tune.seed is not None else cfg.seed
        if cfg.tune.storage is not None and not dry_run:
            # Workers sharing a study must not draw the same points: each gets its own stream.
            seed = (seed * 1_000_003 + os.getpid() + int(time.time() * 1000)) % (2**31 - 1)
        sampler_name = "nsga2" if len(directions) > 1 and cfg.tune.sampler == "tpe" else cfg.tune.sampler
        sampler = search_space.make_sampler(sampler_name, seed=seed, space=space, n_objectives=len(directions),
                               constraints_func=_constraints_func(cfg, sampler_name))
        pruner = search_space.make_pruner(_pruning.between_runs_pruner_name(cfg.tune))  # hyperband/SHA act inside runs
        _check_pruning_and_stop(cfg, len(directions))
        tune_name, folder = _name_and_folder(cfg, name, resume=resume, reset=reset, dry_run=dry_run)
        return cls(cfg=cfg, space=space, points=points, n_trials=n_trials, directions=directions,
                   warm_points=warm_points, seed=seed, sampler_name=sampler_name, sampler=sampler, pruner=pruner,
                   tune_name=tune_name, folder=folder, where=resolve(cfg), resume=resume, reset=reset)

    def validate(self, executor: Optional[Executor]) -> None:
        """Build the model and data once and apply every grid point, before anything is written."""
        first_values = self.points[0] if self.points else self.space.replay(_midpoint)
        validate_objects(search_space.apply(self.cfg, self.space.to_config(first_values)).replace(fold=0), executor)
        for point in self.points or []:
            search_space.apply(self.cfg, point)

    def print(self) -> None:
        """The dry run's plan."""
        _print_plan(self.cfg, self.space, self.points, self.n_trials, self.tune_name, self.where.strategy,
                    self.sampler_name)


def _check_tune_config(cfg: Config, resume: bool, reset: bool) -> None:
    """The checks of a tune's config that need no file."""
    workspace.check_flags(resume, reset, "tune")
    if cfg.tune.search_space is None:
        raise ConfigError("`tune.search_space` must name a search-space file (YAML or TOML); got None")
    check_tune(cfg)


def _name_and_folder(cfg: Config, name: Optional[str], *, resume: bool, reset: bool,
                     dry_run: bool) -> tuple[str, Path]:
    """The tune's name and folder, checked against what is on disk (``--resume`` / ``--reset``)."""
    tune_name = workspace.choose_name("tune", name or cfg.name, resume=resume,
                                      free=lambda: naming.free_name(Path(cfg.artifact_dir)))
    folder = naming.tune_dir(cfg.artifact_dir, tune_name)
    shared = cfg.tune.storage is not None  # workers of a shared study join it, whether or not it exists
    if not (dry_run or shared):
        workspace.check_on_disk("tune", tune_name, folder if folder.exists() else None, folder.parent,
                                resume=resume, reset=reset)
    return tune_name, folder


def _directions(cfg: Config) -> list[str]:
    from tunecv.scoring import parse_metric, score_direction  # lazy: tunecv.scoring imports pandas

    if cfg.tune.objectives:
        return ["maximize" if parse_metric(m)[1] else "minimize" for m in cfg.tune.objectives]
    return [score_direction(cfg.cv.scoring_metric)]


def _check_pruning_and_stop(cfg: Config, n_objectives: int) -> None:
    """One-line errors for in-run pruning (tunecv.pruning) and ``tune.stop_when`` (tunecv.terminator)."""
    _pruning.check_config(cfg.tune)
    if n_objectives > 1 and _pruning.run_pruner_name(cfg.tune) != "none":
        raise ConfigError(f"`tune.run_pruner` must be none with several `tune.objectives` (Optuna cannot prune "
                          f"multi-objective trials); got {_pruning.run_pruner_name(cfg.tune)!r}")
    terminator.check_config(cfg.tune, n_objectives)


def _constraints_func(cfg: Config, sampler_name: str) -> Any:
    """Optuna's ``constraints_func`` of ``tune.constraints`` for the samplers that take one, else ``None``;
    also ``None`` from Optuna 5 on, where each trial sets its constraints (``Trial.set_constraint``) and
    the samplers read them (``constraints_func`` is deprecated there)."""
    from optuna.trial import Trial

    constraints = parse_constraints(cfg.tune.constraints)
    if not constraints or sampler_name not in SAMPLERS_WITH_CONSTRAINTS or hasattr(Trial, "set_constraint"):
        return None
    return constraints_func(len(constraints))


def _load_tune(folder: Path) -> tuple[Any, Optional[dict]]:
    """An earlier tune's Optuna study and its search-space fingerprint (for ``tune.warm_start``)."""
    import optuna

    old_cfg = workspace.read_snapshot(folder)
    url = (old_cfg.get("tune") or {}).get("storage") or default_storage(folder)
    study = optuna.load_study(study_name=old_cfg.get("name") or folder.name, storage=open_storage(url))
    return study, read_json(folder / SPACE_FILE)


def continued_seed(seed: int, n_trials_so_far: int) -> int:
    """The sampler seed of a tune that already holds ``n_trials_so_far`` trials.

    A fresh tune (no trial yet) uses ``seed`` itself, so it reproduces exactly; a resumed one continues
    with a seed derived from both, instead of restarting the stream and proposing its first points again.
    """
    if n_trials_so_far <= 0:
        return seed
    return (seed * 1_000_003 + n_trials_so_far * 7_919 + 1) % (2**31 - 1)


def _midpoint(param: Any) -> Any:
    values = param.values() if param.is_discrete else None
    if values:
        return values[0]
    if param.distribution == "constant":
        return param.value
    low, high = param.low, param.high
    mid = (low + high) / 2
    return int(mid) if param.distribution == "intuniform" else mid
