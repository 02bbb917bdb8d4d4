"""Pruning inside runs: a run reports its score after every validation epoch and stops at an epoch rung
when Optuna's pruner says so, compared with the same fold and seed of earlier trials.

How it works (the same on every executor: local pool, SLURM job, Ray task):

- The tune driver alone talks to the study. When it hands a run to an executor, it gives the run a
  :class:`RunPruning`: the pruner's settings and the per-epoch curves of **the same (fold, seed) in the
  earlier trials** (what the study holds at that moment, user attr ``epoch_scores`` of each trial).
- Inside the run, :class:`EpochPruningCallback` rebuilds that history in an in-memory Optuna study of its
  own (one auxiliary study per (fold, seed): the earlier trials keep their numbers, so Hyperband puts each
  in the same bracket as in the tune), reports the run's score after each validation epoch at step =
  epochs done, and asks Optuna's pruner (``SuccessiveHalvingPruner``, ``HyperbandPruner`` or
  ``MedianPruner``). When it prunes, the run stops at the end of that epoch (``trainer.should_stop``), keeps
  its checkpoints and ends with ``status: pruned`` and ``pruned_at_epoch``.
- The run writes its curve to ``epoch_scores.json`` in its folder; the driver copies it into the trial's
  user attr ``epoch_scores`` (``{"f{fold}s{seed}": {epochs done: score}}``), where the next runs (and
  plain Optuna, optuna-dashboard) read it. No run writes to the study: sound with SQLite on a shared disk
  and with PostgreSQL, whatever the number of runs reporting at once.

The per-epoch score is the run's own score (:func:`tunecv.scoring.score_runs` on one row): the same
combination of several metrics (harmonic, geometric, ...) as the cv score.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tunecv._io import atomic_write_text
from tunecv.artifacts.files import (
    EPOCH_SCORES_FILE,  # in a run folder: {"curve": {epochs done: score}, "pruned_at_epoch": n}
)
from tunecv.errors import ConfigError

#: the in-run pruners (``tune.run_pruner``); ``tune.pruner: hyperband | successive_halving`` means the same
RUN_PRUNERS = ("none", "hyperband", "successive_halving", "median")
#: ``tune.pruner`` values that prune inside runs (resource-based pruners: the resource is the epoch)
EPOCH_PRUNERS = ("hyperband", "successive_halving")
EPOCH_SCORES_ATTR = "epoch_scores"  # trial user attr: {"f{fold}s{seed}": {epochs done: score}}


def run_pruner_name(tune: Any) -> str:
    """The in-run pruner of a tune config: ``tune.run_pruner`` when set, else ``tune.pruner`` when it is
    resource-based (``hyperband``, ``successive_halving``), else ``none``."""
    name = getattr(tune, "run_pruner", None)
    if name is None:
        name = tune.pruner if tune.pruner in EPOCH_PRUNERS else "none"
    return str(name)


def between_runs_pruner_name(tune: Any) -> str:
    """The pruner between runs: ``tune.pruner``, unless it is resource-based (it then acts inside runs)."""
    return "none" if tune.pruner in EPOCH_PRUNERS else str(tune.pruner)


def check_config(tune: Any) -> None:
    """One-line errors for the in-run pruning keys."""
    name = getattr(tune, "run_pruner", None)
    if name is not None and name not in RUN_PRUNERS:
        raise ConfigError(f"`tune.run_pruner` must be one of {', '.join(RUN_PRUNERS)} (or null: follow "
                          f"tune.pruner); got {name!r}")
    for key, low in (("rung_min_epochs", 1), ("rung_reduction_factor", 2)):
        value = getattr(tune, key, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"`tune.{key}` must be an integer >= {low}; got {value!r}")


def rungs(min_epochs: int, reduction_factor: int, max_epochs: Optional[int]) -> list[int]:
    """The epochs (epochs done) at which successive halving compares runs: ``min_epochs * rf**k`` below
    ``max_epochs`` (Optuna's ``SuccessiveHalvingPruner`` with ``min_early_stopping_rate`` 0)."""
    out, epoch = [], min_epochs
    limit = max_epochs if max_epochs and max_epochs > 0 else 1000
    while epoch < limit:
        out.append(epoch)
        epoch *= reduction_factor
    return out


def make_epoch_pruner(name: str, min_epochs: int, reduction_factor: int, max_epochs: Optional[int]) -> Any:
    """Optuna's pruner for ``name`` over steps = epochs done."""
    import optuna

    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=min_epochs, reduction_factor=reduction_factor)
    if name == "hyperband":
        max_resource = max_epochs if max_epochs and max_epochs > min_epochs else "auto"
        return optuna.pruners.HyperbandPruner(min_resource=min_epochs, max_resource=max_resource,
                                              reduction_factor=reduction_factor)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=min_epochs)
    raise ConfigError(f"`tune.run_pruner` must be one of {', '.join(RUN_PRUNERS)}; got {name!r}")


