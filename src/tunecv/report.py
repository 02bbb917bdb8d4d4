"""``tunecv report PATH``: tables and plots of what a run, a cv or a tune left (also while it is running).

:func:`report` reads only the artifact folder: ``run_info.json`` of a run, ``run_infos.parquet`` of a cv,
the cvs' ``run_infos.parquet`` and the Optuna study of a tune, and the runs' metrics CSVs. It prints rich
tables (or JSON for scripts), writes PNG plots into ``PATH/report/`` (and Optuna's interactive HTML plots
when plotly is installed), and returns the same summary as a JSON-able dict.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from tunecv.artifacts.files import (
    CONFIG_FILE,
    CSV_DIR,
    METRICS_FILE,
    REPORT_DIR,
    RUN_INFO_FILE,
    RUN_INFOS_FILE,
    STORAGE_FILE,
)
from tunecv.artifacts.kinds import folder_kind, is_level_folder
from tunecv.artifacts.run_info import has_run_info, read_run_info
from tunecv.errors import ConfigError, TunecvError

__all__ = ["REPORT_DIR", "report"]

log = logging.getLogger(__name__)

TABLE_ROWS = 20  # leaderboard rows printed; --format json has all
TOP_COMPARED = 10  # trials compared with the best, pair by pair

# Order of trial states on the leaderboard: finished trials by score first, then the rest.
_STATE_ORDER = {"complete": 0, "running": 2, "waiting": 2, "pruned": 3, "fail": 4, "failed": 4}


def report(path: str | Path, fmt: str = "table", plots: bool = True, console: Any = None) -> dict[str, Any]:
    """Summarize a run, cv or tune folder: print it, write its plots, return the summary.

    Args:
        path: a run folder (holding ``run_info.json``), a cv folder or a tune folder (holding
            ``run_infos.parquet``; a running tune before its first cv ended holds its search space).
        fmt: ``table`` (rich tables), ``json`` (only the summary, as JSON, on stdout) or ``none`` (print
            nothing; for Python callers that only want the returned summary).
        plots: write the plots into ``PATH/report/``.
        console: a ``rich.console.Console`` for the tables (default: stdout).

    Returns:
        The summary: ``kind`` (run | cv | tune), the level's names, metrics (mean, std, count), the score;
        for a cv its ``runs``; for a tune its ``leaderboard``, ``best`` and trial ``counts``; the ``plots``
        written (name → file) and the ``skipped_plots`` (name → reason).

    Raises:
        ConfigError: ``path`` is not a run, cv or tune folder, or ``fmt`` is unknown.
    """
    if fmt not in ("table", "json", "none"):
        raise ConfigError(f"`--format` must be one of table, json; got {fmt!r}")
    root = Path(path)
    kind = _kind(root)
    if kind == "nested":  # its own small section: the outer folds (report an outer tune for its plots)
        return _report_nested(root, fmt, console)
    if kind == "run":
        summary, ctx = _run_summary(root)
    elif kind == "cv":
        summary, ctx = _cv_summary(root)
    else:
        summary, ctx = _tune_summary(root)
    summary["plots"], summary["skipped_plots"] = {}, {}
    if plots:
        summary["plots"], summary["skipped_plots"] = _write_plots(root, kind, summary, ctx)
    summary = _jsonable(summary)
    if fmt == "json":
        print(json.dumps(summary, indent=2, allow_nan=False))
    elif fmt == "table":
        _print(summary, console)
    return summary


# -- what the folder is -------------------------------------------------------------------------------------

def _kind(root: Path) -> str:
    kind = folder_kind(root)
    if kind is not None:
        return kind
    if not root.exists():
        what = "does not exist"
    elif not root.is_dir():
        what = "is a file"
    else:
        what = "holds neither"
        below = _reportable_below(root)
        if below:
            what += f"; folders below it that do: {', '.join(below)}"
    raise ConfigError(f"`PATH` must be a run, cv or tune folder (one holding {RUN_INFO_FILE} or "
                      f"{RUN_INFOS_FILE}); got {str(root)!r}, which {what}")


def _report_nested(root: Path, fmt: str, console: Any) -> dict[str, Any]:
    from tunecv.nested import print_summary, report_summary

    summary = _jsonable(report_summary(root))
    summary.pop("plan", None)
    if fmt == "json":
        print(json.dumps(summary, indent=2, allow_nan=False))
    elif fmt == "table":
        print_summary(summary, console)
    return summary


def _reportable_below(root: Path, limit: int = 5) -> list[str]:
    """Up to ``limit`` tune / cv / run folders one or two levels below ``root`` (an artifact folder)."""
    found = []
    for child in sorted(root.glob("*/")) + sorted(root.glob("*/*/")):
        if is_level_folder(child) and not any(str(child).startswith(str(root / f) + "/") for f in found):
            found.append(str(child.relative_to(root)))
        if len(found) >= limit:
            break
    return found


def _read_config(folder: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load((folder / CONFIG_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _scoring(cfg: Mapping[str, Any]) -> tuple[list[str], str]:
    cv = cfg.get("cv") or {}
    metrics = cv.get("scoring_metric") or ["val/loss:lower"]
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    return metrics, str(cv.get("multi_score_strategy") or "harmonic")


def _metric_names(specs: Sequence[str]) -> list[str]:
    from tunecv.scoring import parse_metric

    return [parse_metric(s)[0] for s in specs]


def _direction(specs: Sequence[str]) -> str:
    from tunecv.scoring import score_direction

    try:
        return score_direction(specs)
    except ConfigError:
        return "maximize"


# -- run ----------------------------------------------------------------------------------------------------

def _run_summary(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from tunecv import naming
    from tunecv.tracking import offline_runs

    cfg = _read_config(root)
    info = read_run_info(root)
    parts = naming.split_run_dir_name(root.name) or (root.name, None)
    specs, _ = _scoring(cfg)
    summary = {
        "kind": "run", "path": str(root),
        "run_name": info.get("name", parts[0]), "run_id": info.get("run_id", parts[1]),
        "status": info.get("status") or _job_state(root), "error": info.get("error"),
        "fold": info.get("fold", cfg.get("fold")), "seed": info.get("seed", cfg.get("seed")),
        "duration": info.get("duration"), "started_at": info.get("started_at"),
        "finished_at": info.get("finished_at"), "checkpoint": info.get("checkpoint"),
        "metrics": dict(sorted((info.get("metrics") or {}).items())),
        "scoring_metric": specs,
        "wandb_offline_runs": [str(p) for p in offline_runs(root)],
    }
    return summary, {"cfg": cfg, "runs": [(summary["run_name"], root, summary["run_name"])]}


# -- cv -----------------------------------------------------------------------------------------------------

def _cv_summary(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from tunecv.results import read_run_infos

    cfg = _read_config(root)
    df = read_run_infos(root / RUN_INFOS_FILE)
    specs, strategy = _scoring(cfg)
    names = _metric_names(specs)
    cv_name = _first(df, "cv_name") or root.name
    score = _first(df, "score")
    unstable = _first(df, "score_is_unstable")
    split = cfg.get("split") or {}
    n_folds = (cfg.get("cv") or {}).get("n_folds") or _fold_count(split)
    n_seeds = (cfg.get("cv") or {}).get("n_seeds")
    planned = n_folds * n_seeds if isinstance(n_folds, int) and isinstance(n_seeds, int) else None
    runs = _run_rows(df)
    summary = {
        "kind": "cv", "path": str(root), "cv_name": cv_name, "tune_name": _first(df, "tune_name"),
        "scoring_metric": specs, "multi_score_strategy": strategy, "direction": _direction(specs),
        "score": score, "score_is_unstable": unstable,
        "counts": _status_counts(df, planned),
        "metrics": _metric_summary(df, names),
        "runs": runs,
        "jobs": _unfinished_jobs(root, runs),
    }
    for state in ("queued", "running"):
        summary["counts"][state] = sum(1 for j in summary["jobs"] if j["state"] == state)
    run_dirs = [(r["run_name"], root / f"{r['run_name']}-{r['run_id']}", r["run_name"]) for r in runs]
    return summary, {"cfg": cfg, "df": df, "runs": run_dirs}


def _job_state(run_dir: Path) -> str:
    """A run without a result: ``running``, or the state of the job its executor recorded (``queued``)."""
    from tunecv.executors._registry import job_states

    return job_states([run_dir]).get(run_dir, "running")


def _unfinished_jobs(root: Path, runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Runs not recorded yet whose executor left a job (SLURM, ...): its state from the scheduler."""
    from tunecv.executors._registry import job_states

    recorded = {f"{r['run_name']}-{r['run_id']}" for r in runs}
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and p.name not in recorded
               and has_run_info(p)]
    return [{"run": folder.name, "state": state} for folder, state in job_states(folders).items()]


