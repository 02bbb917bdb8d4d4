"""What a tune writes into its Optuna study so that a plain Optuna user (``optuna.load_study``,
optuna-dashboard) sees what tunecv saw, plus the tune's budgets and warm start.

Written per trial (all through Optuna's public API, before the trial is told; the tune's driver groups the
writes of one step, a run's records or a trial's last attrs, into one storage transaction on an RDB
storage: :mod:`tunecv._storage_retry`):

- intermediate values: after every finished run of the trial's cv, the cv score so far, at step = the
  number of runs finished before it (the run index of a serial cv). A pruned trial's value is therefore
  its cv score so far (Optuna gives a pruned trial its last intermediate value).
- user attrs ``run_scores`` (run index → that run's own score), ``n_runs`` (runs finished),
  ``config_values`` (dotted config key → the value the model used; differs from ``trial.params`` only
  for ``reversed_loguniform``, where Optuna records ``x`` and the model gets ``n - x``), ``score``,
  ``score_is_unstable``, ``cv_name``.

Per study: user attrs ``tunecv:best_trial`` (tunecv's choice of best trial, its value and the reason
when it differs from ``study.best_trial``) and ``tunecv:elapsed`` (the tune's wall-clock seconds over
all its sessions, for ``tune.timeout``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, TypeVar

from tunecv.artifacts.files import CONFIG_FILE
from tunecv.errors import ConfigError
from tunecv.search_space import RUN_SCORES_ATTR  # what search_space.run_score_pruner reads
from tunecv.stats import few_pairs_line, paired_comparison

log = logging.getLogger("tunecv.tune")

N_RUNS_ATTR = "n_runs"
CONFIG_VALUES_ATTR = "config_values"
SCORE_ATTR = "score"
BEST_TRIAL_ATTR = "tunecv:best_trial"
ELAPSED_ATTR = "tunecv:elapsed"
WARM_START_ATTR = "warm_start"

T = TypeVar("T")


# -- per trial -------------------------------------------------------------------------------------------

class TrialRecorder:
    """Reports the finished runs of one trial's cv to its Optuna trial.

    Args:
        trial: the ``optuna.Trial`` (from ``study.ask``).
        session: the trial's :class:`~tunecv.cv.CrossValidation`.
        run_score: ``row -> float | None``, the score of one run alone.
        report: report intermediate values (``False`` for multi-objective studies, where Optuna forbids it).
    """

    def __init__(self, trial: Any, session: Any, run_score: Any, *, report: bool) -> None:
        self.trial, self.session, self.run_score, self.report_values = trial, session, run_score, report
        self.run_scores: dict[int, float] = {}
        self.steps = 0

    def adopt(self) -> None:
        """Report the runs a resumed cv kept from disk, in plan order."""
        finished = sorted(self.session.rows)
        for n, index in enumerate(finished, 1):
            self._record(index, self.session.rows[index], [self.session.rows[i] for i in finished[:n]])

    def run_ended(self, index: int, row: Mapping[str, Any]) -> None:
        """Record run ``index`` (just finished: completed or failed) and report the cv score so far."""
        self._record(index, row, [self.session.rows[i] for i in sorted(self.session.rows)])

    def _record(self, index: int, row: Mapping[str, Any], rows_so_far: Sequence[Mapping[str, Any]]) -> None:
        if row.get("status") == "completed":
            value = self.run_score(row)
            if value is not None:
                self.run_scores[index] = value
        self.trial.set_user_attr(RUN_SCORES_ATTR, {str(k): v for k, v in sorted(self.run_scores.items())})
        self.trial.set_user_attr(N_RUNS_ATTR, len(self.session.rows))
        step = self.steps
        self.steps += 1
        if not self.report_values:
            return
        score, _ = self.session.score(list(rows_so_far))
        if math.isfinite(score):
            self.trial.report(score, step=step)

    def before_tell(self, score: float, unstable: bool) -> None:
        """Attrs a plain Optuna user needs, set while the trial can still be changed."""
        if math.isfinite(score):
            self.trial.set_user_attr(SCORE_ATTR, float(score))
        self.trial.set_user_attr("score_is_unstable", bool(unstable))
        self.trial.set_user_attr("cv_name", self.session.name)


def planned_runs_left(session: Any) -> int:
    """Runs of an open cv that will still run (0 once pruned)."""
    if session.stopped is not None:
        return session.in_flight
    return len(session.runs) - len(session.rows)


# -- best trial ---------------------------------------------------------------------------------------------
# tunecv's one rule for the best trial, used by the tune (its result, its progress and the study attr
# ``tunecv:best_trial``), the warm start and ``tunecv report``: among the COMPLETE trials whose cv score is
# stable and finite, the best score in the study's direction; a tie goes to the lower trial number. Never an
# unstable score, and no single best with several objectives.

def is_candidate(state: Any, score: Any, unstable: Any) -> bool:
    """Whether a trial may be the best: COMPLETE, with a stable, finite cv score."""
    return (state == "complete" and not unstable and isinstance(score, (int, float))
            and math.isfinite(score))


def rank_key(score: Any, number: Optional[int], direction: str) -> tuple[float, float]:
    """The sort key of the rule, best first: the better score in ``direction``, then the lower trial number
    (no number last). A score that is not a finite number sorts as 0: callers put those apart first."""
    finite = isinstance(score, (int, float)) and math.isfinite(score)
    sign = 1.0 if direction == "maximize" else -1.0
    return (-sign * score if finite else 0.0, number if number is not None else math.inf)


def rank(items: Iterable[T], direction: str,
         describe: Callable[[T], tuple[Any, Any, Any, Optional[int]]]) -> list[T]:
    """The items that may be the best (:func:`is_candidate`), best first.

    Args:
        items: trials in any form (Optuna trials, leaderboard entries).
        direction: ``maximize`` or ``minimize``.
        describe: an item → its ``(state, score, score_is_unstable, trial number)``; state in lower case.
    """
    described = [(item, describe(item)) for item in items]
    chosen = [(item, d) for item, d in described if is_candidate(d[0], d[1], d[2])]
    chosen.sort(key=lambda pair: rank_key(pair[1][1], pair[1][3], direction))
    return [item for item, _ in chosen]


def ranked_trials(trials: Iterable[Any], direction: str) -> list[Any]:
    """Optuna trials that may be the best, best first (score: the trial's first value); a trial that broke
    ``tune.constraints`` (user attr ``feasible`` false) never is."""
    trials = [t for t in trials if t.user_attrs.get("feasible") is not False]
    return rank(trials, direction, lambda t: (t.state.name.lower(), t.values[0] if t.values else None,
                                              t.user_attrs.get("score_is_unstable"), t.number))


def best_trial(study: Any, directions: Sequence[str]) -> Any:
    """The best trial of ``study`` by tunecv's rule (``None``: several objectives, or no candidate)."""
    from optuna.trial import TrialState

    if len(directions) != 1:
        return None
    ranked = ranked_trials(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), directions[0])
    return ranked[0] if ranked else None


