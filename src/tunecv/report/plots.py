"""The PNG plots of ``tunecv report`` in ``PATH/report/`` (Optuna's plots of a tune, the score per fold x
seed, the paired differences to the best trial, learning curves) and Optuna's HTML plots with plotly."""

from __future__ import annotations

import contextlib
import logging
import math
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tunecv.artifacts.files import CSV_DIR, METRICS_FILE, REPORT_DIR
from tunecv.report.folder import _metric_names, _run_scores

log = logging.getLogger(__name__)


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