def _fold_count(split: Mapping[str, Any]) -> Any:
    """:func:`tunecv.splits.fold_count` of a ``split`` section read from a ``config.yaml``."""
    from tunecv.config import SplitConfig
    from tunecv.splits import fold_count

    try:
        return fold_count(SplitConfig(**split))
    except TypeError:  # a config.yaml written by another version: keys this one does not know
        return split.get("total_folds")


def _first(df: Any, column: str) -> Any:
    if column not in df.columns:
        return None
    values = df[column].dropna()
    return values.iloc[0] if len(values) else None


def _status_counts(df: Any, planned: Optional[int]) -> dict[str, Any]:
    status = df["status"].astype(object) if len(df) else []
    counts = {s: int(sum(1 for v in status if v == s)) for s in ("completed", "failed", "pruned")}
    counts["recorded"] = len(df)
    counts["planned"] = planned
    return counts


def _metric_summary(df: Any, first: Sequence[str]) -> dict[str, dict[str, Any]]:
    """mean, std and count of every metric over the completed runs, the scoring metrics first."""
    from tunecv.results import metric_columns
    from tunecv.scoring import summarize_metrics

    names = list(dict.fromkeys([*first, *sorted(metric_columns(df))]))
    table = summarize_metrics(df, names)
    return {name: {"mean": row["mean"], "std": row["std"], "count": int(row["count"])}
            for name, row in table.iterrows()}