def record_best(study: Any, best: Any, directions: Sequence[str]) -> dict[str, Any]:
    """Write tunecv's choice of best trial (``best``, or ``None``) into the study user attr
    ``tunecv:best_trial`` and return it."""

    if len(directions) > 1:
        try:
            pareto = sorted(t.number for t in study.best_trials)
        except Exception:  # no complete trial yet
            pareto = []
        record = {"number": None, "value": None, "pareto": pareto,
                  "reason": "several objectives: no single best trial; `pareto` lists the Pareto-optimal "
                            "trials (study.best_trials)"}
    elif best is None:
        record = {"number": None, "value": None,
                  "reason": "no COMPLETE trial with a stable, finite cv score yet"}
    else:
        try:
            plain = study.best_trial
        except ValueError:
            plain = None
        if plain is None or plain.number == best.number:
            reason = "the best value among COMPLETE trials (the same as study.best_trial)"
        elif plain.user_attrs.get("feasible") is False:
            reason = (f"study.best_trial is trial {plain.number} (value {plain.value:.6g}), which breaks "
                      f"tune.constraints; this is the best COMPLETE trial that meets them")
        else:
            reason = (f"study.best_trial is trial {plain.number} (value {plain.value:.6g}), whose cv score is "
                      f"unstable (a run logged a scoring metric that is not finite or is 0), which tunecv never "
                      f"takes; this is the best COMPLETE trial whose cv score is stable")
        record = {"number": best.number, "value": float(best.values[0]), "reason": reason,
                  "runner_up": _runner_up(study, best, directions[0])}
    try:
        study.set_user_attr(BEST_TRIAL_ATTR, record)
    except Exception:  # a storage hiccup must not fail the trial that was just told
        log.warning("could not record the best trial in the study", exc_info=True)
    return record


