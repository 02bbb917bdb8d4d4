"""A tune's Optuna study rebuilt from what the tune wrote besides it, when the study is lost.

A tune records every trial twice: in its study, and in its folder (each cv's ``run_infos.parquet``, the
tune's table and its parts, the run folders). When the study is missing or cannot be opened (the
default ``optuna.db`` deleted, truncated, overwritten), ``--resume`` rebuilds it from the folder with
Optuna's public ``create_trial`` / ``add_trial``:

- every trial keeps its number (a number the folder does not know, such as a duplicate proposal, becomes
  a FAIL trial with the user attr ``tunecv:lost``), so cv indexes and the ``trial`` column stay right;
- its parameters with the distributions the search space gives (the space suggests them again on an
  ``optuna.trial.FixedTrial`` of the recorded values);
- its state (``trial_state``), its value (the cv score, or the objectives), its intermediate values and
  user attrs as :class:`tunecv._trial_records.TrialRecorder` writes them (replayed over the recorded runs);
- the per-epoch curves of its runs (user attr ``epoch_scores``, read back from each run's
  ``epoch_scores.json``), which in-run pruning (:mod:`tunecv.pruning`) compares later runs with;
- a trial that was still running is failed and its parameters queued again with its cv index, as a
  resume does with trials a crash left running: its cv keeps its finished runs.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Optional

from tunecv import _trial_records as records
from tunecv.artifacts.files import RUN_INFOS_FILE
from tunecv.pruning import EPOCH_SCORES_ATTR, run_curves
from tunecv.results import read_run_infos, read_tune_table

log = logging.getLogger("tunecv.tune")

LOST_ATTR = "tunecv:lost"
REBUILT_ATTR = "tunecv:rebuilt_from_artifacts"


class _Collect:
    """Stands in for an ``optuna.Trial`` while :class:`~tunecv._trial_records.TrialRecorder` replays a cv."""

    def __init__(self) -> None:
        self.user_attrs: dict[str, Any] = {}
        self.intermediate_values: dict[int, float] = {}

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value

    def report(self, value: float, step: int) -> None:
        self.intermediate_values[int(step)] = float(value)


def _plain(value: Any) -> Any:
    """A value read from parquet as a plain Python value (numpy scalars unwrapped, NA as None)."""
    import pandas as pd

    if isinstance(value, (list, tuple, dict)):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value.item() if hasattr(value, "item") else value


def recorded_trials(folder: Path, tune_name: str) -> dict[int, Any]:
    """Trial number → the rows of its cv (a DataFrame), from the tune's table, its parts and its cv folders.

    The tune's table and parts hold the trials that were told, with their final state; a cv folder's own
    table adds the trial that was running it when the tune stopped.
    """
    frames: dict[int, Any] = {}

    def add(df: Any, skip: frozenset[int] | set[int] = frozenset()) -> None:
        if not len(df) or "trial" not in df.columns:
            return
        for number, rows in df.groupby(df["trial"].astype("Int64"), dropna=True):
            if int(number) not in skip:
                frames[int(number)] = rows.reset_index(drop=True)

    try:
        add(read_tune_table(folder))
    except Exception as exc:  # a damaged table: the cv folders still hold every trial's rows
        log.warning("rebuilding the study: cannot read the tune table of %s (%s); using the cv folders", folder, exc)
    pattern = re.compile(rf"^{re.escape(tune_name)}-cv\d+$")
    told = set(frames)
    for cv_dir in sorted(p for p in folder.iterdir() if p.is_dir() and pattern.match(p.name)):
        try:
            add(read_run_infos(cv_dir / RUN_INFOS_FILE), skip=told)
        except Exception as exc:
            log.warning("rebuilding the study: cannot read %s (%s)", cv_dir / RUN_INFOS_FILE, exc)
    for number, rows in list(frames.items()):
        if not rows["cv_name"].notna().any():
            del frames[number]
        elif "trial_state" in rows.columns:
            rows["trial_state"] = rows["trial_state"].astype(object).where(rows["trial_state"].notna(), None)
    return frames


def _cv_index(cv_name: str, number: int) -> int:
    match = re.search(r"-cv(\d+)$", cv_name)
    return int(match.group(1)) if match else number


def rebuild_study(study: Any, plan: Any, folder: Path, new_session: Callable[[dict[str, Any], str], Any],
                  run_score: Callable[[Any, Mapping[str, Any]], Any],
                  objective_value: Callable[[Any, str], float]) -> Optional[str]:
    """Add to the empty ``study`` every trial the tune's folder records; a one-line summary, or ``None``
    when the folder records no trial.

    Args:
        study: the study just created in place of the lost one.
        plan: the tune's plan (``cfg``, ``space``, ``directions``, ``tune_name``).
        folder: the tune's folder.
        new_session: ``(config values, cv name) -> CrossValidation``, the trial's cv opened with ``resume``
            (for its plan of runs and its scores).
        run_score: ``(cv, row) -> float | None``, one run's own score (as the tune reports it).
        objective_value: ``(run_infos, metric) -> float``, one objective of a multi-objective tune.
    """
    import optuna
    from optuna.trial import TrialState

    trials = recorded_trials(folder, plan.tune_name)
    if not trials:
        return None
    counts = {"complete": 0, "pruned": 0, "fail": 0, "running": 0, "lost": 0}
    requeue: list[tuple[dict[str, Any], int, int]] = []
    for number in range(max(trials) + 1):
        rows = trials.get(number)
        frozen, state = None, "lost"
        if rows is not None:
            try:
                frozen, state, params, cv_index = _frozen_trial(rows, number, plan, new_session, run_score,
                                                                objective_value)
            except Exception as exc:  # a trial whose record does not fit the space: its number is kept
                log.warning("rebuilding the study: trial %d cannot be rebuilt (%s); recorded as failed", number, exc)
                frozen, state = None, "lost"
            if state == "running":
                requeue.append((params, cv_index, number))
        if frozen is None:
            frozen = optuna.trial.create_trial(state=TrialState.FAIL,
                                               user_attrs={LOST_ATTR: "lost with the study" if state == "lost"
                                                           else "running when the study was lost: queued again"})
        study.add_trial(frozen)
        counts[state] += 1
    for params, cv_index, number in requeue:
        study.enqueue_trial(params, user_attrs={"cv_index": cv_index, "requeued_from": number}, skip_if_exists=False)
    study.set_user_attr(REBUILT_ATTR, {k: v for k, v in counts.items() if v})
    records.record_best(study, records.best_trial(study, plan.directions), plan.directions)
    parts = [f"{counts[k]} {k}" for k in ("complete", "pruned", "fail") if counts[k]]
    if counts["running"]:
        parts.append(f"{counts['running']} running (queued again, finished runs kept)")
    if counts["lost"]:
        parts.append(f"{counts['lost']} not in the folder (recorded as failed)")
    return ", ".join(parts) or "no trial"


def _frozen_trial(rows: Any, number: int, plan: Any, new_session: Callable[..., Any],
                  run_score: Callable[..., Any], objective_value: Callable[..., float]) -> tuple[Any, str, dict[str, Any], int]:
    """The ``FrozenTrial`` of one recorded trial, its state (lower case), its params and its cv index."""
    import optuna
    from optuna.trial import TrialState

    space = plan.space
    first = rows.iloc[0]
    cv_name = str(first["cv_name"])
    cv_index = _cv_index(cv_name, number)
    recorded = {k: _plain(first[k]) for k in space.params if k in rows.columns}
    fixed = optuna.trial.FixedTrial(space.to_trial_params(recorded), number=number)
    values = space.suggest(fixed)  # the config values, constants included
    params, distributions = dict(fixed.params), dict(fixed.distributions)
    state = str(first.get("trial_state") or "running").lower()
    if state not in ("complete", "pruned", "fail"):
        return None, "running", params, cv_index

    # Replay the recorder over the cv's runs, in plan order (as a resumed cv reports the runs it kept).
    session = new_session(values, cv_name)
    index = {run.name: run.index for run in session.runs}
    session.rows = {index[r["run_name"]]: dict(r) for r in rows.to_dict("records")
                    if r.get("status") in ("completed", "failed") and r.get("run_name") in index}
    collect = _Collect()
    recorder = records.TrialRecorder(collect, session, lambda row: run_score(session, row),
                                     report=len(plan.directions) == 1)
    recorder.adopt()
    score, unstable = session.score()
    recorder.before_tell(score, unstable)
    attrs = {**collect.user_attrs, records.CONFIG_VALUES_ATTR: values, "cv_index": cv_index}
    curves = run_curves(session.runs)  # in-run pruning compares later runs with these per-epoch curves
    if curves:
        attrs[EPOCH_SCORES_ATTR] = curves
    value: Any = None
    values_list: Any = None
    trial_state = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "fail": TrialState.FAIL}[state]
    if state == "complete":
        if len(plan.directions) > 1:
            frame = session.frame()
            values_list = [objective_value(frame, m) for m in plan.cfg.tune.objectives or []]
        else:
            value = float(score)
        if not all(math.isfinite(v) for v in (values_list or [value])):
            trial_state, state, value, values_list = TrialState.FAIL, "fail", None, None
    elif state == "pruned" and collect.intermediate_values:
        value = collect.intermediate_values[max(collect.intermediate_values)]  # as Optuna gives a pruned trial
    if state == "fail" and "error" not in attrs:
        attrs["error"] = session.failure_summary()[:1000]
    frozen = optuna.trial.create_trial(state=trial_state, value=value, values=values_list, params=params,
                                       distributions=distributions, user_attrs=attrs,
                                       intermediate_values=collect.intermediate_values)
    return frozen, state, params, cv_index