def _run_rows(df: Any) -> list[dict[str, Any]]:
    from tunecv.results import metric_columns

    metrics = metric_columns(df)
    rows = []
    for rec in df.sort_values(["seed", "fold"], kind="stable").to_dict("records"):
        rows.append({
            "run_name": rec.get("run_name"), "run_id": rec.get("run_id"), "fold": rec.get("fold"),
            "seed": rec.get("seed"), "status": rec.get("status"), "duration": rec.get("duration"),
            "error": rec.get("error"), "is_unstable": rec.get("is_unstable"),
            "metrics": {m: rec.get(m) for m in metrics},
        })
    return rows


# -- tune ---------------------------------------------------------------------------------------------------

def _tune_rows(root: Path) -> Any:
    """Every run of the tune, read from its cvs' files (fresher than the tune's file while it runs)."""
    import pandas as pd

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
    from tunecv import _trial_records as records

    feasible = [e for e in board if e.get("feasible") is not False]  # tune.constraints
    ranked = records.rank(feasible, direction, lambda e: (e["state"], e["score"], e["score_is_unstable"], e["trial"]))
    return ranked[0] if ranked else None


def _retrain_summary(root: Path) -> Optional[dict[str, Any]]:
    """Where the tune's retrain run is, its status and metrics (``None``: no retrain)."""
    from tunecv import naming

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
    from tunecv import naming

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
    from tunecv.stats import ALPHA, few_pairs_line, mean_interval, paired_comparison

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


# -- plots --------------------------------------------------------------------------------------------------