def _runner_up(study: Any, best: Any, direction: str) -> Optional[dict[str, Any]]:
    """The next stable COMPLETE trial after ``best`` and its paired comparison with it over the runs both
    finished (``run_scores``: the same run index is the same (fold, seed) pair in every cv of a tune)."""
    from optuna.trial import TrialState

    ranked = ranked_trials(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), direction)
    runner = next((t for t in ranked if t.number != best.number), None)
    if runner is None:
        return None
    comparison = paired_comparison(runner.user_attrs.get(RUN_SCORES_ATTR) or {},
                                   best.user_attrs.get(RUN_SCORES_ATTR) or {})
    return {"number": runner.number, "value": float(runner.value), **comparison.to_dict()}


def runner_up_line(record: Mapping[str, Any]) -> Optional[str]:
    """Whether the best trial could be told apart from the runner-up, with the interval of their paired
    difference (a second line when the pairs are too few for the Wilcoxon test to decide), or ``None``."""
    runner = record.get("runner_up")
    if not runner or not runner.get("n_pairs"):
        return None
    d = runner.get("difference") or {}
    interval = "-"
    if all(isinstance(d.get(k), (int, float)) and math.isfinite(d[k]) for k in ("mean", "low", "high")):
        interval = f"{d['mean']:.4g} [{d['low']:.4g}, {d['high']:.4g}]"
    verdict = "is better than" if runner["distinguishable"] else "cannot be told apart from"
    p = runner.get("p_value")
    reachable = runner.get("p_can_reach_alpha", True)
    p_text = f"; Wilcoxon p={p:.2g}" if reachable and p is not None and math.isfinite(p) else ""
    line = (f"the best trial {verdict} the runner-up, trial {runner['number']}: {interval} (runner-up - best, "
            f"95% paired t interval over {runner['n_pairs']} (fold, seed) pairs{p_text})")
    few = few_pairs_line(int(runner["n_pairs"]))
    return f"{line}\n  {few}" if few else line


# -- budgets ------------------------------------------------------------------------------------------------

class Budget:
    """``tune.timeout`` (wall-clock seconds of the whole tune, over all its sessions) and ``tune.max_runs``
    (training runs of the whole tune).

    The elapsed time is kept in the study (user attr ``tunecv:elapsed``), so a resumed tune continues the
    count; several workers sharing a study each add their own time to what was stored when they started,
    and the largest value is kept (overlapping sessions count once).
    """

    def __init__(self, study: Any, timeout: Optional[float], max_runs: Optional[int]) -> None:
        self.study, self.timeout, self.max_runs = study, timeout, max_runs
        self.base = float(study.user_attrs.get(ELAPSED_ATTR, 0.0) or 0.0)
        self.t0 = time.monotonic()
        self.reason: Optional[str] = None

    def elapsed(self) -> float:
        return self.base + time.monotonic() - self.t0

    def save(self) -> None:
        """Store the elapsed time (after every trial, after every run when ``tune.timeout`` is set, and at the
        end)."""
        try:
            stored = float(self.study.user_attrs.get(ELAPSED_ATTR, 0.0) or 0.0)
            self.study.set_user_attr(ELAPSED_ATTR, round(max(stored, self.elapsed()), 3))
        except Exception:
            log.warning("could not store the tune's elapsed time", exc_info=True)

    def runs_used(self, open_sessions: Iterable[Any]) -> int:
        """Runs finished in every trial of the study (a re-queued cv counted once) plus the runs still
        planned in this process's open cvs."""
        per_cv: dict[Any, int] = {}
        for t in self.study.get_trials(deepcopy=False):
            n = int(t.user_attrs.get(N_RUNS_ATTR, 0) or 0)
            key = t.user_attrs.get("cv_index", t.number)
            per_cv[key] = max(per_cv.get(key, 0), n)
        return sum(per_cv.values()) + sum(planned_runs_left(s) for s in open_sessions)

    def exhausted(self, open_sessions: Iterable[Any]) -> Optional[str]:
        """Why no new cv may start (and remember it), or ``None``."""
        if self.timeout is not None and self.elapsed() >= self.timeout:
            self.reason = (f"tune.timeout of {self.timeout:g} s reached ({self.elapsed():.0f} s elapsed over all "
                           f"sessions of this tune)")
        elif self.max_runs is not None:
            used = self.runs_used(open_sessions)
            if used >= self.max_runs:
                self.reason = f"tune.max_runs of {self.max_runs} reached ({used} training runs started)"
        return self.reason


