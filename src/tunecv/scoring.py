"""The score of a cross-validation: one number from the metrics of its runs.

A scoring metric is a metric name with an optional direction suffix: ``val/acc`` or ``val/acc:higher``
(higher is better, the default) and ``val/loss:lower``. With one metric the score is its mean over the
runs. With several, each run's metrics are first combined into one value (a ``:lower`` metric enters as
``1/value``) by the ``multi_score_strategy`` (arithmetic, geometric or harmonic mean, or the minimum),
then those values are averaged over the runs.

A run is *unstable* when a scoring metric is missing, not finite, or exactly 0. The harmonic and
geometric strategies skip unstable runs (the score is 0.0 when none is left); arithmetic and min use
every run whose metrics and combined value are finite.

This is a leaf module: it imports numpy and pandas only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from tunecv.aggregations import AGGREGATIONS, aggregation
from tunecv.errors import ConfigError
from tunecv.results import metric_columns

__all__ = [
    "MULTI_SCORE_STRATEGIES",
    "as_frame",
    "cv_score",
    "is_unstable",
    "parse_metric",
    "score_direction",
    "score_runs",
    "summarize_metrics",
]

MULTI_SCORE_STRATEGIES: tuple[str, ...] = AGGREGATIONS.names()  # the built-ins (more may be registered)
_DIRECTIONS = {"higher": True, "lower": False}
_METRIC_KEY = "cv.scoring_metric"
_STRATEGY_KEY = "cv.multi_score_strategy"
_COMPLETED = "completed"


def parse_metric(spec: str) -> tuple[str, bool]:
    """Split a scoring-metric spec into its name and direction.

    Only a final ``:higher`` or ``:lower`` is a direction; any other ``:`` belongs to the name.

    Args:
        spec: ``"val/acc"``, ``"val/acc:higher"`` or ``"val/loss:lower"``.

    Returns:
        The metric name and whether higher is better: ``("val/loss", False)`` for ``"val/loss:lower"``.

    Raises:
        ConfigError: ``spec`` is not a string or names no metric.
    """
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"`{_METRIC_KEY}` entries must be metric names such as val/acc or "
                          f"val/loss:lower; got {spec!r}")
    name, sep, suffix = spec.rpartition(":")
    if sep and suffix in _DIRECTIONS:
        if not name:
            raise ConfigError(f"`{_METRIC_KEY}` entries must name a metric before the direction, such "
                              f"as val/loss:lower; got {spec!r}")
        return name, _DIRECTIONS[suffix]
    return spec, True


def _parse_all(scoring_metric: Sequence[str] | str) -> list[tuple[str, bool]]:
    specs = [scoring_metric] if isinstance(scoring_metric, str) else list(scoring_metric)
    if not specs:
        raise ConfigError(f"`{_METRIC_KEY}` must name at least one metric; got {scoring_metric!r}")
    return [parse_metric(spec) for spec in specs]


def score_direction(scoring_metric: Sequence[str] | str) -> str:
    """The direction a tune optimizes the score in.

    Args:
        scoring_metric: One spec or a list of specs.

    Returns:
        ``"minimize"`` when there is exactly one metric and it is ``:lower``, else ``"maximize"``
        (a combination of several metrics is always higher-is-better).
    """
    metrics = _parse_all(scoring_metric)
    if len(metrics) == 1 and not metrics[0][1]:
        return "minimize"
    return "maximize"


def _as_float(value: object) -> float:
    """``value`` as a float; NaN for ``None``, ``pd.NA`` and anything not numeric."""
    if value is None or value is pd.NA:
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def is_unstable(run_info: Mapping | pd.Series, scoring_metric: Sequence[str] | str) -> bool:
    """Whether one run's scoring metrics make it unusable for a harmonic or geometric score.

    Args:
        run_info: One run's metrics by name (a row of ``run_infos``, or a plain mapping).
        scoring_metric: One spec or a list of specs; the direction suffix is ignored.

    Returns:
        True when any scoring metric is missing, NaN, infinite or exactly 0.
    """
    for name, _ in _parse_all(scoring_metric):
        value = _as_float(run_info.get(name))
        if not math.isfinite(value) or value == 0.0:
            return True
    return False


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A column as float64, NaN where missing or not numeric."""
    series = pd.to_numeric(frame[name], errors="coerce")
    return series.to_numpy(dtype="float64", na_value=np.nan)


