"""Tests of :mod:`tunecv.splits`: properties over random metadata, and every DataError."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tunecv import splits
from tunecv.config import TEST_SPLITS, SplitConfig
from tunecv.errors import ConfigError, DataError
from tunecv.folds import FOLD_METHODS as _REGISTRY
from tunecv.folds import region as region_folds
from tunecv.splits import SplitIndices, check_split, fold_count, split_folds, split_indices, split_test

FOLD_METHODS = _REGISTRY.names()

# Methods where the validation sets of the folds partition the samples left after the test split.
PARTITIONING = ("kfold", "stratified", "region", "region-stratified")
GROUP_METHODS = ("region", "region-stratified")

# region-stratified with a class smaller than total_folds: scikit-learn warns, tunecv lets it through
pytestmark = pytest.mark.filterwarnings("ignore:The least populated class in y:UserWarning")

PROPERTY_SETTINGS = settings(max_examples=40, deadline=None,
                             suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


def make_metadata(n: int, n_groups: int, n_classes: int, data_seed: int, sample_id_column: bool = False,
                  int_labels: bool = False) -> pd.DataFrame:
    """``n`` samples; every one of ``n_groups`` groups and ``n_classes`` classes present when n allows."""
    rng = np.random.default_rng(data_seed)
    groups = np.concatenate([np.arange(n_groups), rng.integers(0, n_groups, max(n - n_groups, 0))])[:n]
    labels = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, max(n - n_classes, 0))])[:n]
    perm = rng.permutation(n)
    metadata = pd.DataFrame({
        "region": [f"g{g}" for g in groups[perm]],
        "label": labels[perm] if int_labels else [f"c{c}" for c in labels[perm]],
        "other": rng.normal(size=n),
    }, index=[f"s{i}" for i in range(n)])
    if sample_id_column:
        metadata["sample_id"] = [f"id{i}" for i in range(n)]
    return metadata


@st.composite
def valid_cases(draw: st.DrawFn) -> tuple[pd.DataFrame, SplitConfig, int]:
    """Metadata and a split config that check_split accepts, and a seed."""
    fold_method = draw(st.sampled_from(FOLD_METHODS))
    k = draw(st.integers(2, 5))
    test_split = draw(st.sampled_from(TEST_SPLITS))
    n_groups = draw(st.integers(k + 2, 10))
    n_classes = draw(st.integers(1, 3))
    n = draw(st.integers(max(n_groups, 4 * k), 60))
    sample_id_column = draw(st.booleans())
    metadata = make_metadata(n, n_groups, n_classes, draw(st.integers(0, 2**16)), sample_id_column,
                             int_labels=draw(st.booleans()))
    if test_split == "random":
        by: list | None = [draw(st.sampled_from([0.1, 0.2, 0.25, 0.4]))]
    elif test_split == "region":
        by = draw(st.lists(st.sampled_from([f"g{g}" for g in range(n_groups)]), min_size=1, max_size=2,
                           unique=True))
    elif test_split == "sample":
        ids = list(metadata["sample_id"] if sample_id_column else metadata.index)
        by = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=n // 3, unique=True))
    else:
        by = None
    needs_labels = fold_method in ("stratified", "region-stratified")
    stratify = "label" if needs_labels or draw(st.booleans()) else None
    split = SplitConfig(test_split=test_split, test_split_by=by, fold_method=fold_method, total_folds=k,
                        group_column="region", stratify_column=stratify)
    try:
        check_split(metadata, split)
    except DataError:
        assume(False)
    return metadata, split, draw(st.integers(0, 2**32 - 1))


# -- properties ------------------------------------------------------------------------------------------

@PROPERTY_SETTINGS
@given(valid_cases())
def test_folds_are_disjoint_cover_everything_and_keep_groups_apart(case: tuple) -> None:
    metadata, split, seed = case
    n = len(metadata)
    rest, test = split_test(metadata, split)
    folds = split_folds(metadata, split, seed)
    assert len(folds) == fold_count(split)
    assert np.array_equal(np.union1d(rest, test), np.arange(n))
    assert len(np.intersect1d(rest, test)) == 0
    run = split_indices(metadata, split, len(folds) - 1, seed)
    assert np.array_equal(run.train, folds[-1][0]) and np.array_equal(run.val, folds[-1][1])
    assert np.array_equal(run.test, test)
    groups = metadata["region"].to_numpy()
    for train, val in folds:
        for part in (train, val, test):
            assert part.dtype == np.int64
            assert np.array_equal(part, np.unique(part))  # sorted, no repeats
            assert part.size == 0 or (part[0] >= 0 and part[-1] < n)
        assert len(train) > 0 and len(val) > 0
        assert len(np.intersect1d(train, test)) == 0 and len(np.intersect1d(val, test)) == 0
        if split.fold_method == "none":
            assert np.array_equal(train, rest) and np.array_equal(val, rest)
        else:
            assert len(np.intersect1d(train, val)) == 0
            assert np.array_equal(np.union1d(np.union1d(train, val), test), np.arange(n))
        if split.fold_method in GROUP_METHODS:
            assert not set(groups[train]) & set(groups[val])
        if split.test_split == "region":
            assert not set(groups[test]) & set(groups[np.union1d(train, val)])
            assert set(groups[test]) == set(split.test_split_by)


@PROPERTY_SETTINGS
@given(valid_cases())
def test_partitioning_methods_validate_every_sample_exactly_once(case: tuple) -> None:
    metadata, split, seed = case
    assume(split.fold_method in PARTITIONING)
    rest, _ = split_test(metadata, split)
    validated = np.concatenate([val for _, val in split_folds(metadata, split, seed)])
    assert np.array_equal(np.sort(validated), rest)


@PROPERTY_SETTINGS
@given(valid_cases(), st.integers(0, 2**32 - 1))
def test_same_seed_same_split_and_test_set_ignores_the_seed(case: tuple, other_seed: int) -> None:
    metadata, split, seed = case
    first, again = split_folds(metadata, split, seed), split_folds(metadata, split, seed)
    assert all(np.array_equal(a, b) for fa, fb in zip(first, again, strict=True) for a, b in zip(fa, fb, strict=True))
    assert np.array_equal(split_indices(metadata, split, 0, seed).test,
                          split_indices(metadata, split, 0, other_seed).test)


@settings(max_examples=30, deadline=None)
@given(st.integers(30, 80), st.integers(0, 2**32 - 2))
def test_kfold_differs_between_seeds(n: int, seed: int) -> None:
    metadata = make_metadata(n, 3, 2, seed % 1000)
    split = SplitConfig(fold_method="kfold", total_folds=3)
    first, second = split_folds(metadata, split, seed), split_folds(metadata, split, seed + 1)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(first, second, strict=True))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**16), st.integers(2, 5), st.integers(1, 3), st.integers(20, 80))
def test_stratified_folds_balance_every_class(data_seed: int, k: int, n_classes: int, n: int) -> None:
    metadata = make_metadata(n, 3, n_classes, data_seed)
    split = SplitConfig(fold_method="stratified", total_folds=k, stratify_column="label")
    try:
        check_split(metadata, split)
    except DataError:
        assume(False)
    per_fold = [metadata["label"].iloc[val].value_counts() for _, val in split_folds(metadata, split, data_seed)]
    counts = pd.DataFrame(per_fold).fillna(0)
    assert ((counts.max() - counts.min()) <= 1).all()


@st.composite
def any_cases(draw: st.DrawFn) -> tuple[pd.DataFrame, SplitConfig]:
    """Metadata and split configs that are often impossible."""
    n = draw(st.integers(1, 25))
    metadata = make_metadata(n, draw(st.integers(1, 6)), draw(st.integers(1, 4)), draw(st.integers(0, 999)))
    if draw(st.booleans()):
        metadata.loc[metadata.index[0], draw(st.sampled_from(["region", "label"]))] = None
    test_split = draw(st.sampled_from(TEST_SPLITS))
    names = [f"g{g}" for g in range(7)] if test_split == "region" else [f"s{i}" for i in range(27)]
    by = {"none": None, "random": [draw(st.sampled_from([0.05, 0.3, 0.5, 0.9]))]}.get(
        test_split, draw(st.lists(st.sampled_from(names), min_size=1, max_size=4)))
    split = SplitConfig(test_split=test_split, test_split_by=by, fold_method=draw(st.sampled_from(FOLD_METHODS)),
                        total_folds=draw(st.integers(2, 6)),
                        group_column=draw(st.sampled_from(["region", "regoin"])),
                        stratify_column=draw(st.sampled_from(["label", "other", None, "lable"])))
    return metadata, split


@settings(max_examples=100, deadline=None)
@given(any_cases(), st.integers(0, 2**32 - 1))
def test_check_split_catches_everything_that_would_fail_later(case: tuple, seed: int) -> None:
    metadata, split = case
    try:
        check_split(metadata, split)
    except DataError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith("`split.")
        with pytest.raises(DataError):
            split_folds(metadata, split, seed)
        return
    for fold in range(fold_count(split)):
        run = split_indices(metadata, split, fold, seed)
        assert len(run.train) > 0 and len(run.val) > 0


def test_region_without_groupkfold_shuffle_relabels_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(region_folds, "group_kfold_shuffles", lambda: False)
    metadata = make_metadata(60, 9, 2, 0)
    split = SplitConfig(fold_method="region", total_folds=3)
    folds = split_folds(metadata, split, 7)
    assert [np.array_equal(a[1], b[1]) for a, b in zip(folds, split_folds(metadata, split, 7), strict=True)] == [True] * 3
    assert np.array_equal(np.sort(np.concatenate([v for _, v in folds])), np.arange(60))
    groups = metadata["region"].to_numpy()
    assert all(not set(groups[t]) & set(groups[v]) for t, v in folds)


def test_splits_are_identical_in_another_process() -> None:
    code = """
