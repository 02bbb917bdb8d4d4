"""Test split and fold split of a dataset, computed from its metadata alone.

The metadata is a :class:`pandas.DataFrame` with one row per sample, in dataset order: position ``i``
of the metadata is sample ``i`` of the dataset. Every function here returns *positions* (sorted
``int64`` arrays), never index labels.

Two steps, both driven by the ``split:`` section of the config (:class:`~tunecv.config.SplitConfig`):

1. **Test split** (``split.test_split``), the same for every run: it never depends on the run's seed
   (it uses :data:`TEST_SPLIT_SEED`), so every run of a cv or a tune is tested on the same samples.

   - ``none``: no test set.
   - ``random``: a fraction ``test_split_by[0]`` of the samples, stratified by ``stratify_column``
     when one is set.
   - ``region``: the samples whose ``group_column`` value is one of ``test_split_by``.
   - ``sample``: the samples whose id is one of ``test_split_by``. Sample ids are the metadata's index
     labels, or the values of its ``sample_id`` column when it has one.

2. **Fold split** (``split.fold_method``) of the remaining samples, seeded with the run's seed:

   - ``none``: train and validate on all of them (final retraining).
   - ``kfold``: :class:`~sklearn.model_selection.KFold`.
   - ``shuffle``: :class:`~sklearn.model_selection.StratifiedShuffleSplit` by ``stratify_column``
     (:class:`~sklearn.model_selection.ShuffleSplit` without one); each validation set holds
     ``1 / total_folds`` of the samples and validation sets of different folds may overlap.
   - ``stratified``: :class:`~sklearn.model_selection.StratifiedKFold` by ``stratify_column``.
   - ``region``: :class:`~sklearn.model_selection.GroupKFold` by ``group_column`` with shuffled
     groups; every group is validated in exactly one fold and never trained on in that fold.
   - ``region-stratified``: :class:`~sklearn.model_selection.StratifiedGroupKFold`, the same and
     with classes of ``stratify_column`` balanced across folds.

Values of ``test_split_by`` match a metadata value when they are equal or have the same text
(``1`` matches ``"1"``), since command-line values are read as YAML.

This is a leaf module: it imports numpy, pandas and scikit-learn, never torch or lightning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd

from tunecv.config import TEST_SPLITS, SplitConfig
from tunecv.errors import ConfigError, DataError
from tunecv.folds import fold_method
from tunecv.folds.checks import check_stratified_shuffle as _check_stratified_shuffle
from tunecv.folds.checks import codes as _codes
from tunecv.folds.checks import listing as _listing

__all__ = [
    "SAMPLE_ID_COLUMN",
    "TEST_SPLIT_SEED",
    "SplitIndices",
    "check_split",
    "fold_count",
    "split_folds",
    "split_indices",
    "split_test",
]

TEST_SPLIT_SEED = 0
"""Seed of the ``random`` test split: the test set never depends on the run seed."""

SAMPLE_ID_COLUMN = "sample_id"
"""Metadata column holding sample ids for ``test_split: sample`` (the index labels when absent)."""

MAX_SEED = 2**32 - 1  # scikit-learn's random_state range



@dataclass(frozen=True)
class SplitIndices:
    """Positions of the samples of one run, each a sorted ``int64`` array into the dataset.

    Attributes:
        train: samples to fit on.
        val: samples to validate on (the same as ``train`` for ``fold_method: none``).
        test: samples held out for testing (empty for ``test_split: none``).
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


# -- public API ------------------------------------------------------------------------------------

def fold_count(split: SplitConfig) -> int:
    """How many folds ``split`` makes: ``total_folds``, or 1 for ``fold_method: none``."""
    return fold_method(split).fold_count()


def check_split(metadata: pd.DataFrame, split: SplitConfig) -> None:
    """Check that ``split`` can be applied to ``metadata``, before any run starts.

    Checks the columns the split uses (they exist and have no missing values), the names in
    ``test_split_by``, that training data remains after the test split, and that the remaining
    samples, groups and classes are enough for ``total_folds`` folds.

    Args:
        metadata: one row per sample, in dataset order.
        split: the ``split:`` section of the config.

    Raises:
        DataError: the split cannot be made; the message names the config key, the constraint, the
            value received and the valid options.
    """
    _check_metadata(metadata)
    _check_split_config(split)
    _check_columns(metadata, split)
    _check_test_split(metadata, split)
    rest, _ = _split_test(metadata, split)
    if len(rest) == 0:
        raise DataError(f"`split.test_split_by` must leave samples to train on; test_split "
                        f"{split.test_split!r} puts all {len(metadata)} samples in the test set; "
                        f"got {split.test_split_by!r}")
    _check_folds(metadata, split, rest)


