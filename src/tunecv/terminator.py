"""``tune.stop_when: converged``: a tune stops starting trials when more are not expected to improve its best
score by more than the cross-validation's own noise.

The rule is Optuna's ``optuna.terminator.Terminator`` (Makarova et al. 2022, "Automatic termination for
hyperparameter optimization"): after each told trial it compares an upper bound of the regret left to a
Gaussian process fitted to the study (``RegretBoundEvaluator``) with the statistical error of the best
trial's cross-validation (``CrossValidationErrorEvaluator``: the variance of its per-run scores, which tunecv
reports for every trial with ``report_cross_validation_scores``). When the regret bound falls below that
error, the tune starts no further trial; the trials in flight finish. It waits for ``tune.stop_min_trials``
complete trials first. ``tune.n_trials``, ``tune.timeout`` and ``tune.max_runs`` keep working beside it:
whichever comes first ends the tune.

Optuna marks ``optuna.terminator`` deprecated since 4.9 (to be removed in 6.0); its warning is kept quiet
here, and tunecv checks this rule when it upgrades Optuna.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterable
from typing import Any, Optional

from tunecv.errors import ConfigError

log = logging.getLogger("tunecv.tune")

STOP_WHEN = ("converged",)


def check_config(tune: Any, n_objectives: int) -> None:
    """One-line errors for ``tune.stop_when`` and ``tune.stop_min_trials``."""
    if tune.stop_when is None:
        return
    if tune.stop_when not in STOP_WHEN:
        raise ConfigError(f"`tune.stop_when` must be one of {', '.join(STOP_WHEN)} or null; got {tune.stop_when!r}")
    value = tune.stop_min_trials
    if not isinstance(value, int) or isinstance(value, bool) or value < 2:
        raise ConfigError(f"`tune.stop_min_trials` must be an integer >= 2; got {value!r}")
    if n_objectives > 1:
        raise ConfigError("`tune.stop_when` must be null with several `tune.objectives` (Optuna's Terminator "
                          "judges one objective); got 'converged'")


@contextlib.contextmanager
def _quiet() -> Any:
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ExperimentalWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
        warnings.filterwarnings("ignore", message=".*terminator.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="optuna")
        yield


class ConvergenceStop:
    """The tune's convergence check (``tune.stop_when: converged``); disabled when it is null.

    Args:
        tune: the ``tune`` config section.
    """

    def __init__(self, tune: Any) -> None:
        self.enabled = tune.stop_when == "converged"
        self.min_trials = int(tune.stop_min_trials)
        self.reason: Optional[str] = None
        self._terminator: Any = None
        self._checked_at = -1

    def report(self, trial: Any, run_scores: Iterable[float]) -> None:
        """Give the trial its cross-validation scores (its runs' own scores), before it is told."""
        scores = [float(s) for s in run_scores if math.isfinite(s)]
        if not self.enabled or len(scores) < 2:
            return
        from optuna.terminator import report_cross_validation_scores

        with _quiet():
            report_cross_validation_scores(trial, scores)

    def converged(self, study: Any) -> bool:
        """Whether the study has converged (checked once per new complete trial); sets :attr:`reason`."""
        if not self.enabled:
            return False
        if self.reason is not None:
            return True
        from optuna.trial import TrialState

        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) < self.min_trials or len(complete) == self._checked_at:
            return False
        self._checked_at = len(complete)
        with _quiet():
            from optuna.terminator import CrossValidationErrorEvaluator, RegretBoundEvaluator

            improvement = RegretBoundEvaluator().evaluate(trials=study.trials, study_direction=study.direction)
            try:
                error = CrossValidationErrorEvaluator().evaluate(trials=study.trials, study_direction=study.direction)
            except ValueError:  # the best trial has no cv scores (a single run, or a warm start from elsewhere)
                return False
        log.debug("convergence check after %d trials: regret bound %.4g, cv error %.4g",
                  len(complete), improvement, error)
        if improvement < error:
            self.reason = (f"converged after {len(complete)} complete trials (tune.stop_when: Optuna's Terminator: "
                           f"regret bound {improvement:.3g} < the best cv's error {error:.3g})")
            return True
        return False
