"""The dry run's printout of a tune's plan: trials, runs, sampler, pruner, folder, search space, grid."""

from __future__ import annotations

from typing import Any

from tunecv import naming
from tunecv import pruning as _pruning
from tunecv.config import Config
from tunecv.folds import folds_run


def _print_plan(cfg: Config, space: Any, points: Any, n_trials: int, tune_name: str, strategy: str,
                sampler: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    sp = cfg.split
    folds = folds_run(sp, cfg.cv.n_folds)
    runs = folds * cfg.cv.n_seeds
    console.print(f"tune {tune_name}: {n_trials} trials x {runs} runs each ({folds} folds x {cfg.cv.n_seeds} "
                  f"seeds), sampler {sampler}, pruner {cfg.tune.pruner}, strategy {strategy}")
    rungs_line = _pruning.plan_line(cfg)  # in-run pruning: the epoch rungs
    if rungs_line:
        console.print(rungs_line)
    if cfg.tune.stop_when:
        console.print(f"stop when: {cfg.tune.stop_when} (after at least {cfg.tune.stop_min_trials} complete trials)")
    console.print(f"folder: {naming.tune_dir(cfg.artifact_dir, tune_name)}")
    table = Table(title="search space")
    table.add_column("key")
    table.add_column("distribution")
    for p in space:
        table.add_row(p.key, p.describe())
    console.print(table)
    if points is not None:
        grid_table = Table(title=f"grid: {len(points)} trials")
        grid_table.add_column("cv")
        keys = [p.key for p in space]
        for k in keys:
            grid_table.add_column(k)
        for i, point in enumerate(points):
            grid_table.add_row(naming.cv_name(tune_name, i), *(str(point.get(k)) for k in keys))
        console.print(grid_table)
    console.print("dry run: nothing was created")