def split_test(metadata: pd.DataFrame, split: SplitConfig) -> tuple[np.ndarray, np.ndarray]:
    """Split off the test set (``split.test_split``); independent of any run seed.

    Args:
        metadata: one row per sample, in dataset order.
        split: the ``split:`` section of the config.

    Returns:
        ``(rest, test)``: sorted positions of the samples left for training and validation, and of
        the test samples.

    Raises:
        DataError: see :func:`check_split`.
    """
    check_split(metadata, split)
    return _split_test(metadata, split)


def split_folds(metadata: pd.DataFrame, split: SplitConfig, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split the samples left after the test split into folds (``split.fold_method``).

    The same arguments give the same folds, also in another process.

    Args:
        metadata: one row per sample, in dataset order.
        split: the ``split:`` section of the config.
        seed: the run seed, in ``[0, 2**32 - 1]``; the folds depend on it (not the test set).

    Returns:
        One ``(train, val)`` pair per fold (:func:`fold_count` of them): sorted positions into the
        dataset, never including a test sample.

    Raises:
        DataError: see :func:`check_split`; also a seed out of range.
    """
    check_split(metadata, split)
    _check_seed(seed)
    rest, _ = _split_test(metadata, split)
    return _split_folds(metadata, split, seed, rest)


def split_indices(metadata: pd.DataFrame, split: SplitConfig, fold: int, seed: int) -> SplitIndices:
    """The train, validation and test samples of one run.

    Args:
        metadata: one row per sample, in dataset order.
        split: the ``split:`` section of the config.
        fold: which fold, in ``[0, fold_count(split) - 1]``.
        seed: the run seed, in ``[0, 2**32 - 1]``.

    Returns:
        The positions of the run's samples.

    Raises:
        DataError: see :func:`check_split`; also a fold or seed out of range.
    """
    check_split(metadata, split)
    count = fold_count(split)
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 0 <= fold < count:
        raise DataError(f"`fold` must be an integer in [0, {count - 1}] (fold_method "
                        f"{split.fold_method!r} makes {count} fold{'s' if count > 1 else ''}); got {fold!r}")
    _check_seed(seed)
    rest, test = _split_test(metadata, split)
    train, val = _split_folds(metadata, split, seed, rest)[int(fold)]
    return SplitIndices(train=train, val=val, test=test)


# -- splitting (inputs already checked) ------------------------------------------------------------

def _positions(mask_or_index: np.ndarray) -> np.ndarray:
    return np.sort(np.asarray(mask_or_index, dtype=np.int64))


def _split_test(metadata: pd.DataFrame, split: SplitConfig) -> tuple[np.ndarray, np.ndarray]:
    n = len(metadata)
    by = split.test_split_by or []
    if split.test_split == "none":
        test_mask = np.zeros(n, dtype=bool)
    elif split.test_split == "random":
        from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

        fraction = float(by[0])
        if fold_method(split).uses_groups:
            # Region folds keep groups apart; so does the test set: it holds out a fraction of the groups.
            from sklearn.model_selection import GroupShuffleSplit

            groups, _ = _codes(metadata[split.group_column])
            splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=TEST_SPLIT_SEED)
            _, test_pos = next(splitter.split(np.zeros((n, 1)), None, groups))
            test_mask = np.zeros(n, dtype=bool)
            test_mask[test_pos] = True
            return _positions(np.flatnonzero(~test_mask)), _positions(np.flatnonzero(test_mask))
        if split.stratify_column is not None:
            codes, _ = _codes(metadata[split.stratify_column])
            splitter: Any = StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=TEST_SPLIT_SEED)
        else:
            codes = None
            splitter = ShuffleSplit(n_splits=1, test_size=fraction, random_state=TEST_SPLIT_SEED)
        _, test_pos = next(splitter.split(np.zeros((n, 1)), codes))
        test_mask = np.zeros(n, dtype=bool)
        test_mask[test_pos] = True
    elif split.test_split == "region":
        test_mask, _ = _match(metadata[split.group_column], by)
    else:
        test_mask, _ = _match(_sample_ids(metadata), by)
    return _positions(np.flatnonzero(~test_mask)), _positions(np.flatnonzero(test_mask))


def _split_folds(metadata: pd.DataFrame, split: SplitConfig, seed: int,
                 rest: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    method = fold_method(split)
    if not method.makes_folds:
        return [(rest.copy(), rest.copy())]
    y = _codes(metadata[split.stratify_column])[0][rest] if _stratifies_folds(split) else None
    groups = _codes(metadata[split.group_column])[0][rest] if method.uses_groups else None
    folds = [(_positions(rest[np.asarray(train)]), _positions(rest[np.asarray(val)]))
             for train, val in method.split_positions(len(rest), y, groups, int(seed))]
    for i, (train, val) in enumerate(folds):
        if len(train) == 0 or len(val) == 0:  # not seen with scikit-learn 1.9; guarded all the same
            raise DataError(f"`split.total_folds` must leave every fold a training and a validation sample; "
                            f"fold {i} of fold_method {split.fold_method!r} has {len(train)} training and "
                            f"{len(val)} validation samples with seed {seed}; got {split.total_folds}")
    return folds


# -- metadata helpers --------------------------------------------------------------------------------

def _sorted_unique(values: pd.Series | pd.Index) -> list[Any]:
    uniques = list(pd.unique(np.asarray(values, dtype=object)))
    try:
        return sorted(uniques)
    except TypeError:  # mixed types: keep order of appearance
        return uniques


def _sample_ids(metadata: pd.DataFrame) -> pd.Series | pd.Index:
    return metadata[SAMPLE_ID_COLUMN] if SAMPLE_ID_COLUMN in metadata.columns else metadata.index


def _match(values: pd.Series | pd.Index, wanted: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
    """Which values are in ``wanted`` (equal or with the same text), and the wanted values never seen."""
    raw = np.asarray(values, dtype=object)
    text = raw.astype(str)
    wanted_raw, wanted_text = set(wanted), {str(w) for w in wanted}
    mask = np.fromiter((v in wanted_raw or t in wanted_text for v, t in zip(raw, text, strict=True)),
                       dtype=bool, count=len(raw))
    raw_set, text_set = set(raw.tolist()), set(text.tolist())
    unknown = [w for w in wanted if w not in raw_set and str(w) not in text_set]
    return mask, unknown


def _stratifies_folds(split: SplitConfig) -> bool:
    return split.stratify_column is not None and fold_method(split).stratify != "never"


# -- checks --------------------------------------------------------------------------------------------

def _check_metadata(metadata: Any) -> None:
    if not isinstance(metadata, pd.DataFrame):
        raise DataError(f"`metadata` must be a pandas DataFrame with one row per sample; got "
                        f"{type(metadata).__name__}")
    if len(metadata) == 0:
        raise DataError("`metadata` must be a DataFrame with one row per sample; got an empty DataFrame")


def _check_split_config(split: SplitConfig) -> None:
    """What config validation also checks, for a SplitConfig built by hand."""
    if split.test_split not in TEST_SPLITS:
        raise DataError(f"`split.test_split` must be one of {', '.join(TEST_SPLITS)}; got {split.test_split!r}")
    try:
        method = fold_method(split)
    except ConfigError as exc:
        raise DataError(str(exc)) from None
    lowest = 2 if method.makes_folds else 1
    k = split.total_folds
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < lowest:
        raise DataError(f"`split.total_folds` must be an integer >= {lowest} for fold_method "
                        f"{split.fold_method!r}; got {k!r}")
    by = split.test_split_by
    if split.test_split == "random":
        ok = (by is not None and len(by) == 1 and isinstance(by[0], (int, float)) and not isinstance(by[0], bool)
              and 0 < float(by[0]) < 1)
        if not ok:
            raise DataError("`split.test_split_by` must be one fraction in (0, 1) such as [0.2] for test_split "
                            f"'random'; got {by!r}")
    elif split.test_split in ("region", "sample") and not by:
        what = "region names" if split.test_split == "region" else "sample ids"
        raise DataError(f"`split.test_split_by` must list {what} for test_split {split.test_split!r}; got {by!r}")
    if method.stratify == "required" and split.stratify_column is None:
        raise DataError(f"`split.stratify_column` must name a metadata column for fold_method "
                        f"{split.fold_method!r}; got None")


def _check_column(metadata: pd.DataFrame, key: str, column: Optional[str], use: str) -> None:
    if column not in metadata.columns:
        raise DataError(f"`{key}` must be a metadata column (one of: {_listing(metadata.columns, 20)}) "
                        f"for {use}; got {column!r}")
    missing = np.flatnonzero(pd.isna(metadata[column]).to_numpy())
    if len(missing):
        raise DataError(f"`{key}` must name a column without missing values for {use}; column {column!r} "
                        f"has {len(missing)} (positions {_listing(missing)}); got {column!r}")


def _check_columns(metadata: pd.DataFrame, split: SplitConfig) -> None:
    uses = []
    if split.test_split == "region":
        uses.append("test_split 'region'")
    if fold_method(split).uses_groups:
        uses.append(f"fold_method {split.fold_method!r}")
    if uses:
        _check_column(metadata, "split.group_column", split.group_column, " and ".join(uses))
    if split.stratify_column is not None:
        _check_column(metadata, "split.stratify_column", split.stratify_column, "stratification")


def _check_test_split(metadata: pd.DataFrame, split: SplitConfig) -> None:
    by = split.test_split_by or []
    if split.test_split == "region":
        values = metadata[split.group_column]
        _, unknown = _match(values, by)
        if unknown:
            raise DataError(f"`split.test_split_by` must name values of group_column {split.group_column!r} "
                            f"(one of: {_listing(_sorted_unique(values))}); got unknown "
                            f"{_listing(unknown, quote=True)}")
    elif split.test_split == "sample":
        ids = _sample_ids(metadata)
        where = f"column {SAMPLE_ID_COLUMN!r}" if SAMPLE_ID_COLUMN in metadata.columns else "the metadata index"
        _, unknown = _match(ids, by)
        if unknown:
            raise DataError(f"`split.test_split_by` must name sample ids of {where} (one of: "
                            f"{_listing(ids)}); got unknown {_listing(unknown, quote=True)}")
    elif split.test_split == "random":
        fraction = float(by[0])
        if fold_method(split).uses_groups:  # the test set is a fraction of the groups
            n, unit = len(_codes(metadata[split.group_column])[1]), f"groups of group_column {split.group_column!r}"
        else:
            n, unit = len(metadata), "samples"
        n_test = math.ceil(fraction * n)
        if n - n_test < 1:
            raise DataError(f"`split.test_split_by` must leave {unit} to train on: a test fraction of "
                            f"{fraction} of {n} {unit} takes {n_test}; got {by!r}")
        if split.stratify_column is not None and not fold_method(split).uses_groups:
            _check_stratified_shuffle(metadata, split, np.arange(n), n_test,
                                      "`split.test_split_by`", by, "test_split 'random'")


def _check_folds(metadata: pd.DataFrame, split: SplitConfig, rest: np.ndarray) -> None:
    method, name, k = fold_method(split), split.fold_method, split.total_folds
    if not method.makes_folds:
        return
    after = " after the test split" if split.test_split != "none" else ""
    if len(rest) < k:
        raise DataError(f"`split.total_folds` must be at most the number of samples ({len(rest)}{after}) "
                        f"for fold_method {name!r}; got {k}")
    if method.uses_groups:
        n_groups = len(pd.unique(metadata[split.group_column].to_numpy()[rest]))
        if n_groups < k:
            raise DataError(f"`split.total_folds` must be at most the number of groups in group_column "
                            f"{split.group_column!r} for fold_method {name!r}: {n_groups} group"
                            f"{'s' if n_groups != 1 else ''} exist{'' if n_groups != 1 else 's'}{after}; got {k}")
    method.check(metadata, rest, after)


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise DataError(f"`seed` must be an integer in [0, {MAX_SEED}] (scikit-learn's random_state); got {seed!r}")
