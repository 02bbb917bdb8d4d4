"""A trial's scores: one run's score, a multi-objective trial's values, ``tune.constraints`` recorded on the
trial, and whether a told trial can change the best-trial record (``_BestWatch``)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Optional

from tunecv import _trial_records as records
from tunecv.config import Config
from tunecv.constraints import FEASIBLE_ATTR, VALUES_ATTR, evaluate, parse_constraints
from tunecv.cv import CrossValidation

log = logging.getLogger("tunecv.tune")

def _run_score(session: CrossValidation, row: Mapping[str, Any]) -> Optional[float]:
    import pandas as pd

    from tunecv.scoring import score_runs  # lazy: tunecv.scoring imports pandas

    try:
        value = score_runs(pd.DataFrame([row]), session.cfg.cv.scoring_metric, session.cfg.cv.multi_score_strategy)
    except Exception:
        return None
    return value if math.isfinite(value) else None


def _objective_value(frame: Any, metric: str) -> float:
    from tunecv.scoring import score_runs  # lazy: tunecv.scoring imports pandas

    return float(score_runs(frame[frame["status"] == "completed"], [metric], "arithmetic"))


def _record_constraints(cfg: Config, trial: Any, frame: Any) -> None:
    """The trial's constraint values and whether it is feasible (user attrs; before it is told)."""
    constraints = parse_constraints(cfg.tune.constraints)
    if not constraints:
        return
    values = evaluate(constraints, frame)
    trial.set_user_attr(VALUES_ATTR, values)
    trial.set_user_attr(FEASIBLE_ATTR, all(v <= 0 for v in values))
    if hasattr(trial, "set_constraint"):  # Optuna >= 5: what its samplers and study.best_trial read
        for c, v in zip(constraints, values, strict=True):
            trial.set_constraint(str(c), v)
    broken = [str(c) for c, v in zip(constraints, values, strict=True) if not v <= 0]
    if broken:
        log.info("trial %d breaks tune.constraints %s (not a candidate for the best trial)", trial.number,
                 ", ".join(broken))


class _BestWatch:
    """Whether a just-told trial can change the best-trial record (best and runner-up), so that the
    record, which reads every trial, is only rewritten when it can.

    Only a trial whose stable score enters the two best this process has seen can: the two best of a
    subset of the trials never beat the two best of all of them, also when other workers share the study.
    """

    def __init__(self, directions: list[str]) -> None:
        self.direction = directions[0]
        self.sign = 1.0 if directions[0] == "maximize" else -1.0
        self.multi = len(directions) > 1
        self.top: Optional[list[float]] = None  # the two best signed stable scores, best first

    def may_change(self, state: str, session: CrossValidation) -> bool:
        if self.multi or self.top is None:
            return True
        result = session.result()
        if state == "complete" and result.score_is_unstable:
            return True  # it may become study.best_trial: the record's reason then says why tunecv differs
        if state != "complete" or not math.isfinite(result.score):
            return False
        return len(self.top) < 2 or self.sign * result.score >= self.top[-1]

    def update(self, study: Any) -> None:
        from optuna.trial import TrialState

        if self.multi:
            return
        ranked = records.ranked_trials(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                                       self.direction)
        self.top = [self.sign * t.values[0] for t in ranked[:2]]