def _write_plots(root: Path, kind: str, summary: dict[str, Any],
                 ctx: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # the CLI, a script: draw off-screen
        matplotlib.use("Agg")
    out_dir = root / REPORT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    skipped: dict[str, str] = {}

    def attempt(name: str, fn: Any, *args: Any) -> None:
        import matplotlib.pyplot as plt

        before = set(plt.get_fignums())
        try:
            # rc_context: Optuna's plots switch the global style to ggplot; the caller's style comes back
            with warnings.catch_warnings(), matplotlib.rc_context():
                warnings.simplefilter("ignore")
                result = fn(out_dir, *args)
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            skipped[name] = first
            log.debug("plot %s skipped", name, exc_info=True)
        else:
            if isinstance(result, str):
                skipped[name] = result
            else:
                written[name] = str(result)
        finally:
            for number in set(plt.get_fignums()) - before:  # only the figures drawn here
                plt.close(number)

    names = _metric_names(summary["scoring_metric"])
    if kind == "tune":
        study = ctx.get("study")
        if study is None:
            for name in _OPTUNA_PLOTS:
                skipped[name] = summary["notes"][0] if summary["notes"] else "no Optuna study"
        else:
            for name in _OPTUNA_PLOTS:
                attempt(name, _optuna_plot, name, study, summary)
            _optuna_html(out_dir, study, summary, written)
    if kind in ("cv", "tune"):
        attempt("score_per_fold_seed", _score_heatmap, kind, ctx, summary)
    if kind == "tune":
        attempt("paired_differences", _paired_plot, summary)
    attempt("learning_curves", _learning_curves, ctx["runs"], names)
    return written, skipped


_OPTUNA_PLOTS = ("optimization_history", "param_importances", "parallel_coordinate", "slice")


def _target(study: Any, summary: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments that make Optuna's plots work on a multi-objective study (first objective)."""
    if len(study.directions) > 1:
        return {"target": lambda t: t.values[0], "target_name": "objective 0"}
    return {"target_name": "score"}


def _optuna_plot(out_dir: Path, name: str, study: Any, summary: Mapping[str, Any]) -> Any:
    import optuna.visualization.matplotlib as ovm
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return "no completed trial yet"
    kwargs = _target(study, summary)
    if name == "optimization_history":
        ax = ovm.plot_optimization_history(study, **kwargs)
    else:
        params = _tuned_params(complete)
        if not params:
            return "no hyperparameter takes more than one value"
        if name == "param_importances":
            if len(complete) < 2:
                return "needs at least 2 completed trials"
            ax = ovm.plot_param_importances(study, params=params, **kwargs)
        elif name == "parallel_coordinate":
            ax = ovm.plot_parallel_coordinate(study, params=params, **kwargs)
        else:
            ax = ovm.plot_slice(study, params=params, **kwargs)
    axes = list(ax.flat) if hasattr(ax, "flat") else [ax]
    fig = axes[0].figure
    if name == "slice":  # Optuna lays out the panels and the colorbar itself
        fig.set_size_inches(min(max(8.0, 3.6 * len(axes) + 1.5), 30.0), 5.0)
    else:
        fig.set_size_inches(10.0, 5.5)
        if name == "parallel_coordinate":
            for a in axes:
                for label in a.get_xticklabels():
                    label.set_rotation(20)
                    label.set_horizontalalignment("right")
        with contextlib.suppress(Exception):
            fig.tight_layout()
    return _save(fig, out_dir / f"{name}.png")


def _tuned_params(trials: Sequence[Any]) -> list[str]:
    """Parameters that can take more than one value (a constant, recorded as a one-value choice, is not)."""
    from optuna.distributions import CategoricalDistribution

    params: dict[str, bool] = {}
    for t in trials:
        for key, dist in t.distributions.items():
            varies = not (isinstance(dist, CategoricalDistribution) and len(dist.choices) <= 1)
            params[key] = params.get(key, False) or varies
    return sorted(k for k, varies in params.items() if varies)


def _optuna_html(out_dir: Path, study: Any, summary: Mapping[str, Any], written: dict[str, str]) -> None:
    """Optuna's interactive plots, when plotly is installed (optional)."""
    import importlib.util

    if importlib.util.find_spec("plotly") is None:
        return
    import optuna.visualization as ov

    kwargs = _target(study, summary)
    for name, fn in (("optimization_history", ov.plot_optimization_history),
                     ("param_importances", ov.plot_param_importances),
                     ("parallel_coordinate", ov.plot_parallel_coordinate), ("slice", ov.plot_slice)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                path = out_dir / f"{name}.html"
                fn(study, **kwargs).write_html(str(path))
            written[f"{name}_html"] = str(path)
        except Exception:
            log.debug("interactive plot %s skipped", name, exc_info=True)


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    return path


def _run_scores(df: Any, summary: Mapping[str, Any]) -> list[float]:
    """One score per run (the cv score of that run alone); NaN for a run that did not complete."""
    import pandas as pd

    from tunecv.scoring import score_runs

    out = []
    for rec in df.to_dict("records"):
        value = math.nan
        if rec.get("status") == "completed":
            with contextlib.suppress(Exception):
                value = float(score_runs(pd.DataFrame([rec]), summary["scoring_metric"],
                                         summary["multi_score_strategy"]))
        out.append(value)
    return out


def _score_heatmap(out_dir: Path, kind: str, ctx: Mapping[str, Any], summary: Mapping[str, Any]) -> Any:
    import matplotlib.pyplot as plt

    with plt.style.context("default"):
        return _score_heatmap_default_style(out_dir, kind, ctx, summary)


def _score_heatmap_default_style(out_dir: Path, kind: str, ctx: Mapping[str, Any],
                                 summary: Mapping[str, Any]) -> Any:
    import matplotlib.pyplot as plt
    import numpy as np

    df = ctx["df"]
    if not len(df):
        return "no run recorded yet"
    df = df.assign(_score=_run_scores(df, summary))
    if kind == "cv":
        rows = [int(s) for s in sorted(df["seed"].dropna().unique())]
        cols = [int(f) for f in sorted(df["fold"].dropna().unique())]
        row_of = lambda rec: rows.index(int(rec["seed"]))  # noqa: E731
        col_of = lambda rec: cols.index(int(rec["fold"]))  # noqa: E731
        row_labels, col_labels = [f"seed {s}" for s in rows], [f"fold {f}" for f in cols]
        title = f"cv {summary['cv_name']}: score per fold x seed"
    else:
        order = [c for c in ctx["order"] if c in set(df["cv_name"])]
        pairs = sorted({(int(s), int(f)) for s, f in zip(df["seed"], df["fold"])
                        if s is not None and f is not None})
        row_of = lambda rec: order.index(rec["cv_name"])  # noqa: E731
        col_of = lambda rec: pairs.index((int(rec["seed"]), int(rec["fold"])))  # noqa: E731
        row_labels, col_labels = order, [f"f{f} s{s}" for s, f in pairs]
        title = f"tune {summary['tune_name']}: score per cv and fold x seed"
    grid = np.full((len(row_labels), len(col_labels)), np.nan)
    failed = np.zeros(grid.shape, dtype=bool)
    for rec in df.to_dict("records"):
        with contextlib.suppress(TypeError, ValueError):
            grid[row_of(rec), col_of(rec)] = rec["_score"]
            failed[row_of(rec), col_of(rec)] = rec.get("status") == "failed"
    if not np.isfinite(grid).any():
        return "no completed run with a finite score yet"
    size = (max(5.0, 1.1 * len(col_labels) + 3), max(2.5, 0.45 * len(row_labels) + 1.8))
    fig, ax = plt.subplots(figsize=size)
    cmap = plt.get_cmap("viridis" if summary["direction"] == "maximize" else "viridis_r").copy()
    cmap.set_bad("#dddddd")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=30 if len(col_labels) > 6 else 0)
    ax.set_yticks(range(len(row_labels)), row_labels)
    if grid.size <= 400:
        finite = grid[np.isfinite(grid)]
        mid = (finite.min() + finite.max()) / 2
        for (i, j), value in np.ndenumerate(grid):
            text = f"{value:.3g}" if np.isfinite(value) else ("failed" if failed[i, j] else "")
            light = np.isfinite(value) and ((value < mid) == (summary["direction"] == "maximize"))
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if light else "black")
    better = "higher" if summary["direction"] == "maximize" else "lower"
    fig.colorbar(image, ax=ax, label=f"run score ({better} is better)")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, out_dir / "score_per_fold_seed.png")