def _unstable(raw: np.ndarray) -> np.ndarray:
    """Per row of a (runs x metrics) array: any value not finite or 0."""
    return ~(np.isfinite(raw) & (raw != 0.0)).all(axis=1)


def as_frame(run_infos: pd.DataFrame | Sequence[Mapping] | Mapping) -> pd.DataFrame:
    """``run_infos`` as a DataFrame: a DataFrame as it is, a sequence of mappings (one per run, as DARTS's
    ``score_from_runs`` takes) or one mapping as rows.

    Raises:
        TypeError: ``run_infos`` is none of these (a string, a number, a list of non-mappings).
    """
    if isinstance(run_infos, pd.DataFrame):
        return run_infos
    if isinstance(run_infos, Mapping):
        return pd.DataFrame([dict(run_infos)])
    if isinstance(run_infos, (str, bytes)) or not isinstance(run_infos, Iterable):
        raise TypeError(f"run_infos must be a DataFrame or a sequence of mappings (one per run); "
                        f"got {type(run_infos).__name__}")
    rows = list(run_infos)
    bad = next((r for r in rows if not isinstance(r, (Mapping, pd.Series))), None)
    if bad is not None:
        raise TypeError(f"run_infos must be a DataFrame or a sequence of mappings (one per run); got a "
                        f"sequence holding {type(bad).__name__}")
    return pd.DataFrame([dict(r) for r in rows])


def _completed(run_infos: pd.DataFrame) -> pd.DataFrame:
    if "status" not in run_infos.columns:
        return run_infos
    return run_infos[(run_infos["status"] == _COMPLETED).fillna(False).to_numpy(dtype=bool)]


def _check_logged(run_infos: pd.DataFrame, names: list[str]) -> None:
    """Raise when a scoring metric is in no row of ``run_infos`` (absent or all missing)."""
    missing = [n for n in dict.fromkeys(names)
               if n not in run_infos.columns or np.isnan(_column(run_infos, n)).all()]
    if not missing:
        return
    logged = sorted(c for c in metric_columns(run_infos) if run_infos[c].notna().any())
    quoted = ", ".join(repr(n) for n in missing)
    pronoun = "it" if len(missing) == 1 else "them"
    hint = ""
    if any(":" in n for n in missing):
        hint = " (a direction suffix must be ':higher' or ':lower')"
    raise ConfigError(f"`{_METRIC_KEY}` names {quoted} but no run logged {pronoun}{hint}; logged metrics: "
                      f"{', '.join(logged) if logged else 'none'}")