def check_budget(timeout: Any, max_runs: Any) -> None:
    """Reject a budget that is not positive (one line naming the key)."""
    if timeout is not None and not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
                                    and math.isfinite(timeout) and timeout > 0):
        raise ConfigError(f"`tune.timeout` must be a number of seconds > 0, or null for no limit; got {timeout!r}")
    if max_runs is not None and not (isinstance(max_runs, int) and not isinstance(max_runs, bool)
                                     and max_runs > 0):
        raise ConfigError(f"`tune.max_runs` must be an int > 0, or null for no limit; got {max_runs!r}")


# -- warm start ---------------------------------------------------------------------------------------------

def warm_start_points(spec: Any, top_k: int, space: Any,
                      load_tune: Callable[[Path], tuple[Any, Optional[Mapping[str, Any]]]]
                      ) -> list[tuple[dict[str, Any], str]]:
    """The parameter sets to enqueue first, each with where it came from, validated against ``space``.

    Args:
        spec: ``tune.warm_start``: an earlier tune folder (its best ``top_k`` stable COMPLETE trials), or a
            list of mappings of dotted config keys to values.
        top_k: how many trials of an earlier tune.
        space: the new :class:`~tunecv.search_space.SearchSpace`.
        load_tune: an earlier tune folder → its Optuna study and its search-space fingerprint (or ``None``).

    Raises:
        ConfigError: a malformed spec, an unreadable tune, or a value outside the new search space.
    """
    if spec is None:
        return []
    if isinstance(spec, (str, Path)):
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise ConfigError(f"`tune.warm_start_top_k` must be an int >= 1; got {top_k!r}")
        points = _points_of_tune(Path(spec), top_k, space, load_tune)
    elif isinstance(spec, list):
        points = []
        for i, values in enumerate(spec):
            where = f"tune.warm_start[{i}]"
            if not isinstance(values, Mapping) or not values:
                raise ConfigError(f"`{where}` must be a mapping of dotted config keys to values; got {values!r}")
            unknown = [k for k in values if k not in space.params]
            if unknown:
                raise ConfigError(f"`{where}`: `{unknown[0]}` is not a key of the search space; valid: "
                                  f"{', '.join(space.params)}")
            points.append((dict(values), where))
    else:
        raise ConfigError(f"`tune.warm_start` must be an earlier tune folder or a list of mappings of dotted "
                          f"config keys to values; got {spec!r}")
    for values, where in points:
        for key, value in values.items():
            if value is None and getattr(space, "conditional", False):
                continue  # a parameter inactive in that trial
            problem = space.params[key].check_value(value)
            if problem:
                raise ConfigError(f"`{where}`: `{key}` {problem} (the new search space)")
    return points


def _points_of_tune(folder: Path, top_k: int, space: Any,
                    load_tune: Callable[[Path], tuple[Any, Optional[Mapping[str, Any]]]]
                    ) -> list[tuple[dict[str, Any], str]]:
    import optuna

    if not (folder / CONFIG_FILE).is_file():
        raise ConfigError(f"`tune.warm_start` must be an earlier tune folder (holding {CONFIG_FILE}) or a list of "
                          f"values; got {str(folder)!r}")
    try:
        study, fingerprint = load_tune(folder)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"`tune.warm_start`: cannot open the study of {folder}: {first}") from None
    if len(study.directions) > 1:
        raise ConfigError(f"`tune.warm_start`: {folder} is a multi-objective tune (no single best); list the "
                          f"values to start from instead")
    old_space = None
    if fingerprint is not None:
        old_space = type(space).from_mapping({"hyperparameters": dict(fingerprint.get("hyperparameters", {}))},
                                             str(folder))
    direction = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
    done = ranked_trials(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)), direction)
    points = []
    for t in done[:top_k]:
        values = t.user_attrs.get(CONFIG_VALUES_ATTR)
        if not isinstance(values, Mapping):
            values = (old_space.params_from_trial(t.params, t.distributions) if old_space is not None
                      else dict(t.params))
        dropped = [k for k in values if k not in space.params]
        if dropped:
            log.info("warm start from %s trial %d: %s not in the new search space (left out)", folder, t.number,
                     ", ".join(dropped))
        points.append(({k: v for k, v in values.items() if k in space.params}, f"{folder} trial {t.number}"))
    if not points:
        raise ConfigError(f"`tune.warm_start`: {folder} has no COMPLETE trial with a stable score to start from")
    return points