def _paired_plot(out_dir: Path, summary: Mapping[str, Any]) -> Any:
    import matplotlib.pyplot as plt

    entries = [e for e in summary["leaderboard"] if e.get("vs_best")]
    best = (summary.get("statistics") or {}).get("best")
    if not best or not entries:
        return "no trial to compare with the best yet"
    with plt.style.context("default"):
        fig, ax = plt.subplots(figsize=(7.5, max(2.5, 0.42 * len(entries) + 1.6)))
        for y, e in enumerate(entries):
            d = e["vs_best"]["difference"]
            mean, low, high = (d[k] if d[k] is not None else math.nan for k in ("mean", "low", "high"))
            color = "#888888" if e["indistinguishable_from_best"] else "#c0392b"
            xerr = [[mean - low], [high - mean]] if math.isfinite(low) and math.isfinite(high) else None
            ax.errorbar(mean, y, xerr=xerr, fmt="o", color=color, capsize=3)
            p = e["vs_best"]["p_value"]
            mark = "≈ best" if e["indistinguishable_from_best"] else "worse"
            shown = p is not None and e["vs_best"].get("p_can_reach_alpha", True)
            ax.annotate(f"Wilcoxon p={p:.2g} ({mark})" if shown else mark, (mean, y), textcoords="offset points",
                        xytext=(6, 6), fontsize=8, color=color)
        ax.axvline(0.0, color="black", lw=0.8)
        ax.set_yticks(range(len(entries)), [e["cv_name"] for e in entries])
        ax.invert_yaxis()
        ax.margins(y=0.12)  # room above the first row for its annotation
        better = "higher" if summary["direction"] == "maximize" else "lower"
        # Centred on the figure, not on the axes (long trial names push those right), and wrapped to its
        # width (about 110 characters at 10 pt): a long tune name must not cut them.
        fig.supxlabel(textwrap.fill(f"paired difference to {best} per (fold, seed), 95 % interval "
                                    f"({better} score is better)", 90, break_long_words=True), fontsize=10)
        fig.suptitle("trials against the best: grey = cannot be told apart (the interval holds 0)", fontsize=11)
        fig.set_layout_engine("constrained")
        return _save(fig, out_dir / "paired_differences.png")


