"""What a tune leaves (``TuneResult``): the best stable trial, the Pareto front, and the closing lines."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tunecv import _trial_records as records
from tunecv.tune.study import _count_finished


@dataclass
class TuneResult:
    """What a tune left.

    Attributes:
        name: the tune name.
        tune_dir: its folder.
        best_params: hyperparameters of the best stable trial (dotted config keys → values).
        best_score: its cv score.
        best_trial: its trial number (``None`` when no stable trial completed).
        run_infos: every run of every cv (the content of ``{tune_dir}/run_infos.parquet``).
        study: the Optuna study.
        pareto_trials: for multi-objective tunes, the Pareto-optimal trial numbers.
        retrain: the retrain run (a :class:`~tunecv.train.TrainResult`) when asked for.
        stopped_by: why the tune stopped starting cvs before ``n_trials`` (``tune.timeout`` or
            ``tune.max_runs`` reached), else ``None``.
        retrain_epochs: how many epochs the retrain trained and where that number came from, else ``None``.
    """

    name: str
    tune_dir: Path
    best_params: dict[str, Any]
    best_score: float
    best_trial: Optional[int]
    run_infos: Any
    study: Any
    pareto_trials: list[int] = field(default_factory=list)
    retrain: Any = None
    stopped_by: Optional[str] = None
    retrain_epochs: Optional[str] = None

    @property
    def n_finished(self) -> int:
        return _count_finished(self.study)


def _best_trial(study: Any, directions: list[str]) -> Any:
    """The best COMPLETE trial whose score is stable (never an unstable one): :func:`records.best_trial`."""
    return records.best_trial(study, directions)


def _result(name: str, folder: Path, study: Any, space: Any, directions: list[str]) -> TuneResult:
    from tunecv.results import read_tune_table  # lazy: tunecv.results imports pandas and pyarrow

    best = _best_trial(study, directions)
    pareto = []
    if len(directions) > 1:
        with contextlib.suppress(Exception):
            pareto = sorted(t.number for t in study.best_trials)
    return TuneResult(
        name=name, tune_dir=folder,
        best_params=space.params_from_trial(best.params, best.distributions) if best is not None else {},
        best_score=float(best.values[0]) if best is not None else float("nan"),
        best_trial=best.number if best is not None else None,
        run_infos=read_tune_table(folder), study=study, pareto_trials=pareto)


def closing_lines(result: TuneResult) -> list[str]:
    """The tune's last lines after the best trial's summary: the retrain's test metrics (when
    ``tune.retrain_and_test``) and the ``tunecv report`` command to run next."""
    import shlex

    lines = []
    retrain = result.retrain
    if retrain is not None:
        if retrain.status == "completed":
            metrics = retrain.metrics or {}
            tested = {k: v for k, v in metrics.items() if k.startswith("test/")}
            shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(tested.items()))
            lines.append(f"retrain: test {shown or '(no test/* metric logged)'} ({retrain.run_dir})")
        else:
            lines.append(f"retrain: {retrain.status}: {(retrain.error or '').splitlines()[0] if retrain.error else ''}"
                         f" ({retrain.run_dir})")
        if result.retrain_epochs:
            lines.append(f"  trained {result.retrain_epochs}")
    folder = Path(result.tune_dir)
    with contextlib.suppress(ValueError):
        folder = folder.resolve().relative_to(Path.cwd().resolve())
    lines.append(f"next: tunecv report {shlex.quote(str(folder))}")
    return lines