def run_key(fold: int, seed: int) -> str:
    return f"f{fold}s{seed}"


@dataclass
class RunPruning:
    """What a run needs to prune itself (picklable: it travels with the run's job).

    Attributes:
        name: the pruner (:data:`RUN_PRUNERS`, not ``none``).
        study_name: the tune's study name (Hyperband's brackets hash it with the trial number).
        direction: ``maximize`` or ``minimize``.
        scoring_metric, strategy: the cv's scoring (per-epoch score of the run alone).
        min_epochs, reduction_factor, max_epochs: the rungs.
        trial_number: the run's trial.
        history: ``(trial number, curve, pruned)`` of the same fold and seed in earlier trials.
    """

    name: str
    study_name: str
    direction: str
    scoring_metric: list[str]
    strategy: str
    min_epochs: int
    reduction_factor: int
    max_epochs: Optional[int]
    trial_number: int
    history: list[tuple[int, dict[int, float], bool]] = field(default_factory=list)

    def callback(self) -> Any:
        """The Lightning callback that reports and prunes (built in the run's process)."""
        return _callback_class()(self)

    def replay(self) -> tuple[Any, Any]:
        """An in-memory study holding the history (each earlier trial under its own number) and the run's
        trial, asked last; ``(study, trial)``."""
        import optuna
        from optuna.trial import TrialState, create_trial

        pruner = make_epoch_pruner(self.name, self.min_epochs, self.reduction_factor, self.max_epochs)
        study = optuna.create_study(study_name=self.study_name, direction=self.direction, pruner=pruner)
        for number, curve, pruned in sorted(self.history, key=lambda h: h[0]):
            _pad(study, number, create_trial, TrialState)
            trial = study.ask()
            for step in sorted(curve):
                trial.report(curve[step], step)
                trial.should_prune()  # successive halving records the rungs the trial reached
            last = curve[max(curve)] if curve else None
            if pruned or last is None:
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, last)
        _pad(study, self.trial_number, create_trial, TrialState)
        return study, study.ask()


def _pad(study: Any, number: int, create_trial: Any, state: Any) -> None:
    """Failed placeholder trials until the next trial gets ``number`` (Hyperband's bracket follows it)."""
    while len(study.trials) < number:
        study.add_trial(create_trial(state=state.FAIL))


def epoch_score(metrics: Mapping[str, Any], scoring_metric: Sequence[str], strategy: str) -> Optional[float]:
    """The run's score from its current metrics (``None`` when a scoring metric is missing or not finite)."""
    import pandas as pd

    from tunecv.scoring import score_runs  # lazy: pandas and pyarrow, only once a run reports an epoch

    row = {k: float(v) for k, v in metrics.items() if _is_number(v)}
    row["status"] = "completed"
    try:
        value = score_runs(pd.DataFrame([row]), list(scoring_metric), strategy)
    except Exception:
        return None
    return float(value) if math.isfinite(value) else None


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return getattr(value, "numel", lambda: 1)() == 1


