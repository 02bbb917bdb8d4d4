"""Regenerate the figures of the docs: ``python assets/make_figures.py``.

- ``assets/tune-cv-train.svg``: the three levels (tune -> cv -> train), their names and folders.
- ``assets/scoring-strategies.svg``: how ``cv.multi_score_strategy`` combines two metrics, computed
  with :func:`tunecv.scoring.score_runs` itself.

The SVG files are written deterministically (no date, fixed ids), so regenerating them without a change
leaves git clean. ``--png DIR`` also writes PNG copies (to look at them, or for slides).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from tunecv.scoring import MULTI_SCORE_STRATEGIES, score_runs

HERE = Path(__file__).resolve().parent

plt.rcParams.update({
    "svg.hashsalt": "tunecv",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 11,
})

# One colour per level, used in both figures' spirit: tune violet, cv blue, train green.
TUNE, CV, TRAIN = "#7b5ea7", "#3b7dd8", "#2e9d5b"
STRATEGY_STYLE = {
    "arithmetic": {"color": "#d1495b", "ls": "-"},
    "geometric": {"color": "#3b7dd8", "ls": "-"},
    "harmonic": {"color": "#2e9d5b", "ls": "-"},
    "min": {"color": "#555555", "ls": "--"},
}


def _box(ax, x, y, w, h, color, *, fill_alpha=0.10, lw=1.6, radius=0.02):
    patch = FancyBboxPatch((x, y), w, h, boxstyle=f"round,pad=0,rounding_size={radius}",
                           linewidth=lw, edgecolor=color,
                           facecolor=(*matplotlib.colors.to_rgb(color), fill_alpha))
    ax.add_patch(patch)
    return patch


def _arrow(ax, start, end, color, text=None, text_xy=None, rad=0.0, ha="center"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, lw=1.5, color=color,
                                 connectionstyle=f"arc3,rad={rad}"))
    if text:
        ax.text(*(text_xy or ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)), text, color=color,
                ha=ha, va="center", fontsize=9.5)


def levels_figure() -> plt.Figure:
    """Nested boxes: a tune holds cvs (its trials), a cv holds runs (folds x seeds)."""
    fig = plt.figure(figsize=(11, 6.2))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 6.2)
    ax.axis("off")

    # tune
    _box(ax, 0.25, 0.25, 10.5, 5.7, TUNE, fill_alpha=0.06)
    ax.text(0.5, 5.6, "tune", color=TUNE, fontsize=17, fontweight="bold", va="center")
    ax.text(1.45, 5.6, "an Optuna study: sampler proposes, pruner stops early, storage remembers",
            color=TUNE, fontsize=10.5, va="center")
    ax.text(0.5, 5.2, "tunecv tune   ·   artifacts/brave-otter/   ·   one trial = one cv", color="#333333",
            fontsize=9.5, family="DejaVu Sans Mono", va="center")

    # study box on the left
    _box(ax, 0.55, 1.2, 2.0, 3.55, TUNE, fill_alpha=0.14)
    ax.text(1.55, 4.45, "Optuna study", ha="center", color=TUNE, fontweight="bold")
    for i, line in enumerate(["sampler: tpe", "pruner: wilcoxon", "storage: sqlite,", "postgresql,",
                              "journal file", "", "n_trials: 8"]):
        ax.text(0.7, 4.0 - 0.33 * i, line, color="#333333", fontsize=9.5, family="DejaVu Sans Mono")

    # cvs (trials)
    cv_x, cv_w, cv_h = 3.35, 7.15, 1.12
    cv_rows = [("brave-otter-cv0", "lr=0.004  hidden_dim=96", "score 0.954", False),
               ("brave-otter-cv1", "lr=0.071  hidden_dim=32", "pruned after 3 runs", True),
               ("brave-otter-cv2", "lr=0.012  hidden_dim=64", "running ...", False)]
    for i, (name, params, state, pruned) in enumerate(cv_rows):
        y = 3.75 - i * 1.3
        _box(ax, cv_x, y, cv_w, cv_h, CV, fill_alpha=0.10)
        ax.text(cv_x + 0.15, y + cv_h - 0.25, "cv", color=CV, fontweight="bold", fontsize=12)
        ax.text(cv_x + 0.55, y + cv_h - 0.25, name, color="#222222", fontsize=9.5, family="DejaVu Sans Mono")
        ax.text(cv_x + 0.15, y + 0.22, params, color="#555555", fontsize=8.5, family="DejaVu Sans Mono")
        ax.text(cv_x + cv_w - 0.15, y + cv_h - 0.25, state, color="#b03a48" if pruned else CV, ha="right",
                fontsize=9.5, fontweight="bold")
        # runs: 5 folds x 1 seed
        for f in range(5):
            rx, rw = cv_x + 2.55 + f * 0.9, 0.8
            done = not (pruned and f >= 3) and not (i == 2 and f >= 2)
            _box(ax, rx, y + 0.1, rw, 0.55, TRAIN, fill_alpha=0.22 if done else 0.04, lw=1.2, radius=0.05)
            ax.text(rx + rw / 2, y + 0.37, f"f{f}s42", ha="center", va="center", fontsize=8.5,
                    color="#1d6b3d" if done else "#9bbfa8", family="DejaVu Sans Mono")
        _arrow(ax, (2.58, 3.0), (cv_x - 0.05, y + cv_h / 2), TUNE, rad=0.0)
    ax.text(2.97, 3.22, "ask:\nparams", color=TUNE, fontsize=9, ha="center", va="bottom")
    ax.text(2.72, 0.78, "tell: cv score", color=TUNE, fontsize=9, ha="center")
    _arrow(ax, (cv_x - 0.05, 1.0), (2.2, 1.15), TUNE, rad=-0.25)

    # legend for the run boxes
    _box(ax, 3.35, 0.5, 0.45, 0.3, TRAIN, fill_alpha=0.22, lw=1.2, radius=0.05)
    ax.text(3.9, 0.68, "train: one Lightning run = one fold x one seed, with its own accelerator, strategy,"
            " devices", fontsize=9, va="center", color="#1d6b3d")
    ax.text(3.9, 0.42, "brave-otter-cv0-run-f0s42-{run_id}/", fontsize=8.8, va="center", color="#333333",
            family="DejaVu Sans Mono")
    return fig


def _scores(metrics: list[str], columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The score of a one-run cv for every row, per strategy, from tunecv.scoring itself."""
    out = {}
    n = len(next(iter(columns.values())))
    for strategy in MULTI_SCORE_STRATEGIES:
        out[strategy] = np.array([
            score_runs(pd.DataFrame({k: [v[i]] for k, v in columns.items()}), metrics, strategy)
            for i in range(n)
        ])
    return out


