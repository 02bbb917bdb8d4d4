"""The summary of a run folder (its ``run_info.json``) and of a cv folder (its ``run_infos.parquet``, the
jobs its executor has not recorded yet)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from tunecv import naming
from tunecv.artifacts.files import RUN_INFOS_FILE
from tunecv.artifacts.run_info import has_run_info, read_run_info
from tunecv.folds import folds_run
from tunecv.report.folder import _direction, _first, _metric_names, _metric_summary, _read_config, _scoring
from tunecv.tracking import offline_runs


def _run_summary(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
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


def _cv_summary(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    # lazy: it imports pandas; `import tunecv.report` stays light
    from tunecv.results import read_run_infos

    cfg = _read_config(root)
    df = read_run_infos(root / RUN_INFOS_FILE)
    specs, strategy = _scoring(cfg)
    names = _metric_names(specs)
    cv_name = _first(df, "cv_name") or root.name
    score = _first(df, "score")
    unstable = _first(df, "score_is_unstable")
    split = cfg.get("split") or {}
    n_folds = _fold_count(split, (cfg.get("cv") or {}).get("n_folds"))
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
    # lazy: the executors' registry imports every executor; `import tunecv.report` stays light (a run's report needs none of it)
    from tunecv.executors import job_states

    return job_states([run_dir]).get(run_dir, "running")


def _unfinished_jobs(root: Path, runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Runs not recorded yet whose executor left a job (SLURM, ...): its state from the scheduler."""
    # lazy: the executors' registry imports every executor; `import tunecv.report` stays light (a run's report needs none of it)
    from tunecv.executors import job_states

    recorded = {f"{r['run_name']}-{r['run_id']}" for r in runs}
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and p.name not in recorded
               and has_run_info(p)]
    return [{"run": folder.name, "state": state} for folder, state in job_states(folders).items()]


def _fold_count(split: Mapping[str, Any], n_folds: Any = None) -> Any:
    """:func:`tunecv.folds.folds_run` of a ``split`` section and ``cv.n_folds`` read from a ``config.yaml``."""
    # lazy: tunecv.config imports jsonargparse's schema; `import tunecv.report` stays light
    from tunecv.config import SplitConfig

    try:
        return folds_run(SplitConfig(**split), n_folds)
    except TypeError:  # a config.yaml written by another version: keys this one does not know
        return n_folds or split.get("total_folds")


def _status_counts(df: Any, planned: Optional[int]) -> dict[str, Any]:
    status = df["status"].astype(object) if len(df) else []
    counts = {s: int(sum(1 for v in status if v == s)) for s in ("completed", "failed", "pruned")}
    counts["recorded"] = len(df)
    counts["planned"] = planned
    return counts


def _run_rows(df: Any) -> list[dict[str, Any]]:
    # lazy: it imports pandas; `import tunecv.report` stays light
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
