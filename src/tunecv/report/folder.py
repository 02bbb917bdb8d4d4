"""Reading a report's folder: its kind (run, cv, tune), its ``config.yaml`` and scoring, the metric summary
and one score per run of a runs table."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tunecv.artifacts.files import CONFIG_FILE, RUN_INFO_FILE, RUN_INFOS_FILE
from tunecv.artifacts.kinds import folder_kind, is_level_folder
from tunecv.errors import ConfigError


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
    # lazy: it imports pandas; `import tunecv.report` stays light
    from tunecv.scoring import parse_metric

    return [parse_metric(s)[0] for s in specs]


def _direction(specs: Sequence[str]) -> str:
    # lazy: it imports pandas; `import tunecv.report` stays light
    from tunecv.scoring import score_direction

    try:
        return score_direction(specs)
    except ConfigError:
        return "maximize"


def _first(df: Any, column: str) -> Any:
    if column not in df.columns:
        return None
    values = df[column].dropna()
    return values.iloc[0] if len(values) else None


def _metric_summary(df: Any, first: Sequence[str]) -> dict[str, dict[str, Any]]:
    """mean, std and count of every metric over the completed runs, the scoring metrics first."""
    # lazy: both import pandas; `import tunecv.report` stays light
    from tunecv.results import metric_columns
    from tunecv.scoring import summarize_metrics  # lazy: pandas (see above)

    names = list(dict.fromkeys([*first, *sorted(metric_columns(df))]))
    table = summarize_metrics(df, names)
    return {name: {"mean": row["mean"], "std": row["std"], "count": int(row["count"])}
            for name, row in table.iterrows()}


def _run_scores(df: Any, summary: Mapping[str, Any]) -> list[float]:
    """One score per run (the cv score of that run alone); NaN for a run that did not complete."""
    import pandas as pd

    # lazy: it imports pandas; `import tunecv.report` stays light
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
