"""Helpers that fold methods (and :mod:`tunecv.splits`) share to read metadata and word their errors."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from tunecv.errors import DataError

__all__ = ["MAX_LISTED", "check_stratified_shuffle", "class_counts", "codes", "fmt", "listing"]

MAX_LISTED = 10  # values listed in an error message before "..."


def fmt(value: Any) -> str:
    """``repr`` of a value, numpy scalars as Python ones."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def listing(values: Iterable[Any], limit: int = MAX_LISTED, quote: bool = False) -> str:
    """The first ``limit`` values, comma-separated, with how many there are in all when cut."""
    items = list(values)
    shown = [fmt(v) if quote else str(v) for v in items[:limit]]
    more = f", ... ({len(items)} in all)" if len(items) > limit else ""
    return ", ".join(shown) + more


def codes(column: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Integer codes of a column's values (sorted values when sortable) and the values themselves."""
    try:
        found, uniques = pd.factorize(column, sort=True)
    except TypeError:  # mixed types cannot be sorted
        found, uniques = pd.factorize(column, sort=False)
    return found.astype(np.int64), list(uniques)


def class_counts(metadata: pd.DataFrame, column: Any, rows: np.ndarray) -> tuple[list[Any], np.ndarray]:
    """The classes of ``column`` present in ``rows`` and their sizes there."""
    found, uniques = codes(metadata[column])
    counts = np.bincount(found[rows], minlength=len(uniques))
    present = counts > 0
    return [u for u, p in zip(uniques, present, strict=True) if p], counts[present]


def check_stratified_shuffle(metadata: pd.DataFrame, split: Any, rows: np.ndarray, n_val: int,
                             size_key: str, size_value: Any, use: str) -> None:
    """The needs of StratifiedShuffleSplit: 2 members per class, every class in both parts."""
    column = split.stratify_column
    classes, counts = class_counts(metadata, column, rows)
    single = [c for c, n in zip(classes, counts, strict=True) if n < 2]
    if single:
        raise DataError(f"`split.stratify_column` must have at least 2 samples per class to stratify {use}; "
                        f"class{'es' if len(single) > 1 else ''} {listing(single, quote=True)} of column "
                        f"{column!r} ha{'ve' if len(single) > 1 else 's'} 1; got {column!r}")
    n_train = len(rows) - n_val
    for part, size in (("held-out", n_val), ("training", n_train)):
        if size < len(classes):
            raise DataError(f"{size_key} must give every class of stratify_column {column!r} a sample in each "
                            f"part of {use}: the {part} part holds {size} of {len(rows)} samples, fewer than "
                            f"the {len(classes)} classes; got {size_value!r}")
