"""Paired statistics between the trials of a tune.

Every cv of a tune trains the same (fold, seed) pairs, so two trials can be compared pair by pair: the
noise that a fold or a seed adds to both cancels out. For each trial this module gives its cv score with
a 95 % interval over its runs; for a trial against the best one, the paired difference over the pairs
both finished, its 95 % interval, and a two-sided Wilcoxon signed-rank p-value.

What decides whether two trials can be told apart: the **95 % paired t interval** of the mean
difference (``scipy.stats.t``): distinguishable when it excludes 0, i.e. a two-sided paired t-test at
``ALPHA``. Why: a cv has few pairs (3 to 15), and every exact test on signs or ranks (Wilcoxon, a
sign-flip permutation test) cannot go below ``2 / 2**n``: with 5 pairs its smallest two-sided p is
0.0625, so it can never say "different" at 0.05, however far apart two trials are. A bootstrap of 5
pairs has 126 distinct resamples and its interval comes out too narrow. The t interval uses the spread
of the differences and works from 2 pairs on; it assumes the mean difference is roughly normal, and an
odd pair widens it (the mistake it then makes is "cannot be told apart"). It is also the interval the
report shows, so the mark and the interval never disagree.

The Wilcoxon p-value (``scipy.stats.wilcoxon``, as Optuna's ``WilcoxonPruner`` applies it to the same
per-run scores) is kept as a distribution-free second opinion; :func:`few_pairs_line` says when it
cannot reach ``ALPHA`` with the pairs there are.

Pure functions of numbers; numpy and scipy are imported where used.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Optional, Union

__all__ = ["ALPHA", "Interval", "PairedComparison", "few_pairs_line", "mean_interval", "paired_comparison",
           "wilcoxon_min_p"]

#: significance level of the paired test and 1 - the coverage of every interval.
ALPHA = 0.05


@dataclass(frozen=True)
class Interval:
    """A mean and its 95 % Student-t interval (``low``/``high`` NaN with fewer than 2 values).

    Attributes:
        mean: the mean of the values.
        low: lower end of the interval.
        high: upper end of the interval.
        n: how many finite values.
    """

    mean: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PairedComparison:
    """A trial against a reference trial (the best), over the (fold, seed) pairs both finished.

    Attributes:
        n_pairs: the shared pairs with a finite score in both.
        difference: the mean of ``trial - reference`` per pair, with its 95 % paired t interval.
        p_value: two-sided Wilcoxon signed-rank p-value (1.0 when every difference is 0; NaN under 2 pairs).
        distinguishable: the interval of the difference excludes 0: the two trials can be told apart on
            these pairs (a two-sided paired t-test at ``alpha``).
        p_can_reach_alpha: whether the Wilcoxon test could reach ``alpha`` at all with ``n_pairs`` pairs
            (:func:`wilcoxon_min_p` below ``alpha``); when not, ``p_value`` says nothing about the difference.
    """

    n_pairs: int
    difference: Interval
    p_value: float
    distinguishable: bool
    p_can_reach_alpha: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"n_pairs": self.n_pairs, "difference": self.difference.to_dict(), "p_value": self.p_value,
                "distinguishable": self.distinguishable, "p_can_reach_alpha": self.p_can_reach_alpha}


def mean_interval(values: Sequence[float], confidence: float = 1 - ALPHA) -> Interval:
    """The mean of the finite ``values`` and its Student-t interval.

    Args:
        values: per-run scores (NaN ones are left out).
        confidence: the interval's coverage.
    """
    import numpy as np
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    if sem == 0.0:
        return Interval(mean, mean, mean, n)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return Interval(mean, float(low), float(high), n)


def paired_comparison(trial: Mapping[Hashable, float], reference: Mapping[Hashable, float],
                      alpha: float = ALPHA) -> PairedComparison:
    """Compare two trials pair by pair.

    Args:
        trial: per-run score by pair key (such as ``(fold, seed)``).
        reference: the same for the reference trial (the best).
        alpha: the significance level.

    Returns:
        The :class:`PairedComparison` of ``trial - reference`` over the keys both have a finite score for.
    """
    from scipy import stats

    keys = [k for k in trial if k in reference and _finite(trial[k]) and _finite(reference[k])]
    diffs = [float(trial[k]) - float(reference[k]) for k in keys]
    interval = mean_interval(diffs, 1 - alpha)
    p: float
    if len(diffs) < 2:
        p = math.nan
    elif all(d == 0.0 for d in diffs):
        p = 1.0  # identical on every pair: nothing tells them apart
    else:
        # zsplit: a pair with no difference counts half for each side (as Optuna's WilcoxonPruner)
        p = float(stats.wilcoxon(diffs, zero_method="zsplit", alternative="two-sided").pvalue)
    excludes_zero = (math.isfinite(interval.low) and math.isfinite(interval.high)
                     and (interval.low > 0.0 or interval.high < 0.0))
    return PairedComparison(len(diffs), interval, p, bool(excludes_zero), wilcoxon_min_p(len(diffs)) < alpha)


def wilcoxon_min_p(n_pairs: int) -> float:
    """The smallest two-sided p-value an exact signed-rank test can give with ``n_pairs`` pairs:
    ``2 / 2**n`` (every difference on one side); 1.0 under 1 pair. The same bound holds for any exact
    sign-flip permutation test."""
    if n_pairs < 1:
        return 1.0
    return min(1.0, 2.0 / 2.0 ** n_pairs)


def few_pairs_line(n_pairs: Union[int, Iterable[int]], alpha: float = ALPHA) -> Optional[str]:
    """The line that says a Wilcoxon p cannot reach ``alpha`` with ``n_pairs`` pairs (one count, or the
    counts of several comparisons: those that cannot), or ``None`` when it can.

    Example: ``5 paired runs: a difference cannot be significant at 0.05 by Wilcoxon (smallest p 0.062);
    ≈ best is read from the 95% paired t intervals shown``.
    """
    counts = [n_pairs] if isinstance(n_pairs, int) else list(n_pairs)
    short = sorted({n for n in counts if n >= 1 and wilcoxon_min_p(n) >= alpha})
    if not short:
        return None
    lo, hi = short[0], short[-1]
    runs = f"{hi} paired run{'s' if hi != 1 else ''}" if lo == hi else f"{lo} to {hi} paired runs"
    return (f"{runs}: a difference cannot be significant at {alpha:g} by Wilcoxon (smallest p "
            f"{wilcoxon_min_p(hi):.2g}); ≈ best is read from the {1 - alpha:.0%} paired t intervals shown")


def _finite(value: Optional[float]) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