def scoring_figure() -> plt.Figure:
    """Two panels: two rates in [0, 1], and an accuracy with a loss (``:lower`` enters as 1/loss)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)

    recall = np.linspace(0.0, 1.0, 101)
    scores = _scores(["val/precision", "val/recall"],
                     {"val/precision": np.full_like(recall, 0.8), "val/recall": recall})
    for strategy, values in scores.items():
        left.plot(recall, values, lw=2.2, label=strategy, **STRATEGY_STYLE[strategy])
    left.set_title("two rates: val/precision = 0.8, val/recall varies", fontsize=11)
    left.set_xlabel("val/recall")
    left.set_ylabel("cv score (one run)")
    left.set_xlim(0, 1)
    left.set_ylim(0, 1)
    left.annotate("recall 0 scores 0\n(harmonic, geometric:\nunstable run, skipped)", xy=(0.0, 0.0),
                  xytext=(0.30, 0.09), fontsize=8.5, color="#333333",
                  arrowprops={"arrowstyle": "->", "color": "#777777"})
    left.annotate("arithmetic still gives 0.4\nto a model that never\nfinds a positive", xy=(0.0, 0.4),
                  xytext=(0.05, 0.66), fontsize=8.5, color=STRATEGY_STYLE["arithmetic"]["color"],
                  arrowprops={"arrowstyle": "->", "color": STRATEGY_STYLE["arithmetic"]["color"]})

    loss = np.geomspace(0.02, 3.0, 200)
    scores = _scores(["val/acc", "val/loss:lower"],
                     {"val/acc": np.full_like(loss, 0.9), "val/loss": loss})
    for strategy, values in scores.items():
        right.plot(loss, values, lw=2.2, label=strategy, **STRATEGY_STYLE[strategy])
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_title("mixed scales: val/acc = 0.9, val/loss:lower varies", fontsize=11)
    right.set_xlabel("val/loss (enters as 1 / val/loss)")
    right.set_ylabel("cv score (one run, log scale)")
    right.axhline(1.8, color="#2e9d5b", lw=0.8, ls=":")
    right.text(2.7, 1.95, "harmonic < 2 x acc", color="#2e9d5b", fontsize=8.5, ha="right")
    right.annotate("arithmetic follows 1/loss:\na lower loss outweighs\nany change in accuracy",
                   xy=(0.05, 10.45), xytext=(0.12, 9.0), fontsize=8.5,
                   color=STRATEGY_STYLE["arithmetic"]["color"],
                   arrowprops={"arrowstyle": "->", "color": STRATEGY_STYLE["arithmetic"]["color"]})
    for ax in (left, right):
        ax.grid(True, alpha=0.3, which="both")
        ax.spines[["top", "right"]].set_visible(False)
    left.legend(title="multi_score_strategy", loc="lower right", fontsize=9, title_fontsize=9)
    return fig


FIGURES = {"tune-cv-train": levels_figure, "scoring-strategies": scoring_figure}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder of the SVG files (default: assets/)")
    parser.add_argument("--png", type=Path, default=None, help="also write PNG copies into this folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, make in FIGURES.items():
        fig = make()
        fig.savefig(args.out / f"{name}.svg", metadata={"Date": None})
        if args.png is not None:
            args.png.mkdir(parents=True, exist_ok=True)
            fig.savefig(args.png / f"{name}.png", dpi=110)
        plt.close(fig)
        print(args.out / f"{name}.svg")


if __name__ == "__main__":
    main()
