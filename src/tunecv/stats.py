"""Paired statistics between the trials of a tune.

Every cv of a tune trains the same (fold, seed) pairs, so two trials can be compared pair by pair: the
noise that a fold or a seed adds to both cancels out. For each trial this module gives its cv score with
a 95 % interval over its runs; for a trial against the best one, the paired difference over the pairs
both finished, its 95 % interval, and a two-sided Wilcoxon signed-rank test.

Why Wilcoxon (``scipy.stats.wilcoxon``) and not a paired bootstrap: a cv has few pairs (5 to 15), where
a bootstrap's interval is too narrow (5 pairs have 126 distinct resamples) and its p-value coarse, while
the signed-rank test is exact for small samples, assumes no normal distribution, is not thrown by one
odd fold, and is the test Optuna's ``WilcoxonPruner`` already applies to the same per-run scores. The
intervals are Student-t intervals of the mean (``scipy.stats.t``), since the cv score is a mean.
With 5 or fewer pairs no two-sided signed-rank test reaches p < 0.05: such trials are always reported
as not distinguishable, which is the honest answer.

Pure functions of numbers; numpy and scipy are imported where used.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Optional

__all__ = ["ALPHA", "Interval", "PairedComparison", "mean_interval", "paired_comparison"]

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
        difference: the mean of ``trial - reference`` per pair, with its 95 % interval.
        p_value: two-sided Wilcoxon signed-rank p-value (1.0 when every difference is 0; NaN under 2 pairs).
        distinguishable: ``p_value < ALPHA``: the two trials can be told apart on these pairs.
    """

    n_pairs: int
    difference: Interval
    p_value: float
    distinguishable: bool

    def to_dict(self) -> dict[str, Any]:
        return {"n_pairs": self.n_pairs, "difference": self.difference.to_dict(), "p_value": self.p_value,
                "distinguishable": self.distinguishable}


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
    return PairedComparison(len(diffs), interval, p, bool(math.isfinite(p) and p < alpha))


def _finite(value: Optional[float]) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
