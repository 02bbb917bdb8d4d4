"""``tunecv report PATH``: tables and plots of what a run, a cv or a tune left (also while it is running).

:func:`report` reads only the artifact folder: ``run_info.json`` of a run, ``run_infos.parquet`` of a cv,
the cvs' ``run_infos.parquet`` and the Optuna study of a tune, and the runs' metrics CSVs. It prints rich
tables (or JSON for scripts), writes PNG plots into ``PATH/report/`` (and Optuna's interactive HTML plots
when plotly is installed), and returns the same summary as a JSON-able dict.

The package, one module per concept: :mod:`~tunecv.report.folder` (a folder's kind, config and scoring),
:mod:`~tunecv.report.summaries` (a run's and a cv's summary), :mod:`~tunecv.report.leaderboard` (a tune's
summary), :mod:`~tunecv.report.plots`, :mod:`~tunecv.report.tables` (the printed tables) and
:mod:`~tunecv.report.jsonable` (JSON); a nested folder's section is :mod:`tunecv.nested`'s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunecv.artifacts.files import REPORT_DIR
from tunecv.errors import ConfigError
from tunecv.report.folder import _kind
from tunecv.report.jsonable import _jsonable
from tunecv.report.leaderboard import TOP_COMPARED, _tune_summary
from tunecv.report.plots import _write_plots
from tunecv.report.summaries import _cv_summary, _run_summary
from tunecv.report.tables import TABLE_ROWS, _print

__all__ = ["REPORT_DIR", "TABLE_ROWS", "TOP_COMPARED", "report"]


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


def _report_nested(root: Path, fmt: str, console: Any) -> dict[str, Any]:
    # lazy: tunecv.nested pulls in config, placement and the executors; `import tunecv.report` stays light (a run's report needs none of it)
    from tunecv.nested import print_summary, report_summary

    summary = _jsonable(report_summary(root))
    summary.pop("plan", None)
    if fmt == "json":
        print(json.dumps(summary, indent=2, allow_nan=False))
    elif fmt == "table":
        print_summary(summary, console)
    return summary
