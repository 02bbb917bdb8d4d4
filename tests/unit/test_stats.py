"""Paired statistics between trials, checked against scipy and hand-computed values on fixed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tunecv.stats import few_pairs_line, mean_interval, paired_comparison, wilcoxon_min_p

# The issue's example: per-fold scores of two cvs of one tune (cv5 led the board 1.740 to 1.715).
CV5 = [1.80, 1.69, 1.79, 1.79, 1.63]
CV1 = [1.72, 1.58, 1.83, 1.78, 1.66]


def pairs(values):
    return {(fold, 42): v for fold, v in enumerate(values)}


def test_mean_interval_is_the_student_t_interval():
    got = mean_interval(CV5)
    assert got.mean == pytest.approx(1.74) and got.n == 5
    # by hand: sd = 0.07176, t(0.975, 4) = 2.776445
    half = 2.7764451 * np.std(CV5, ddof=1) / math.sqrt(5)
    assert (got.low, got.high) == pytest.approx((1.74 - half, 1.74 + half), abs=1e-6)
    ci = stats.ttest_1samp(CV5, 0.0).confidence_interval(0.95)
    assert (got.low, got.high) == pytest.approx((ci.low, ci.high))


def test_mean_interval_edge_cases():
    assert math.isnan(mean_interval([]).mean)
    one = mean_interval([0.5, math.nan])
    assert one.mean == 0.5 and one.n == 1 and math.isnan(one.low)
    same = mean_interval([0.5, 0.5, 0.5])
    assert (same.low, same.high) == (0.5, 0.5)


def test_issue_example_cannot_be_told_apart():
    c = paired_comparison(pairs(CV1), pairs(CV5))
    # differences -0.08 -0.11 +0.04 -0.01 +0.03: ranks of |d| 4 5 3 1 2, W+ = 5, W- = 10;
    # exact two-sided p = 2 * P(W <= 5 | n=5) = 2 * 10/32
    assert c.p_value == pytest.approx(0.625)
    assert c.p_value == pytest.approx(stats.wilcoxon(np.array(CV1) - np.array(CV5)).pvalue)
    assert c.n_pairs == 5 and not c.distinguishable
    assert c.difference.mean == pytest.approx(-0.026)
    ci = stats.ttest_rel(CV1, CV5).confidence_interval(0.95)
    assert (c.difference.low, c.difference.high) == pytest.approx((ci.low, ci.high))
    assert c.difference.low < 0 < c.difference.high


def test_clearly_worse_trial_is_distinguishable():
    best = [0.90, 0.88, 0.91, 0.87, 0.92, 0.89, 0.90, 0.93]
    worse = [b - d for b, d in zip(best, [0.05, 0.04, 0.06, 0.03, 0.05, 0.07, 0.04, 0.05], strict=True)]
    c = paired_comparison(pairs(worse), pairs(best))
    # all 8 differences negative: exact two-sided p = 2 / 2**8
    assert c.p_value == pytest.approx(2 / 256)
    assert c.p_value == pytest.approx(stats.wilcoxon(worse, best, zero_method="zsplit").pvalue)
    assert c.distinguishable and c.difference.high < 0


def test_a_copy_of_the_best_is_not_distinguishable():
    best = pairs([0.9, 0.8, 0.85, 0.7, 0.95, 0.9])
    c = paired_comparison(dict(best), best)
    assert c.p_value == 1.0 and not c.distinguishable
    assert (c.difference.mean, c.difference.low, c.difference.high) == (0.0, 0.0, 0.0)


def test_only_shared_finite_pairs_count():
    trial = {(0, 42): 0.5, (1, 42): 0.6, (2, 42): math.nan, (3, 42): 0.7}
    best = {(0, 42): 0.6, (1, 42): 0.65, (2, 42): 0.9}
    c = paired_comparison(trial, best)
    assert c.n_pairs == 2
    assert c.difference.mean == pytest.approx(-0.075)
    assert c.p_value == pytest.approx(stats.wilcoxon([-0.1, -0.05]).pvalue)
    lone = paired_comparison({(0, 42): 0.5}, best)
    assert lone.n_pairs == 1 and math.isnan(lone.p_value) and not lone.distinguishable


def test_five_pairs_far_apart_are_told_apart_by_the_interval():
    """Issue 29, finding 1: with 5 pairs the smallest two-sided signed-rank p-value is 2/32, so the p-value can
    never decide; the paired t interval does."""
    c = paired_comparison(pairs([0.1, 0.25, 0.3, 0.38, 0.5]), pairs([1.1, 1.2, 1.3, 1.4, 1.5]))
    assert c.p_value == pytest.approx(2 / 32) and not c.p_can_reach_alpha
    ci = stats.ttest_rel([0.1, 0.25, 0.3, 0.38, 0.5], [1.1, 1.2, 1.3, 1.4, 1.5]).confidence_interval(0.95)
    assert (c.difference.low, c.difference.high) == pytest.approx((ci.low, ci.high))
    assert c.difference.high < 0 and c.distinguishable


def test_a_pruned_trial_far_below_the_best_is_not_marked_like_it():
    # the issue's report line `-1.27 [-1.42, -1.13] p=0.25`: 3 pairs, p can never go below 0.25
    best = [1.72, 1.70, 1.75]
    trial = [0.47, 0.40, 0.49]
    c = paired_comparison(pairs(trial), pairs(best))
    assert c.p_value == pytest.approx(0.25) and not c.p_can_reach_alpha
    assert c.difference.high < 0 and c.distinguishable


def test_interval_covering_zero_is_not_distinguishable_whatever_the_pairs():
    c = paired_comparison(pairs(CV1), pairs(CV5))
    assert c.difference.low < 0 < c.difference.high and not c.distinguishable and not c.p_can_reach_alpha
    eight = paired_comparison(pairs([0.9, 0.8, 0.7, 0.6, 0.9, 0.8, 0.7, 0.61]),
                              pairs([0.8, 0.9, 0.6, 0.7, 0.8, 0.9, 0.6, 0.7]))
    assert eight.p_can_reach_alpha and not eight.distinguishable


def test_wilcoxon_min_p_and_the_few_pairs_line():
    assert [wilcoxon_min_p(n) for n in (0, 1, 2, 5, 6)] == [1.0, 1.0, 0.5, 2 / 32, 2 / 64]
    # the bound is what scipy's exact test gives when every difference is on one side
    assert stats.wilcoxon([-1, -2, -3, -4, -5]).pvalue == pytest.approx(wilcoxon_min_p(5))
    assert few_pairs_line(5) == ("5 paired runs: a difference cannot be significant at 0.05 by Wilcoxon (smallest p "
                                 "0.062); ≈ best is read from the 95% paired t intervals shown")
    assert few_pairs_line(6) is None and few_pairs_line(0) is None