def _read_curves(run_dir: Path) -> Any:
    """Per epoch, the last logged value of every metric of a run (earlier attempts of a resumed run first)."""
    import pandas as pd

    files = sorted((run_dir / CSV_DIR).glob("metrics*.csv"),
                   key=lambda p: (p.name == METRICS_FILE, int(p.name.split(".")[1]) if p.name.count(".") == 2
                                  and p.name.split(".")[1].isdigit() else 0))
    frames = []
    for f in files:
        with contextlib.suppress(Exception):
            frames.append(pd.read_csv(f))
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    if "epoch" not in df.columns:
        return None
    df = df.dropna(subset=["epoch"])
    return df.groupby("epoch").last()


def _learning_curves(out_dir: Path, runs: Sequence[tuple[str, Path, str]], names: Sequence[str]) -> Any:
    import matplotlib.pyplot as plt

    with plt.style.context("default"):
        return _learning_curves_default_style(out_dir, runs, names)


def _learning_curves_default_style(out_dir: Path, runs: Sequence[tuple[str, Path, str]],
                                   names: Sequence[str]) -> Any:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    curves = [(label, group, _read_curves(path)) for label, path, group in runs]
    curves = [c for c in curves if c[2] is not None and len(c[2])]
    if not curves:
        return "no metrics CSV found"
    available = set().union(*(set(c.columns) for _, _, c in curves))
    metrics = [m for m in names if m in available]
    train_loss = next((m for m in ("train/loss", "train/loss_epoch") if m in available), None)
    if train_loss and train_loss not in metrics:
        metrics.append(train_loss)
    metrics = metrics[:4] or sorted(m for m in available if m != "step")[:2]
    if not metrics:
        return "no metric logged per epoch"
    groups = list(dict.fromkeys(g for _, g, _ in curves))
    colors = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics) + 1.5, 4.2), squeeze=False)
    labelled: set[str] = set()
    for _label, group, frame in curves:
        color = colors(groups.index(group) % 10)
        legend = group if group not in labelled else None
        labelled.add(group)
        for ax, metric in zip(axes[0], metrics):
            if metric in frame.columns:
                series = frame[metric].dropna()
                if len(series):
                    ax.plot(series.index, series.to_numpy(), marker="o", markersize=3, color=color,
                            alpha=0.85, label=legend)
    for ax, metric in zip(axes[0], metrics):
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if len(groups) <= 12:
        axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out_dir / "learning_curves.png")


# -- printing -----------------------------------------------------------------------------------------------

def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def _mean_std(stat: Optional[Mapping[str, Any]]) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    std = stat.get("std")
    return f"{_fmt(stat['mean'])} ± {_fmt(std, 2)}" if std is not None else _fmt(stat["mean"])


