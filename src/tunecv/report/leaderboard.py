"""The summary of a tune folder: its runs (read from its cvs), its Optuna study, the leaderboard ranked by
the tune's own rule, the best trial, the paired statistics against it, the retrain run."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from tunecv import naming
from tunecv.artifacts.files import RUN_INFOS_FILE, STORAGE_FILE
from tunecv.artifacts.run_info import read_run_info
from tunecv.errors import TunecvError
from tunecv.report.folder import (
    _direction,
    _first,
    _metric_names,
    _metric_summary,
    _read_config,
    _run_scores,
    _scoring,
)
from tunecv.stats import ALPHA, few_pairs_line, mean_interval, paired_comparison

TOP_COMPARED = 10  # trials compared with the best, pair by pair

# Order of trial states on the leaderboard: finished trials by score first, then the rest.
_STATE_ORDER = {"complete": 0, "running": 2, "waiting": 2, "pruned": 3, "fail": 4, "failed": 4}


def _tune_rows(root: Path) -> Any:
    """Every run of the tune, read from its cvs' files (fresher than the tune's file while it runs)."""
    import pandas as pd

    # lazy: it imports pandas; `import tunecv.report` stays light
    from tunecv.results import read_run_infos, read_tune_table, run_infos_frame

    frames = []
    for path in sorted(root.glob(f"*/{RUN_INFOS_FILE}")):
        with contextlib.suppress(TunecvError):  # unreadable: reported by the tune's own file below
            frame = read_run_infos(path)
            if len(frame):
                frames.append(frame)
    tune_file = read_tune_table(root)  # the compacted table and the parts not in it yet
    if not frames:
        return tune_file
    df = run_infos_frame(pd.concat(frames, ignore_index=True).to_dict("records"))
    if len(tune_file) and "trial_state" in tune_file.columns and "trial" in tune_file.columns:
        states = {int(t): s for t, s in zip(tune_file["trial"], tune_file["trial_state"])
                  if pd.notna(t) and isinstance(s, str)}
        df["trial_state"] = [states.get(int(t), s) if pd.notna(t) else s
                             for t, s in zip(df["trial"], df["trial_state"])]
    return df


def _load_study(root: Path, cfg: Mapping[str, Any]) -> tuple[Any, Optional[str]]:
    """The tune's Optuna study, or ``(None, reason)``."""
    # lazy: tunecv.tune pulls in cv, placement and the executors; `import tunecv.report` stays light (a run's report needs none of it)
    from tunecv.tune import default_storage, open_storage

    url = (cfg.get("tune") or {}).get("storage")
    if not url:
        if not (root / STORAGE_FILE).is_file():
            return None, f"no Optuna storage: {root / STORAGE_FILE} does not exist"
        url = default_storage(root)
    try:
        import optuna

        return optuna.load_study(study_name=root.name, storage=open_storage(url)), None
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, f"cannot load the study {root.name!r}: {first}"