def read_epoch_scores(run_dir: Any) -> tuple[dict[int, float], Optional[int]]:
    """``(curve, pruned_at_epoch)`` a run left in its folder (empty, ``None`` when it left none)."""
    try:
        data = json.loads((Path(run_dir) / EPOCH_SCORES_FILE).read_text())
    except (OSError, ValueError):
        return {}, None
    curve = {int(k): float(v) for k, v in (data.get("curve") or {}).items()}
    return curve, data.get("pruned_at_epoch")


def write_epoch_scores(run_dir: Any, curve: Mapping[int, float], pruned_at: Optional[int]) -> None:
    atomic_write_text(Path(run_dir) / EPOCH_SCORES_FILE,
                      json.dumps({"curve": {str(k): v for k, v in sorted(curve.items())},
                                  "pruned_at_epoch": pruned_at}))


def run_curves(runs: Iterable[Any]) -> dict[str, Any]:
    """The ``epoch_scores`` user attr of a trial whose runs are ``runs`` (each with ``fold``, ``seed`` and
    ``run_dir``), from the ``epoch_scores.json`` they left; runs that left none are skipped. A study rebuilt
    from the tune's folder, and a re-queued trial that keeps its cv's finished runs, get their curves back
    from here, so in-run pruning compares later runs with them as before."""
    out: dict[str, Any] = {}
    for run in runs:
        curve, pruned_at = read_epoch_scores(run.run_dir)
        if curve:
            out[run_key(run.fold, run.seed)] = {"curve": {str(k): v for k, v in sorted(curve.items())},
                                                "pruned_at_epoch": pruned_at}
    return out


def history_for(trials: Iterable[Any], fold: int, seed: int, before: int) -> list[tuple[int, dict[int, float], bool]]:
    """The curves of ``(fold, seed)`` in the study's trials other than number ``before`` (any trial that
    reported one: finished or still running), from their user attr ``epoch_scores``."""
    key, out = run_key(fold, seed), []
    for t in trials:
        if t.number == before:
            continue
        entry = (t.user_attrs.get(EPOCH_SCORES_ATTR) or {}).get(key)
        if entry and entry.get("curve"):
            curve = {int(k): float(v) for k, v in entry["curve"].items()}
            out.append((t.number, curve, entry.get("pruned_at_epoch") is not None))
    return out


def _callback_class() -> type:
    """The callback class, defined on first use (Lightning is imported in the run's process only)."""
    global _CALLBACK
    if _CALLBACK is None:
        _CALLBACK = _define_callback()
    return _CALLBACK


_CALLBACK: Optional[type] = None


def _define_callback() -> type:
    from lightning.pytorch.callbacks import Callback

    class EpochPruningCallback(Callback):
        """Reports the run's score after each validation epoch (step = epochs done) and stops the run at
        the end of the epoch where the tune's pruner prunes it (see :mod:`tunecv.pruning`)."""

        def __init__(self, spec: RunPruning) -> None:
            self.spec = spec
            self.study: Any = None
            self.trial: Any = None
            self.curve: dict[int, float] = {}
            self.pruned_at_epoch: Optional[int] = None
            self.run_dir: Optional[Path] = None

        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            if self.trial is None:
                self.study, self.trial = self.spec.replay()
            log_dir = getattr(trainer, "default_root_dir", None)
            self.run_dir = Path(log_dir) if log_dir else None
            if self.run_dir is not None:  # a resumed run reports the epochs it already had
                curve, _ = read_epoch_scores(self.run_dir)
                for step in sorted(curve):
                    if step not in self.curve:
                        self.curve[step] = curve[step]
                        self.trial.report(curve[step], step)

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            if trainer.sanity_checking or self.pruned_at_epoch is not None:
                return
            step = int(trainer.current_epoch) + 1  # epochs done
            value = epoch_score(trainer.callback_metrics, self.spec.scoring_metric, self.spec.strategy)
            if value is None or step in self.curve:
                return
            self.curve[step] = value
            self.trial.report(value, step)
            if self.trial.should_prune():
                self.pruned_at_epoch = step
                trainer.should_stop = True
            if self.run_dir is not None and trainer.is_global_zero:
                write_epoch_scores(self.run_dir, self.curve, self.pruned_at_epoch)

    return EpochPruningCallback