def _interval(stat: Optional[Mapping[str, Any]]) -> str:
    if not stat or stat.get("low") is None:
        return "-"
    return f"[{_fmt(stat['low'])}, {_fmt(stat['high'])}]"


def _difference(d: Mapping[str, Any]) -> str:
    return f"{_fmt(d['mean'], 3)} [{_fmt(d['low'], 3)}, {_fmt(d['high'], 3)}]"


def _vs_best(entry: Mapping[str, Any], best: Optional[str]) -> str:
    """``-0.026 [-0.09, 0.04] p=0.62 ≈`` (≈: the interval holds 0, cannot be told apart from the best); the
    Wilcoxon p only where it could reach the threshold with these pairs."""
    c = entry.get("vs_best")
    if not c:
        return "best" if entry["cv_name"] == best else "-"
    mark = "≈" if entry.get("indistinguishable_from_best") else ""
    p = f" p={_fmt(c['p_value'], 2)}" if c.get("p_can_reach_alpha", True) else ""
    return f"{_difference(c['difference'])}{p} {mark}".rstrip()


def _short_names(keys: Sequence[str]) -> dict[str, str]:
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def _print(summary: Mapping[str, Any], console: Any) -> None:
    from rich.console import Console
    from rich.markup import escape

    if console is None:
        console = Console()
        if not console.is_terminal and not os.environ.get("COLUMNS"):
            console = Console(width=200)  # piped or captured: do not squeeze the tables into 80 columns
    {"run": _print_run, "cv": _print_cv, "tune": _print_tune}[summary["kind"]](summary, console)
    if summary.get("plots"):
        console.print(f"plots: {Path(summary['path']) / REPORT_DIR}/ ({', '.join(summary['plots'])})")
    for name, reason in (summary.get("skipped_plots") or {}).items():
        console.print(f"[dim]plot {name} skipped: {escape(reason)}[/dim]")