def _tune_summary(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    cfg = _read_config(root)
    specs, strategy = _scoring(cfg)
    direction = _direction(specs)
    df = _tune_rows(root)
    study, study_note = _load_study(root, cfg)
    trials = _study_trials(study, root.name)
    board = _leaderboard(df, trials, _metric_names(specs))
    _sort_leaderboard(board, direction)
    multi = study is not None and len(study.directions) > 1
    best = None if multi else _best_entry(board, direction)
    statistics = _paired_statistics(df, board, best, {"scoring_metric": specs, "multi_score_strategy": strategy})
    summary: dict[str, Any] = {
        "kind": "tune", "path": str(root), "tune_name": root.name,
        "scoring_metric": specs, "multi_score_strategy": strategy, "direction": direction,
        "n_trials": (cfg.get("tune") or {}).get("n_trials"), "counts": _trial_counts(trials, board),
        "best": None if best is None else {"cv_name": best["cv_name"], "trial": best["trial"],
                                           "score": best["score"], "params": best["params"]},
        "leaderboard": board,
        "runs": {"completed": int((df["status"] == "completed").sum()) if len(df) else 0,
                 "failed": int((df["status"] == "failed").sum()) if len(df) else 0, "recorded": len(df)},
        "storage": None if study is None else "loaded",
        "statistics": statistics,
        "notes": [study_note] if study_note else [],
    }
    if multi:
        summary["objectives"] = list((cfg.get("tune") or {}).get("objectives") or [])
        with contextlib.suppress(Exception):
            summary["pareto_trials"] = sorted(t.number for t in study.best_trials)
    retrain = _retrain_summary(root)
    if retrain:
        summary["retrain"] = retrain
    by_trial = sorted(board, key=lambda e: (e["trial"] is None, e["trial"] or 0))
    ctx = {"cfg": cfg, "df": df, "study": study, "runs": _best_cvs_runs(root, df, board),
           "order": [e["cv_name"] for e in by_trial]}
    return summary, ctx


def _leaderboard(df: Any, trials: Mapping[int, Mapping[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """One entry per cv of the tune (from its runs), and one per trial with no finished run yet (running,
    or failed early); in no particular order."""
    # lazy: it imports pandas; `import tunecv.report` stays light
    from tunecv.results import hyperparameter_columns

    hyper = hyperparameter_columns(df)
    board: list[dict[str, Any]] = []
    seen_trials: set[int] = set()
    for cv_name, group in (df.groupby("cv_name", sort=False) if len(df) else []):
        trial = _first(group, "trial")
        trial = int(trial) if trial is not None else None
        state = trials[trial]["state"] if trial in trials else (_first(group, "trial_state") or "running")
        if trial is not None:
            seen_trials.add(trial)
        stats = _metric_summary(group, names)
        board.append({
            "cv_name": cv_name, "trial": trial, "state": state,
            "score": _first(group, "score"), "score_is_unstable": _first(group, "score_is_unstable"),
            "metrics": {m: stats[m] for m in names if m in stats},
            "runs_completed": int((group["status"] == "completed").sum()),
            "runs_failed": int((group["status"] == "failed").sum()), "runs": len(group),
            "params": {k: _first(group, k) for k in hyper if group[k].notna().any()},
            "feasible": trials.get(trial, {}).get("feasible") if trial is not None else None,
        })
    for number, t in trials.items():  # trials with no finished run yet (running, or failed early)
        if number not in seen_trials and t["state"] in ("running", "fail"):
            board.append({"cv_name": t["cv_name"], "trial": number, "state": t["state"], "score": None,
                          "score_is_unstable": None, "metrics": {}, "runs_completed": 0, "runs_failed": 0,
                          "runs": 0, "params": t["params"], "feasible": t.get("feasible")})
    return board


def _sort_leaderboard(board: list[dict[str, Any]], direction: str) -> None:
    """Sort in place and number the ranks: stable COMPLETE trials by tunecv's order of trials
    (:func:`tunecv._trial_records.rank_key`), then unstable ones, running, pruned and failed ones."""
    # lazy: tunecv._trial_records pulls in search_space and config; `import tunecv.report` stays light (a run's report needs none of it)
    from tunecv import _trial_records as records

    def key(entry: dict[str, Any]) -> tuple:
        group = _STATE_ORDER.get(entry["state"], 5)
        if group == 0 and (entry["score_is_unstable"] or entry.get("feasible") is False):
            group = 1
        score = entry["score"]
        finite = isinstance(score, (int, float)) and math.isfinite(score)
        return (group, 0 if finite else 1, *records.rank_key(score, entry["trial"], direction))

    board.sort(key=key)
    for rank, entry in enumerate(board, 1):
        entry["rank"] = rank


def _best_entry(board: Sequence[dict[str, Any]], direction: str) -> Optional[dict[str, Any]]:
    """The leaderboard entry of the best trial, by the tune's own rule (:func:`tunecv._trial_records.rank`)."""
    # lazy: tunecv._trial_records pulls in search_space and config; `import tunecv.report` stays light (a run's report needs none of it)
    from tunecv import _trial_records as records

    feasible = [e for e in board if e.get("feasible") is not False]  # tune.constraints
    ranked = records.rank(feasible, direction, lambda e: (e["state"], e["score"], e["score_is_unstable"], e["trial"]))
    return ranked[0] if ranked else None


def _retrain_summary(root: Path) -> Optional[dict[str, Any]]:
    """Where the tune's retrain run is, its status and metrics (``None``: no retrain)."""
    retrain = naming.find_run_dirs(root, naming.retrain_name(root.name))
    if not retrain:
        return None
    info = read_run_info(retrain[-1])
    return {"path": str(retrain[-1]), "status": info.get("status", "running"), "metrics": info.get("metrics") or {}}


def _best_cvs_runs(root: Path, df: Any, board: Sequence[Mapping[str, Any]]) -> list[tuple[str, Path, str]]:
    """The runs of the (up to) three best cvs, for the learning curves: (run name, folder, cv name)."""
    top = [e["cv_name"] for e in board if e["runs_completed"]][:3]
    if not len(df):
        return []
    return [(rec["run_name"], root / rec["cv_name"] / f"{rec['run_name']}-{rec['run_id']}", rec["cv_name"])
            for rec in df[df["cv_name"].isin(top)].to_dict("records")]


def _study_trials(study: Any, tune_name: str) -> dict[int, dict[str, Any]]:
    if study is None:
        return {}
    out = {}
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("overflow"):
            continue  # asked past n_trials by a concurrent worker and given back: not a real trial
        index = int(t.user_attrs.get("cv_index", t.number))
        cv_name = t.user_attrs.get("cv_name") or naming.cv_name(tune_name, index)
        # config_values: the values the model used (trial.params holds x, not n - x, for reversed_loguniform)
        params = t.user_attrs.get("config_values")
        out[t.number] = {"state": t.state.name.lower(), "cv_name": cv_name, "feasible": t.user_attrs.get("feasible"),
                         "params": dict(params) if isinstance(params, Mapping) else dict(t.params)}
    return out


def _trial_counts(trials: Mapping[int, Mapping[str, Any]],
                  board: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    states = [t["state"] for t in trials.values()] if trials else [e["state"] for e in board]
    counts = {"completed": states.count("complete"), "pruned": states.count("pruned"),
              "failed": states.count("fail") + states.count("failed"), "running": states.count("running")}
    counts["total"] = sum(counts.values())
    return counts


def _paired_statistics(df: Any, board: list[dict[str, Any]], best: Optional[dict[str, Any]],
                       scoring: Mapping[str, Any]) -> dict[str, Any]:
    """Per leaderboard entry its score interval; for the top trials, the paired comparison with the best.

    Adds ``score_interval`` to every entry, and ``vs_best`` (see :class:`tunecv.stats.PairedComparison`)
    and ``indistinguishable_from_best`` to the best :data:`TOP_COMPARED` others; returns the method and
    the comparison of the best with the runner-up (the next stable complete trial).
    """
    per_cv: dict[str, dict[tuple[int, int], float]] = {}
    if len(df):
        scores = _run_scores(df, scoring)
        for rec, value in zip(df.to_dict("records"), scores, strict=True):
            if rec.get("fold") is None or rec.get("seed") is None or not math.isfinite(value):
                continue
            per_cv.setdefault(rec["cv_name"], {})[(int(rec["fold"]), int(rec["seed"]))] = value
    for entry in board:
        entry["score_interval"] = mean_interval(list(per_cv.get(entry["cv_name"], {}).values())).to_dict()
    out: dict[str, Any] = {
        "decision": f"told apart from the best when the {1 - ALPHA:.0%} paired t interval of the difference "
                    f"excludes 0 (a two-sided paired t-test at {ALPHA:g}), over the (fold, seed) pairs both "
                    f"trials finished",
        "test": "Wilcoxon signed-rank, two-sided (scipy.stats.wilcoxon, zero_method='zsplit'), shown beside it; "
                "p_can_reach_alpha false: too few pairs for it to ever reach alpha",
        "interval": f"{1 - ALPHA:.0%} Student-t interval of the mean",
        "alpha": ALPHA, "difference": "trial - best, in score units", "best": None, "runner_up": None,
        "few_pairs": None,
    }
    if best is None:
        return out
    reference = per_cv.get(best["cv_name"], {})
    out["best"] = best["cv_name"]
    compared = 0
    for entry in board:
        if entry is best or not per_cv.get(entry["cv_name"]) or compared >= TOP_COMPARED:
            continue
        comparison = paired_comparison(per_cv[entry["cv_name"]], reference)
        entry["vs_best"] = comparison.to_dict()
        entry["indistinguishable_from_best"] = not comparison.distinguishable
        compared += 1
        if (out["runner_up"] is None and entry["state"] == "complete" and not entry["score_is_unstable"]
                and entry.get("feasible") is not False):
            out["runner_up"] = {"cv_name": entry["cv_name"], "trial": entry["trial"], **comparison.to_dict()}
    out["few_pairs"] = few_pairs_line([e["vs_best"]["n_pairs"] for e in board if e.get("vs_best")])
    return out