# -- the driver's side ----------------------------------------------------------------------------------------

class InRunPruning:
    """The tune driver's part: a :class:`RunPruning` for each run it hands out, and each finished run's curve
    copied into its trial (user attr ``epoch_scores``). Disabled when the in-run pruner is ``none``.

    Args:
        cfg: the tune's config.
        study_name: the study's name.
        direction: the study's direction (``maximize`` / ``minimize``).
    """

    def __init__(self, cfg: Any, study_name: str, direction: str) -> None:
        self.name = run_pruner_name(cfg.tune)
        self.enabled = self.name != "none"
        self.cfg, self.study_name, self.direction = cfg, study_name, direction
        self.curves: dict[int, dict[str, Any]] = {}  # trial number -> its epoch_scores attr

    def hook(self, study: Any, trial: Any, session: Any) -> None:
        """Give ``session`` (a trial's cv) the pruning spec of each of its runs."""
        if not self.enabled:
            return
        attr = dict(trial.user_attrs.get(EPOCH_SCORES_ATTR) or {})
        kept = run_curves(r for r in session.runs if r.index in session.rows)  # a resumed cv's finished runs
        if any(attr.get(k) != v for k, v in kept.items()):
            attr.update(kept)
            trial.set_user_attr(EPOCH_SCORES_ATTR, attr)
        self.curves[trial.number] = attr

        def spec(run: Any) -> RunPruning:
            trials = study.get_trials(deepcopy=False)
            return RunPruning(
                name=self.name, study_name=self.study_name, direction=self.direction,
                scoring_metric=list(session.cfg.cv.scoring_metric), strategy=session.cfg.cv.multi_score_strategy,
                min_epochs=int(self.cfg.tune.rung_min_epochs),
                reduction_factor=int(self.cfg.tune.rung_reduction_factor),
                max_epochs=session.cfg.trainer.get("max_epochs"), trial_number=trial.number,
                history=history_for(trials, run.fold, run.seed, trial.number))

        session.run_pruning = spec

    def run_ended(self, trial: Any, run: Any) -> None:
        """Copy the run's curve (``epoch_scores.json``) into its trial's user attr ``epoch_scores``."""
        if not self.enabled:
            return
        curve, pruned_at = read_epoch_scores(run.run_dir)
        if not curve:
            return
        attr = self.curves.setdefault(trial.number, {})
        attr[run_key(run.fold, run.seed)] = {"curve": {str(k): v for k, v in sorted(curve.items())},
                                              "pruned_at_epoch": pruned_at}
        trial.set_user_attr(EPOCH_SCORES_ATTR, attr)

    def forget(self, trial: Any) -> None:
        self.curves.pop(trial.number, None)


def was_pruned_inside(rows: Iterable[Mapping[str, Any]]) -> bool:
    """Whether a run of these ``run_infos`` rows was pruned inside itself."""
    return any(r.get("status") == "pruned" and r.get("pruned_at_epoch") is not None for r in rows)


def plan_line(cfg: Any) -> Optional[str]:
    """The ``--dry-run`` line of the in-run pruner and its rungs (``None`` when it is off)."""
    name = run_pruner_name(cfg.tune)
    if name == "none":
        return None
    max_epochs = cfg.trainer.get("max_epochs")
    at = rungs(cfg.tune.rung_min_epochs, cfg.tune.rung_reduction_factor, max_epochs)
    return (f"pruning inside runs: {name}, rungs at epochs {', '.join(map(str, at)) or '(none below max_epochs)'}"
            f" of {max_epochs or '?'} (reduction factor {cfg.tune.rung_reduction_factor}; each run compared with the "
            f"same fold and seed of earlier trials); between runs: {between_runs_pruner_name(cfg.tune)}")
