"""Outcome constraints of a tune (``tune.constraints``): bounds on metrics the runs log.

Each constraint is a string ``METRIC<=BOUND`` or ``METRIC>=BOUND`` (``params/count<=5000``,
``val/latency_ms<=3``). A trial's measured value of a metric is its mean over the cv's completed runs
(the mean of finite values, as a one-metric cv score); a metric no run logged counts as violated. The
trial records, before it is told, the user attrs ``constraint_values`` (one number per constraint,
``measured - bound`` for ``<=`` and ``bound - measured`` for ``>=``: feasible when ``<= 0``, Optuna's
convention) and ``feasible``. The samplers that take Optuna's ``constraints_func`` (tpe, nsga2, gp) get
one that reads ``constraint_values``; tunecv's best trial, its retrain and ``tunecv report`` take only
feasible trials.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tunecv.errors import ConfigError

__all__ = ["FEASIBLE_ATTR", "VALUES_ATTR", "Constraint", "constraints_func", "evaluate", "parse_constraints"]

VALUES_ATTR = "constraint_values"
FEASIBLE_ATTR = "feasible"
#: the samplers whose Optuna class takes ``constraints_func``
SAMPLERS_WITH_CONSTRAINTS = ("tpe", "nsga2", "gp")
_SPEC = re.compile(r"^\s*(?P<metric>[^<>=\s]+)\s*(?P<op><=|>=)\s*(?P<bound>\S+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``metric op bound``; :meth:`value` is Optuna's constraint value (feasible when ``<= 0``)."""

    metric: str
    op: str
    bound: float

    def value(self, measured: float) -> float:
        if not math.isfinite(measured):
            return math.inf
        return measured - self.bound if self.op == "<=" else self.bound - measured

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"


def parse_constraints(specs: Any) -> list[Constraint]:
    """``tune.constraints`` parsed; one-line :class:`ConfigError` naming the bad entry."""
    if specs is None:
        return []
    if not isinstance(specs, list):
        raise ConfigError(f"`tune.constraints` must be a list such as [\"params/count<=5000\"]; got {specs!r}")
    out = []
    for i, spec in enumerate(specs):
        m = _SPEC.match(spec) if isinstance(spec, str) else None
        bound = _number(m.group("bound")) if m else None
        if m is None or bound is None:
            raise ConfigError(f"`tune.constraints[{i}]` must be METRIC<=BOUND or METRIC>=BOUND with a finite "
                              f"number, such as params/count<=5000; got {spec!r}")
        out.append(Constraint(m.group("metric"), m.group("op"), bound))
    return out


def _number(text: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def evaluate(constraints: Sequence[Constraint], frame: Any) -> list[float]:
    """The constraint values of a cv from its runs (a ``run_infos`` frame)."""
    done = frame[frame["status"] == "completed"] if "status" in frame.columns else frame
    out = []
    for c in constraints:
        values = [float(v) for v in done[c.metric] if isinstance(v, (int, float)) and math.isfinite(v)] \
            if c.metric in done.columns else []
        out.append(c.value(sum(values) / len(values) if values else math.nan))
    return out


def constraints_func(n: int) -> Callable[[Any], list[float]]:
    """Optuna's ``constraints_func`` for ``n`` constraints: the trial's recorded values (violated when missing)."""

    def func(trial: Any) -> list[float]:
        values = trial.user_attrs.get(VALUES_ATTR)
        return [float(v) for v in values] if isinstance(values, list) and len(values) == n else [math.inf] * n

    return func


def is_infeasible(user_attrs: Any) -> bool:
    """Whether a trial's user attrs say it broke a constraint."""
    return user_attrs.get(FEASIBLE_ATTR) is False