import json, sys
import pandas as pd
from tunecv.config import SplitConfig
from tunecv.folds import FOLD_METHODS as REGISTRY
from tunecv.splits import split_folds
FOLD_METHODS = REGISTRY.names()
md = pd.DataFrame(json.load(sys.stdin))
out = {}
for fm in FOLD_METHODS:
    sp = SplitConfig(test_split="random", test_split_by=[0.2], fold_method=fm, total_folds=3, stratify_column="label")
    out[fm] = [[tr.tolist(), va.tolist()] for tr, va in split_folds(md, sp, 1234)]
print(json.dumps(out))
"""
    md = make_metadata(50, 6, 3, 1)
    result = subprocess.run([sys.executable, "-c", code], input=json.dumps(md.to_dict(orient="list")),
                            capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONHASHSEED": "123"})
    there = json.loads(result.stdout)
    for fm in FOLD_METHODS:
        sp = SplitConfig(test_split="random", test_split_by=[0.2], fold_method=fm, total_folds=3,
                         stratify_column="label")
        here = [[tr.tolist(), va.tolist()] for tr, va in split_folds(md.reset_index(drop=True), sp, 1234)]
        assert here == there[fm], fm


# -- examples ------------------------------------------------------------------------------------------

def penguins(n_per: int = 4) -> pd.DataFrame:
    """A small metadata table: 3 islands x 2 years, species cycling."""
    rows = []
    for island in ("Biscoe", "Dream", "Torgersen"):
        for year in (2007, 2008):
            for i in range(n_per):
                rows.append({"island": island, "region": f"{island}-{year}",
                             "species": ("Adelie", "Gentoo")[i % 2]})
    return pd.DataFrame(rows)


def test_none_test_split_and_none_fold_method_train_on_everything() -> None:
    md = penguins()
    run = split_indices(md, SplitConfig(fold_method="none", total_folds=1), 0, 42)
    assert isinstance(run, SplitIndices)
    assert np.array_equal(run.train, np.arange(len(md))) and np.array_equal(run.val, run.train)
    assert run.test.size == 0 and run.test.dtype == np.int64


def test_random_test_split_fraction_and_stratification() -> None:
    md = penguins(10)
    rest, test = split_test(md, SplitConfig(test_split="random", test_split_by=[0.25], stratify_column="species"))
    assert len(test) == 15 and len(rest) == 45
    assert md["species"].iloc[test].value_counts().to_dict() in ({"Adelie": 8, "Gentoo": 7},
                                                                  {"Adelie": 7, "Gentoo": 8})
    assert splits.TEST_SPLIT_SEED == 0


def test_region_test_split_takes_the_named_groups() -> None:
    md = penguins()
    _, test = split_test(md, SplitConfig(test_split="region", test_split_by=["Dream"], group_column="island"))
    assert set(md["island"].iloc[test]) == {"Dream"} and len(test) == 8


def test_sample_test_split_uses_index_labels_or_sample_id_column() -> None:
    md = penguins()
    _, test = split_test(md, SplitConfig(test_split="sample", test_split_by=["3", 5]))  # text or value matches
    assert test.tolist() == [3, 5]
    md.index = [f"row{i}" for i in range(len(md))]
    md["sample_id"] = [f"id{i}" for i in range(len(md))]
    _, test = split_test(md, SplitConfig(test_split="sample", test_split_by=["id7", "id1"]))
    assert test.tolist() == [1, 7]


def test_positions_ignore_index_labels() -> None:
    md = make_metadata(40, 5, 2, 3)
    relabelled = md.set_axis(np.arange(40)[::-1] * 10)  # index labels no longer positions
    split = SplitConfig(test_split="region", test_split_by=["g0"], fold_method="region-stratified",
                        total_folds=3, stratify_column="label")
    for a, b in zip(split_folds(md, split, 5), split_folds(relabelled, split, 5), strict=True):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_shuffle_without_stratify_column_uses_shufflesplit() -> None:
    md = penguins(5)
    folds = split_folds(md, SplitConfig(fold_method="shuffle", total_folds=4), 3)
    assert len(folds) == 4 and all(len(val) == 8 and len(train) == 22 for train, val in folds)


# -- every DataError ----------------------------------------------------------------------------------

def many_regions() -> pd.DataFrame:
    return pd.DataFrame({"region": [f"r{i:02d}" for i in range(30)], "label": ["a", "b"] * 15})


ERROR_CASES = {
    "group column missing": (
        penguins(), SplitConfig(fold_method="region", group_column="regoin"),
        ["`split.group_column`", "must be a metadata column", "island, region, species", "'regoin'"]),
    "group column missing for region test split": (
        penguins(), SplitConfig(test_split="region", test_split_by=["x"], fold_method="none", group_column="isle"),
        ["`split.group_column`", "test_split 'region'", "'isle'"]),
    "stratify column missing": (
        penguins(), SplitConfig(fold_method="stratified", stratify_column="specis"),
        ["`split.stratify_column`", "island, region, species", "'specis'"]),
    "group column has missing values": (
        penguins().assign(island=lambda d: d["island"].where(d.index != 3)),
        SplitConfig(fold_method="region", group_column="island", total_folds=2),
        ["`split.group_column`", "missing values", "positions 3", "'island'"]),
    "unknown region": (
        penguins(), SplitConfig(test_split="region", test_split_by=["Dream", "Biscoee"], group_column="island"),
        ["`split.test_split_by`", "Biscoe, Dream, Torgersen", "unknown 'Biscoee'"]),
    "unknown region, long list truncated": (
        many_regions(), SplitConfig(test_split="region", test_split_by=["r99"], fold_method="none", total_folds=1),
        ["`split.test_split_by`", "r00, r01", "r09, ... (30 in all)", "unknown 'r99'"]),
    "unknown sample id in the index": (
        penguins(), SplitConfig(test_split="sample", test_split_by=[3, 99]),
        ["`split.test_split_by`", "metadata index", "0, 1, 2", "(24 in all)", "unknown 99"]),
    "unknown sample id in the sample_id column": (
        penguins().assign(sample_id=lambda d: [f"p{i}" for i in range(len(d))]),
        SplitConfig(test_split="sample", test_split_by=["p1", "p100"]),
        ["`split.test_split_by`", "column 'sample_id'", "p0, p1", "unknown 'p100'"]),
    "more folds than samples": (
        penguins(1), SplitConfig(fold_method="kfold", total_folds=7),
        ["`split.total_folds`", "number of samples (6)", "'kfold'", "got 7"]),
    "more folds than samples after the test split": (
        penguins(1), SplitConfig(test_split="region", test_split_by=["Dream"], group_column="island",
                                 fold_method="kfold", total_folds=5),
        ["`split.total_folds`", "(4 after the test split)", "got 5"]),
    "more folds than groups (region)": (
        penguins(), SplitConfig(fold_method="region", group_column="island", total_folds=4),
        ["`split.total_folds`", "number of groups", "'island'", "3 groups exist", "got 4"]),
    "more folds than groups (region-stratified)": (
        penguins(), SplitConfig(fold_method="region-stratified", group_column="island", total_folds=5,
                                stratify_column="species"),
        ["`split.total_folds`", "'region-stratified'", "3 groups exist", "got 5"]),
    "stratified without stratify column": (
        penguins(), SplitConfig(fold_method="stratified"),
        ["`split.stratify_column`", "'stratified'", "got None"]),
    "region-stratified without stratify column": (
        penguins(), SplitConfig(fold_method="region-stratified"),
        ["`split.stratify_column`", "'region-stratified'", "got None"]),
    "class smaller than folds (stratified)": (
        penguins().assign(species=lambda d: d["species"].where(d.index > 1, "Chinstrap")),
        SplitConfig(fold_method="stratified", stratify_column="species", total_folds=3),
        ["`split.total_folds`", "every class", "'Chinstrap' has 2", "got 3"]),
    "every class smaller than folds (region-stratified)": (
        pd.DataFrame({"region": list("abcdefgh"), "species": ["Adelie", "Gentoo"] * 4}),
        SplitConfig(fold_method="region-stratified", stratify_column="species", total_folds=5),
        ["`split.total_folds`", "largest class", "'Adelie' has 4", "got 5"]),
    "class with one member (stratified shuffle)": (
        penguins().assign(species=lambda d: d["species"].where(d.index > 0, "Chinstrap")),
        SplitConfig(fold_method="shuffle", stratify_column="species", total_folds=3),
        ["`split.stratify_column`", "at least 2 samples per class", "'Chinstrap'", "got 'species'"]),
    "validation set smaller than classes (stratified shuffle)": (
        pd.DataFrame({"label": list("aabbccdd")}), SplitConfig(fold_method="shuffle", stratify_column="label",
                                                               total_folds=4),
        ["`split.total_folds`", "held-out part holds 2 of 8", "4 classes", "got 4"]),
    "class with one member (stratified random test split)": (
        penguins().assign(species=lambda d: d["species"].where(d.index > 0, "Chinstrap")),
        SplitConfig(test_split="random", test_split_by=[0.2], stratify_column="species", fold_method="none",
                    total_folds=1),
        ["`split.stratify_column`", "test_split 'random'", "'Chinstrap'"]),
    "test fraction too small for the classes": (
        pd.DataFrame({"label": list("aabbccdd") * 2}),
        SplitConfig(test_split="random", test_split_by=[0.1], stratify_column="label", fold_method="none",
                    total_folds=1),
        ["`split.test_split_by`", "held-out part holds 2 of 16", "4 classes", "got [0.1]"]),
    "empty train set after a region test split": (
        penguins(), SplitConfig(test_split="region", test_split_by=["Biscoe", "Dream", "Torgersen"],
                                group_column="island"),
        ["`split.test_split_by`", "samples to train on", "all 24 samples", "'Biscoe', 'Dream', 'Torgersen'"]),
    "empty train set after a random test split": (
        penguins().iloc[:1], SplitConfig(test_split="random", test_split_by=[0.5], fold_method="none", total_folds=1),
        ["`split.test_split_by`", "samples to train on", "of 1 samples takes 1", "got [0.5]"]),
    "test_split_by not a fraction": (
        penguins(), SplitConfig(test_split="random", test_split_by=[20]),
        ["`split.test_split_by`", "one fraction in (0, 1)", "got [20]"]),
    "test_split_by empty for region": (
        penguins(), SplitConfig(test_split="region", test_split_by=[]),
        ["`split.test_split_by`", "region names", "got []"]),
    "unknown fold method": (
        penguins(), SplitConfig(fold_method="regoin"),  # type: ignore[arg-type]
        ["`split.fold_method`", "region-stratified", "got 'regoin'"]),
    "too few folds": (
        penguins(), SplitConfig(fold_method="kfold", total_folds=1),
        ["`split.total_folds`", ">= 2", "got 1"]),
}


@pytest.mark.parametrize("case", ERROR_CASES, ids=list(ERROR_CASES))
def test_check_split_errors(case: str) -> None:
    metadata, split, expected = ERROR_CASES[case]
    with pytest.raises(DataError) as info:
        check_split(metadata, split)
    message = str(info.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    with pytest.raises(DataError):  # the splitting functions check too, never a scikit-learn ValueError
        split_indices(metadata, split, 0, 42)


def test_data_error_is_a_config_error() -> None:
    assert issubclass(DataError, ConfigError)


@pytest.mark.parametrize(("fold", "fold_method", "total_folds", "expected"), [
    (5, "kfold", 5, "[0, 4]"),
    (-1, "kfold", 5, "[0, 4]"),
    (1, "none", 1, "[0, 0]"),
    ("0", "kfold", 2, "[0, 1]"),
])
def test_fold_out_of_range(fold: object, fold_method: str, total_folds: int, expected: str) -> None:
    split = SplitConfig(fold_method=fold_method, total_folds=total_folds)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"^`fold` must be an integer in") as info:
        split_indices(penguins(), split, fold, 42)  # type: ignore[arg-type]
    assert expected in str(info.value) and f"got {fold!r}" in str(info.value)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True])
def test_seed_out_of_range(seed: object) -> None:
    with pytest.raises(DataError, match=r"^`seed` must be an integer") as info:
        split_folds(penguins(), SplitConfig(), seed)  # type: ignore[arg-type]
    assert f"got {seed!r}" in str(info.value)


@pytest.mark.parametrize(("metadata", "expected"), [
    ([1, 2, 3], "got list"),
    (pd.DataFrame({"a": []}), "empty DataFrame"),
])
def test_metadata_must_be_a_non_empty_dataframe(metadata: object, expected: str) -> None:
    with pytest.raises(DataError, match=r"^`metadata` must be") as info:
        check_split(metadata, SplitConfig())  # type: ignore[arg-type]
    assert expected in str(info.value)


@settings(max_examples=40, deadline=None)
@given(n_groups=st.integers(8, 20), data_seed=st.integers(0, 10_000), fraction=st.sampled_from([0.1, 0.2, 0.3]),
       method=st.sampled_from(["region", "region-stratified"]))
def test_random_test_split_with_region_folds_holds_out_whole_groups(n_groups, data_seed, fraction, method):
    meta = make_metadata(n_groups * 12, n_groups, 2, data_seed)
    split = SplitConfig(test_split="random", test_split_by=[fraction], fold_method=method, total_folds=3,
                        group_column="region", stratify_column="label" if method == "region-stratified" else None)
    rest, test = split_test(meta, split)
    assert len(test) > 0
    assert not set(meta["region"].iloc[test]) & set(meta["region"].iloc[rest])