def score_runs(run_infos: pd.DataFrame | Sequence[Mapping], scoring_metric: Sequence[str] | str,
               multi_score_strategy: str = "harmonic") -> float:
    """The score of a cross-validation from its runs' metrics.

    Only rows whose ``status`` is ``"completed"`` count, when a ``status`` column exists. Whether a
    scoring metric was logged at all is checked over every row, and only when some run completed (when
    none did, the caller has a failed cv to report, not a wrong metric name).

    One metric: the mean of its finite values over the runs (whatever the strategy, and without
    inverting a ``:lower`` metric: the tune then minimizes). Several metrics: per run, the metrics are
    combined by ``multi_score_strategy`` (a ``:lower`` metric enters as ``1/value``), then the combined
    values are averaged over the runs. Harmonic and geometric skip unstable runs (see
    :func:`is_unstable`); arithmetic and min use every run whose metrics and combined value are finite
    (a 0 in a ``:lower`` metric makes the arithmetic mean infinite, not the minimum). The geometric
    mean expects positive metrics: a run with a negative one has no combined value and is skipped.

    Args:
        run_infos: One row per run: the ``run_infos.parquet`` table, any frame with the metric columns, or a
            sequence of mappings (one dict per run, such as ``[{"val/acc": 0.9, "status": "completed"}]``).
        scoring_metric: One spec or a list of specs such as ``["val/f1", "val/loss:lower"]``.
        multi_score_strategy: ``"arithmetic"``, ``"geometric"``, ``"harmonic"``, ``"min"``, another registered
            aggregation (:mod:`tunecv.aggregations`) or the dotted path of one.

    Returns:
        The score. 0.0 when harmonic or geometric combine several metrics and no stable run is left;
        NaN when otherwise no run has a finite value (Optuna records such a trial as failed).

    Raises:
        ConfigError: The strategy is unknown, or a scoring metric was logged by no run (the message
            lists the metrics that were).
    """
    strategy = aggregation(multi_score_strategy, _STRATEGY_KEY)
    metrics = _parse_all(scoring_metric)
    names = [name for name, _ in metrics]
    run_infos = as_frame(run_infos)
    completed = _completed(run_infos)
    if len(completed) == 0:
        return 0.0 if len(metrics) > 1 and strategy.skips_unstable else math.nan
    _check_logged(run_infos, names)

    if len(metrics) == 1:
        values = _column(completed, names[0])
        finite = values[np.isfinite(values)]
        return float(finite.mean()) if finite.size else math.nan

    raw = np.column_stack([_column(completed, name) for name in names])
    with np.errstate(divide="ignore"):
        oriented = np.column_stack([raw[:, i] if higher else 1.0 / raw[:, i]
                                    for i, (_, higher) in enumerate(metrics)])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        combined = np.asarray(strategy.combine(oriented), dtype="float64")
    keep = np.isfinite(combined) & np.isfinite(raw).all(axis=1)
    if strategy.skips_unstable:
        keep &= ~_unstable(raw)
        if not keep.any():
            return 0.0
    elif not keep.any():
        return math.nan
    return float(combined[keep].mean())


def cv_score(run_infos: pd.DataFrame | Sequence[Mapping], scoring_metric: Sequence[str] | str,
             strategy: str = "harmonic") -> tuple[float, bool]:
    """The score of a cross-validation and whether it rests on unstable runs.

    Args:
        run_infos: One row per run, as for :func:`score_runs`.
        scoring_metric: One spec or a list of specs.
        strategy: The ``multi_score_strategy``.

    Returns:
        ``(score, score_is_unstable)``: the :func:`score_runs` score, and True when any completed run is
        unstable or no run completed.

    Raises:
        ConfigError: As :func:`score_runs`.
    """
    run_infos = as_frame(run_infos)
    score = score_runs(run_infos, scoring_metric, strategy)
    completed = _completed(run_infos)
    if len(completed) == 0:
        return score, True
    raw = np.column_stack([_column(completed, name) if name in completed.columns
                           else np.full(len(completed), np.nan)
                           for name, _ in _parse_all(scoring_metric)])
    return score, bool(_unstable(raw).any())


# -- summaries -------------------------------------------------------------------------------------------

def summarize_metrics(df: pd.DataFrame, metrics: Sequence[str] | str | None = None) -> pd.DataFrame:
    """Mean and standard deviation of metrics over the completed runs.

    Args:
        df: A ``run_infos`` table. When it has a ``status`` column only ``"completed"`` rows count.
        metrics: Metric names or scoring-metric specs (``val/loss:lower``; the direction is dropped).
            Default: every metric column.

    Returns:
        One row per metric (index ``metric``) with columns ``mean``, ``std`` (sample standard
        deviation; NaN for a single run) and ``count`` (runs with a finite value). A metric no run has
        gets NaN and count 0.
    """
    if metrics is None:
        names = metric_columns(df)
    else:
        specs = [metrics] if isinstance(metrics, str) else list(metrics)
        names = [s if s in df.columns else parse_metric(s)[0] for s in specs]
    if "status" in df.columns:
        df = df[(df["status"] == "completed").fillna(False).to_numpy(dtype=bool)]
    records = []
    for name in dict.fromkeys(names):
        values = (pd.to_numeric(df[name], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
                  if name in df.columns else np.array([], dtype="float64"))
        finite = pd.Series(values[np.isfinite(values)], dtype="float64")
        records.append({"metric": name, "mean": finite.mean(), "std": finite.std(), "count": len(finite)})
    return pd.DataFrame.from_records(records, columns=["metric", "mean", "std", "count"]).set_index("metric")
