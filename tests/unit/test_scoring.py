"""Scoring: every strategy x direction against hand-computed numbers, unstable runs, errors, properties."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunecv.errors import ConfigError
from tunecv.scoring import (
    MULTI_SCORE_STRATEGIES,
    cv_score,
    is_unstable,
    parse_metric,
    score_direction,
    score_runs,
)

# Two stable runs used throughout:
#   run 1: a = 0.5,  b = 0.8
#   run 2: a = 0.25, b = 0.4
TWO_RUNS = {"a": [0.5, 0.25], "b": [0.8, 0.4]}


def frame(columns: dict, status: list[str] | None = None) -> pd.DataFrame:
    df = pd.DataFrame(columns)
    if status is not None:
        df["status"] = status
    return df


# -- parse_metric / score_direction -------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "expected"), [
    ("val/acc", ("val/acc", True)),
    ("val/acc:higher", ("val/acc", True)),
    ("val/loss:lower", ("val/loss", False)),
    ("val:x/loss:lower", ("val:x/loss", False)),   # only the final suffix is a direction
    ("val:x", ("val:x", True)),                     # an unknown suffix is part of the name
    ("val/loss:lower:higher", ("val/loss:lower", True)),
])
def test_parse_metric(spec, expected):
    assert parse_metric(spec) == expected


@pytest.mark.parametrize("spec", ["", ":lower", ":higher", None, 3])
def test_parse_metric_rejects_empty_names(spec):
    with pytest.raises(ConfigError, match=r"cv\.scoring_metric"):
        parse_metric(spec)


@pytest.mark.parametrize(("metric", "direction"), [
    ("val/loss:lower", "minimize"),
    (["val/loss:lower"], "minimize"),
    ("val/acc", "maximize"),
    (["val/acc:higher"], "maximize"),
    (["val/loss:lower", "val/mse:lower"], "maximize"),   # a combination is always higher-is-better
    (["val/acc", "val/loss:lower"], "maximize"),
])
def test_score_direction(metric, direction):
    assert score_direction(metric) == direction


def test_empty_metric_list_is_an_error():
    with pytest.raises(ConfigError, match="at least one metric"):
        score_runs(frame(TWO_RUNS), [])


# -- one metric: plain mean, no inversion ---------------------------------------------------------------

@pytest.mark.parametrize("strategy", MULTI_SCORE_STRATEGIES)
@pytest.mark.parametrize("spec", ["a", "a:higher", "a:lower"])
def test_one_metric_is_the_plain_mean(strategy, spec):
    # (0.5 + 0.25) / 2 = 0.375, for every strategy and direction (a :lower metric is not inverted:
    # the tune minimizes it instead)
    assert score_runs(frame(TWO_RUNS), spec, strategy) == pytest.approx(0.375)
    assert score_runs(frame(TWO_RUNS), [spec], strategy) == pytest.approx(0.375)


@pytest.mark.parametrize("strategy", MULTI_SCORE_STRATEGIES)
def test_one_metric_mean_over_finite_values_only(strategy):
    # values 0.5, 0.25, NaN, inf, 0.0: the finite ones are 0.5, 0.25, 0.0 -> 0.75 / 3 = 0.25
    df = frame({"a": [0.5, 0.25, np.nan, np.inf, 0.0]})
    assert score_runs(df, "a", strategy) == pytest.approx(0.25)


@pytest.mark.parametrize("strategy", MULTI_SCORE_STRATEGIES)
def test_one_metric_without_finite_value_is_nan(strategy):
    assert math.isnan(score_runs(frame({"a": [np.nan, np.inf]}), "a:lower", strategy))


# -- several metrics: combine per run, then mean over runs ------------------------------------------------

# higher/higher: run values (0.5, 0.8) and (0.25, 0.4)
#   arithmetic: (0.65 + 0.325) / 2                         = 0.4875
#   geometric:  (sqrt(0.5*0.8) + sqrt(0.25*0.4)) / 2        = (sqrt(0.4) + sqrt(0.1)) / 2 = 0.47434165
#   harmonic:   (2/(2+1.25) + 2/(4+2.5)) / 2 = (8/13 + 4/13) / 2 = 6/13 = 0.46153846
#   min:        (0.5 + 0.25) / 2                            = 0.375
# lower/lower: inverted run values (2, 1.25) and (4, 2.5)
#   arithmetic: (1.625 + 3.25) / 2                          = 2.4375
#   geometric:  (sqrt(2.5) + sqrt(10)) / 2                  = 2.37170825
#   harmonic:   (2/(0.5+0.8) + 2/(0.25+0.4)) / 2 = (20/13 + 40/13) / 2 = 30/13 = 2.30769231
#   min:        (1.25 + 2.5) / 2                            = 1.875
# a higher, b lower: run values (0.5, 1.25) and (0.25, 2.5)
#   arithmetic: (0.875 + 1.375) / 2                         = 1.125
#   geometric:  (sqrt(0.625) + sqrt(0.625)) / 2             = sqrt(0.625) = 0.79056942
#   harmonic:   (2/(2+0.8) + 2/(4+0.4)) / 2 = (5/7 + 5/11) / 2 = 45/77 = 0.58441558
#   min:        (0.5 + 0.25) / 2                            = 0.375
EXPECTED = {
    ("a", "b"): {"arithmetic": 0.4875, "geometric": (math.sqrt(0.4) + math.sqrt(0.1)) / 2,
                 "harmonic": 6 / 13, "min": 0.375},
    ("a:lower", "b:lower"): {"arithmetic": 2.4375, "geometric": (math.sqrt(2.5) + math.sqrt(10)) / 2,
                             "harmonic": 30 / 13, "min": 1.875},
    ("a:higher", "b:lower"): {"arithmetic": 1.125, "geometric": math.sqrt(0.625),
                              "harmonic": 45 / 77, "min": 0.375},
}


@pytest.mark.parametrize("strategy", MULTI_SCORE_STRATEGIES)
@pytest.mark.parametrize("specs", list(EXPECTED))
def test_several_metrics_hand_computed(specs, strategy):
    assert score_runs(frame(TWO_RUNS), list(specs), strategy) == pytest.approx(EXPECTED[specs][strategy])


def test_hand_computed_decimals():
    # The fractions above written out, so a wrong fraction cannot hide a wrong implementation.
    assert score_runs(frame(TWO_RUNS), ["a", "b"], "geometric") == pytest.approx(0.47434165)
    assert score_runs(frame(TWO_RUNS), ["a", "b"], "harmonic") == pytest.approx(0.46153846)
    assert score_runs(frame(TWO_RUNS), ["a:lower", "b:lower"], "geometric") == pytest.approx(2.37170825)
    assert score_runs(frame(TWO_RUNS), ["a:lower", "b:lower"], "harmonic") == pytest.approx(2.30769231)
    assert score_runs(frame(TWO_RUNS), ["a", "b:lower"], "geometric") == pytest.approx(0.79056942)
    assert score_runs(frame(TWO_RUNS), ["a", "b:lower"], "harmonic") == pytest.approx(0.58441558)


def test_default_strategy_is_harmonic():
    assert score_runs(frame(TWO_RUNS), ["a", "b"]) == pytest.approx(6 / 13)


# -- unstable runs ------------------------------------------------------------------------------------------

# TWO_RUNS plus three unstable runs: a = NaN, a = inf, a = 0 (b = 0.5 each)
WITH_UNSTABLE = {"a": [0.5, 0.25, np.nan, np.inf, 0.0], "b": [0.8, 0.4, 0.5, 0.5, 0.5]}


@pytest.mark.parametrize("strategy", ["harmonic", "geometric"])
@pytest.mark.parametrize("specs", list(EXPECTED))
def test_harmonic_and_geometric_skip_unstable_runs(specs, strategy):
    # the three unstable runs are skipped: same score as the two stable runs alone
    assert score_runs(frame(WITH_UNSTABLE), list(specs), strategy) == pytest.approx(EXPECTED[specs][strategy])


def test_arithmetic_and_min_use_every_finite_run():
    df = frame(WITH_UNSTABLE)
    # higher/higher: NaN and inf runs have no finite combined value; the a = 0 run does:
    #   arithmetic: (0.65 + 0.325 + (0 + 0.5)/2) / 3 = 1.225 / 3 = 0.40833333
    #   min:        (0.5 + 0.25 + 0) / 3 = 0.25
    assert score_runs(df, ["a", "b"], "arithmetic") == pytest.approx(1.225 / 3)
    assert score_runs(df, ["a", "b"], "min") == pytest.approx(0.25)
    # a lower, b higher: the NaN and inf runs are skipped (a metric not finite, although 1/inf = 0);
    # the a = 0 run enters as 1/0 = inf:
    #   arithmetic: its combined value (inf + 0.5)/2 is inf -> skipped;
    #     run 1 (2 + 0.8)/2 = 1.4, run 2 (4 + 0.4)/2 = 2.2 -> (1.4 + 2.2) / 2 = 1.8
    #   min: min(inf, 0.5) = 0.5 is finite -> kept; run 1 min(2, 0.8) = 0.8, run 2 min(4, 0.4) = 0.4
    #     -> (0.8 + 0.4 + 0.5) / 3 = 0.56666667
    assert score_runs(df, ["a:lower", "b"], "arithmetic") == pytest.approx(1.8)
    assert score_runs(df, ["a:lower", "b"], "min") == pytest.approx(1.7 / 3)


@pytest.mark.parametrize("strategy", ["harmonic", "geometric"])
def test_all_unstable_scores_zero(strategy):
    df = frame({"a": [np.nan, np.inf, 0.0, -np.inf], "b": [0.5, 0.5, 0.5, 0.5]})
    assert score_runs(df, ["a", "b"], strategy) == 0.0
    assert score_runs(df, ["a:lower", "b:lower"], strategy) == 0.0


@pytest.mark.parametrize("strategy", ["arithmetic", "min"])
def test_arithmetic_and_min_without_finite_run_are_nan(strategy):
    df = frame({"a": [np.nan, np.inf], "b": [0.5, 0.5]})
    assert math.isnan(score_runs(df, ["a", "b"], strategy))


def test_geometric_skips_a_run_with_a_negative_metric():
    # run 2 has a = -0.25: no geometric mean; only run 1 counts: sqrt(0.5 * 0.8) = sqrt(0.4)
    df = frame({"a": [0.5, -0.25], "b": [0.8, 0.4]})
    assert score_runs(df, ["a", "b"], "geometric") == pytest.approx(math.sqrt(0.4))


@pytest.mark.parametrize("value", [None, np.nan, math.inf, -math.inf, 0.0, 0, pd.NA, "not a number"])
def test_is_unstable_values(value):
    assert is_unstable({"a": 0.5, "b": value}, ["a", "b:lower"])
    assert is_unstable(pd.Series({"a": 0.5, "b": value}, dtype=object), ["a", "b"])


def test_is_unstable_stable_and_missing():
    assert not is_unstable({"a": 0.5, "b": -2.0}, ["a", "b:lower"])
    assert not is_unstable(pd.Series({"a": 0.5, "b": 1.0}), "b")
    assert is_unstable({"a": 0.5}, ["a", "b"])           # a missing metric
    assert not is_unstable({"a": 0.5, "b": np.nan}, "a")  # only scoring metrics count


# -- status, errors, cv_score ---------------------------------------------------------------------------------

def test_failed_and_pruned_rows_are_ignored():
    df = frame({"a": [0.5, 0.25, 100.0, 0.0], "b": [0.8, 0.4, 100.0, np.nan]},
               status=["completed", "completed", "failed", "pruned"])
    for specs, by_strategy in EXPECTED.items():
        for strategy, expected in by_strategy.items():
            assert score_runs(df, list(specs), strategy) == pytest.approx(expected)
    # one metric: (0.5 + 0.25) / 2
    assert score_runs(df, "a") == pytest.approx(0.375)


def test_no_completed_run():
    df = frame({"a": [0.5], "b": [0.8]}, status=["failed"])
    assert math.isnan(score_runs(df, "a"))
    assert score_runs(df, ["a", "b"], "harmonic") == 0.0
    assert math.isnan(score_runs(df, ["a", "b"], "arithmetic"))
    score, unstable = cv_score(df, ["a", "b"], "harmonic")
    assert (score, unstable) == (0.0, True)


def test_missing_metric_lists_logged_metrics():
    df = pd.DataFrame({
        "run_name": ["r1", "r2"], "run_id": ["aaaaaaaa", "bbbbbbbb"], "fold": [0, 1], "seed": [42, 42],
        "status": ["completed", "completed"], "duration": [1.0, 2.0], "is_unstable": [False, False],
        "val/loss": [0.3, 0.4], "val/acc": [0.9, 0.8], "val/never": [np.nan, np.nan],
        "score": [1.0, 1.0], "trial": [0, 0], "model.init_args.lr": [0.1, 0.1],
    })
    with pytest.raises(ConfigError) as info:
        score_runs(df, ["val/acc", "val/f1"])
    assert str(info.value) == ("`cv.scoring_metric` names 'val/f1' but no run logged it; "
                               "logged metrics: val/acc, val/loss")
    # an all-missing column counts as not logged; several missing metrics are all named
    with pytest.raises(ConfigError, match=r"names 'val/never', 'val/f1' but no run logged them"):
        score_runs(df, ["val/never:lower", "val/f1"])


def test_missing_metric_hints_at_a_bad_direction_suffix():
    with pytest.raises(ConfigError, match=r"'val/loss:lowr'.*':higher' or ':lower'.*logged metrics: val/loss"):
        score_runs(frame({"val/loss": [0.3]}), "val/loss:lowr")


def test_missing_metric_with_nothing_logged():
    with pytest.raises(ConfigError, match=r"logged metrics: none$"):
        score_runs(frame({"run_name": ["r"]}, status=["completed"]), "val/acc")


def test_unknown_strategy():
    with pytest.raises(ConfigError) as info:
        score_runs(frame(TWO_RUNS), ["a", "b"], "x")
    assert str(info.value) == ("`cv.multi_score_strategy` must be one of arithmetic, geometric, harmonic, min; got 'x' "
                               "(or the dotted path of a scoring aggregation class: my_pkg.module.MyClass)")


def test_cv_score_stable_and_unstable():
    assert cv_score(frame(TWO_RUNS), ["a", "b"], "harmonic") == (pytest.approx(6 / 13), False)
    assert cv_score(frame(WITH_UNSTABLE), ["a", "b"], "harmonic") == (pytest.approx(6 / 13), True)
    # an unstable failed run does not make the score unstable
    df = frame({"a": [0.5, 0.25, np.nan], "b": [0.8, 0.4, 0.1]}, status=["completed", "completed", "failed"])
    assert cv_score(df, ["a", "b"], "harmonic") == (pytest.approx(6 / 13), False)
    # a single metric: a 0 still makes the cv unstable, though the mean uses it: (0.5 + 0) / 2
    assert cv_score(frame({"a": [0.5, 0.0]}), "a", "harmonic") == (pytest.approx(0.25), True)


def test_nullable_and_object_columns():
    df = pd.DataFrame({"a": pd.array([0.5, 0.25, None], dtype="Float64"),
                       "b": pd.Series([0.8, 0.4, None], dtype=object)})
    assert score_runs(df, ["a", "b"], "harmonic") == pytest.approx(6 / 13)
    assert score_runs(df, "a") == pytest.approx(0.375)


# -- properties -----------------------------------------------------------------------------------------------

positive = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)
REFERENCE = {"arithmetic": statistics.fmean, "geometric": statistics.geometric_mean,
             "harmonic": statistics.harmonic_mean, "min": min}


@settings(max_examples=200, deadline=None)
@given(values=st.lists(positive, min_size=1, max_size=5), data=st.data(),
       n_runs=st.integers(1, 6), strategy=st.sampled_from(MULTI_SCORE_STRATEGIES))
def test_identical_runs_score_their_combined_value(values, data, n_runs, strategy):
    higher = data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values)))
    names = [f"m{i}" for i in range(len(values))]
    specs = [n if h else f"{n}:lower" for n, h in zip(names, higher, strict=True)]
    df = pd.DataFrame([dict(zip(names, values, strict=True))] * n_runs)
    if len(values) == 1:
        expected = values[0]  # one metric: its plain value, never inverted
    else:
        expected = REFERENCE[strategy]([v if h else 1 / v for v, h in zip(values, higher, strict=True)])
    assert score_runs(df, specs, strategy) == pytest.approx(expected, rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(1, 6).flatmap(
    lambda k: st.lists(st.lists(positive, min_size=k, max_size=k), min_size=1, max_size=6)),
    data=st.data())
def test_strategy_order_for_positive_metrics(rows, data):
    k = len(rows[0])
    higher = data.draw(st.lists(st.booleans(), min_size=k, max_size=k))
    names = [f"m{i}" for i in range(k)]
    specs = [n if h else f"{n}:lower" for n, h in zip(names, higher, strict=True)]
    df = pd.DataFrame(rows, columns=names)
    s = {strategy: score_runs(df, specs, strategy) for strategy in MULTI_SCORE_STRATEGIES}
    tol = 1e-9 * max(1.0, s["arithmetic"])
    assert s["min"] <= s["harmonic"] + tol
    assert s["harmonic"] <= s["geometric"] + tol
    assert s["geometric"] <= s["arithmetic"] + tol


# -- a sequence of mappings (DARTS's score_from_runs takes a list of records) -------------------------

@pytest.mark.parametrize("strategy", MULTI_SCORE_STRATEGIES)
def test_a_list_of_records_scores_as_the_same_frame(strategy):
    records = [{"a": 0.5, "b": 0.8, "status": "completed"}, {"a": 0.25, "b": 0.4, "status": "completed"},
               {"a": None, "b": None, "status": "failed"}]
    df = pd.DataFrame(records)
    assert score_runs(records, ["a", "b:lower"], strategy) == score_runs(df, ["a", "b:lower"], strategy)
    assert cv_score(records, ["a"], strategy) == cv_score(df, ["a"], strategy)
    assert score_runs(tuple(records), "a") == pytest.approx(0.375)


def test_records_missing_a_metric_list_the_logged_ones():
    with pytest.raises(ConfigError, match=r"'val/f1'.*logged metrics: val/acc"):
        score_runs([{"val/acc": 0.5}], "val/f1")


@pytest.mark.parametrize("bad", ["runs.parquet", 3, [1, 2]])
def test_run_infos_of_another_type_is_a_type_error(bad):
    with pytest.raises(TypeError, match="DataFrame or a sequence of mappings"):
        score_runs(bad, "a")
