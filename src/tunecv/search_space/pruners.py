"""The Optuna pruners of ``tune.pruner`` (:func:`make_pruner`); Wilcoxon on the per-run scores of a cv,
its p-value threshold following the cv's size."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any, Optional

from tunecv.config import PRUNERS
from tunecv.errors import one_of

if TYPE_CHECKING:
    import optuna

#: trial user attr where a tune keeps each run's own score (run index → score), for run_score_pruner
RUN_SCORES_ATTR = "run_scores"
#: ``tune.pruner: wilcoxon``'s p-value threshold for cvs of 7 runs or more (Optuna's default)
WILCOXON_P_THRESHOLD = 0.1


def run_score_pruner(inner: Any) -> Any:
    """Wrap a pruner that compares instances (``WilcoxonPruner``) so that it sees each trial's per-run
    scores (user attr ``run_scores``, step = run index) instead of its intermediate values (the cv
    score so far). Trials without ``run_scores`` (tunes from before) are passed unchanged."""
    import optuna

    class RunScorePruner(optuna.pruners.BasePruner):
        """``inner`` applied to per-run scores: the paired (fold, seed) values the Wilcoxon test needs."""

        def __init__(self) -> None:
            self.inner = inner

        def prune(self, study: Any, trial: Any) -> bool:
            return bool(self.inner.prune(_RunScoreStudy(study), _as_run_scores(trial)))

    return RunScorePruner()


class _RunScoreStudy:
    """A read-only view of a study whose best trial shows its per-run scores as intermediate values."""

    def __init__(self, study: Any) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    @property
    def best_trial(self) -> Any:
        return _as_run_scores(self._study.best_trial)


def _as_run_scores(trial: Any) -> Any:
    from optuna.trial import TrialState, create_trial

    scores = trial.user_attrs.get(RUN_SCORES_ATTR)
    if not scores:
        return trial
    finished = trial.state != TrialState.RUNNING
    return create_trial(state=trial.state, values=trial.values if finished else None, params=trial.params,
                        distributions=trial.distributions, user_attrs=trial.user_attrs,
                        system_attrs=trial.system_attrs,
                        intermediate_values={int(k): float(v) for k, v in scores.items()})


def wilcoxon_p_threshold(n_runs: int) -> float:
    """The p-value under which ``tune.pruner: wilcoxon`` prunes a trial whose cvs have ``n_runs`` runs.

    Optuna's default 0.1, raised for cvs of fewer than 7 runs to just above ``2 ** -ceil(n_runs / 2)``:
    the exact one-sided p-value of a trial that lost on every one of the first half of its runs. With 0.1
    a 5-run cv cannot be pruned before its 4th run (3 lost runs give p = 0.125), so pruning would save at
    most one run in five.
    """
    half = 2.0 ** -math.ceil(max(n_runs, 1) / 2)
    return max(WILCOXON_P_THRESHOLD, math.nextafter(half, 1.0))


def _cv_wilcoxon_pruner() -> Any:
    """Optuna's ``WilcoxonPruner`` with :func:`wilcoxon_p_threshold` of the best trial's run count (the runs
    of a complete cv); before a best trial exists it never prunes, as Optuna's."""
    import optuna

    def wilcoxon(p_threshold: float) -> Any:
        # tunecv chose this pruner and its threshold, not the user: Optuna's "experimental" warning would only
        # puzzle them at every tune.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.pruners.WilcoxonPruner(p_threshold=p_threshold)

    class CvWilcoxonPruner(optuna.pruners.BasePruner):
        """``WilcoxonPruner`` whose threshold follows the cv's size (see :func:`wilcoxon_p_threshold`)."""

        def __init__(self) -> None:
            self.n_runs: Optional[int] = None
            self.p_threshold = WILCOXON_P_THRESHOLD
            self.inner = wilcoxon(self.p_threshold)

        def prune(self, study: Any, trial: Any) -> bool:
            try:
                n_runs = len(study.best_trial.intermediate_values)
            except ValueError:  # no complete trial yet
                return False
            if n_runs != self.n_runs:
                self.n_runs = n_runs
                self.p_threshold = wilcoxon_p_threshold(n_runs)
                self.inner = wilcoxon(self.p_threshold)
            return bool(self.inner.prune(study, trial))

    return CvWilcoxonPruner()


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """The Optuna pruner named by ``tune.pruner``.

    A tune reports, after each run, the cv score so far as the intermediate value. ``median`` and
    ``percentile`` (keeps the best 25 %) compare those, wait for 2 finished trials and skip step 0;
    ``wilcoxon`` (p-value threshold: :func:`wilcoxon_p_threshold`) is made for cross-validation: it
    compares the per-run scores of a trial with those of the best trial on the same runs (user attr
    ``run_scores``, step = run index);
    ``hyperband`` and ``successive_halving`` use Optuna's defaults.

    Raises:
        ConfigError: an unknown name.
    """
    if name not in PRUNERS:
        raise one_of("tune.pruner", name, PRUNERS)
    import optuna

    pruners = optuna.pruners
    if name == "none":
        return pruners.NopPruner()
    if name == "median":
        return pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if name == "percentile":
        return pruners.PercentilePruner(25.0, n_startup_trials=2, n_warmup_steps=1)
    if name == "wilcoxon":
        return run_score_pruner(_cv_wilcoxon_pruner())
    if name == "hyperband":
        return pruners.HyperbandPruner()
    return pruners.SuccessiveHalvingPruner()