def _print_run(s: Mapping[str, Any], console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"run {s['run_name']} ({s['run_id']}): {s['status']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in s["metrics"].items():
        table.add_row(key, _fmt(value, 6))
    console.print(table)
    console.print(f"fold {_fmt(s['fold'])}, seed {_fmt(s['seed'])}, duration {_fmt(s['duration'], 3)} s")
    if s.get("error"):
        console.print(f"[red]error:[/red] {escape(s['error'])}", highlight=False)
    if s.get("checkpoint"):
        console.print(f"checkpoint: {s['checkpoint']}")
    for folder in s.get("wandb_offline_runs") or []:
        console.print(f"wandb offline run: wandb sync {folder}")


def _print_cv(s: Mapping[str, Any], console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    names = _metric_names(s["scoring_metric"])
    table = Table(title=f"cv {s['cv_name']}" + (f" (tune {s['tune_name']})" if s.get("tune_name") else ""))
    for col in ("run", "fold", "seed", "status", *names, "duration"):
        table.add_column(col, justify="right" if col not in ("run", "status") else "left")
    for r in s["runs"]:
        status = r["status"] if r["status"] == "completed" else f"[red]{r['status']}[/red]"
        table.add_row(f"{r['run_name']}-{r['run_id']}", _fmt(r["fold"]), _fmt(r["seed"]), status,
                      *(_fmt(r["metrics"].get(m)) for m in names), f"{_fmt(r['duration'], 3)} s")
    console.print(table)
    stats = Table(title="over completed runs")
    for col in ("metric", "mean ± std", "runs"):
        stats.add_column(col)
    for metric, stat in s["metrics"].items():
        stats.add_row(metric + (" *" if metric in names else ""), _mean_std(stat), str(stat["count"]))
    console.print(stats)
    c = s["counts"]
    planned = f" of {c['planned']}" if c.get("planned") else ""
    state = "[yellow]unstable[/yellow]" if s["score_is_unstable"] else "stable"
    console.print(f"score {_fmt(s['score'], 6)} ({state}; {', '.join(s['scoring_metric'])}, "
                  f"{s['multi_score_strategy']}); runs: {c['completed']} completed, {c['failed']} failed"
                  f"{', ' + str(c['pruned']) + ' pruned' if c['pruned'] else ''}, {c['recorded']} recorded"
                  f"{planned}")
    errors: dict[str, list[str]] = {}
    for r in s["runs"]:
        if r.get("error"):
            errors.setdefault(r["error"][:300], []).append(r["run_name"])
    for message, runs in errors.items():  # grouped by message, as the cv reports them
        line = f"[red]{len(runs)} failed[/red] ({', '.join(runs)}): {escape(message)}"
        console.print(line, highlight=False)
    if s.get("jobs"):
        console.print(f"jobs not recorded yet: {c['running']} running, {c['queued']} queued; "
                      + ", ".join(f"{j['run']} {j['state']}" for j in s["jobs"]), highlight=False)


def _print_tune(s: Mapping[str, Any], console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    names = _metric_names(s["scoring_metric"])
    keys = list(dict.fromkeys(k for e in s["leaderboard"] for k in e["params"]))
    short = _short_names(keys)
    c = s["counts"]
    goal = (f"objectives {', '.join(s['objectives'])}" if s.get("objectives")
            else f"score {s['direction']}d")
    table = Table(title=f"tune {s['tune_name']}: {c['completed']} completed, {c['pruned']} pruned, "
                        f"{c['failed']} failed, {c['running']} running (of {_fmt(s['n_trials'])}); {goal}")
    for col in ("#", "cv", "trial", "state", "score", "95% interval", "vs best (paired)", *names, "runs",
                *(short[k] for k in keys)):
        table.add_column(col, justify="left" if col in ("cv", "state", "vs best (paired)") else "right")
    for e in s["leaderboard"][:TABLE_ROWS]:
        score = _fmt(e["score"]) + (" (unstable)" if e["score_is_unstable"] else "")
        state = e["state"] if e["state"] == "complete" else f"[yellow]{e['state']}[/yellow]"
        if e.get("feasible") is False:
            state += " [red](infeasible)[/red]"
        runs = f"{e['runs_completed']}/{e['runs']}"
        if e["runs_failed"]:
            runs += f" ({e['runs_failed']} failed)"
        table.add_row(str(e["rank"]), str(e["cv_name"]), _fmt(e["trial"]), state, score,
                      _interval(e.get("score_interval")), _vs_best(e, (s.get("best") or {}).get("cv_name")),
                      *(_mean_std(e["metrics"].get(m)) for m in names), runs,
                      *(escape(_fmt(e["params"].get(k))) for k in keys))
    console.print(table)
    if len(s["leaderboard"]) > TABLE_ROWS:
        console.print(f"... {len(s['leaderboard']) - TABLE_ROWS} more (--format json lists all)")
    best = s.get("best")
    if best:
        console.print(f"best: {best['cv_name']} (trial {best['trial']}) score {_fmt(best['score'], 6)}")
        for k, v in best["params"].items():
            console.print(f"  {k}: {escape(_fmt(v, 6))}")
        runner = (s.get("statistics") or {}).get("runner_up")
        if runner:
            verdict = ("[yellow]cannot be told apart from[/yellow]" if not runner["distinguishable"]
                       else "is better than")
            p = (f"; Wilcoxon p={_fmt(runner['p_value'], 2)}" if runner.get("p_can_reach_alpha", True) else "")
            console.print(f"the best {verdict} the runner-up {runner['cv_name']}: "
                          f"{_difference(runner['difference'])} (runner-up - best, 95% paired t interval) over "
                          f"{runner['n_pairs']} (fold, seed) pairs{p}")
        few = (s.get("statistics") or {}).get("few_pairs")
        if few:
            console.print(few)
    elif s.get("pareto_trials") is not None:
        console.print(f"Pareto-optimal trials: {s['pareto_trials']}")
    else:
        console.print("best: no stable trial completed yet")
    if s.get("retrain"):
        r = s["retrain"]
        tested = {k: v for k, v in r["metrics"].items() if k.startswith("test/")} or r["metrics"]
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(tested.items()))
        console.print(f"retrain: {r['status']} {shown} ({r['path']})")
    for note in s.get("notes") or []:
        console.print(f"[dim]{escape(note)}[/dim]")


# -- JSON ---------------------------------------------------------------------------------------------------

def _jsonable(value: Any) -> Any:
    """Plain JSON types: NaN → None, numpy and pandas scalars → Python, timestamps → ISO strings."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (int, float)):  # numpy scalar
        with contextlib.suppress(ValueError, TypeError):
            value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)
