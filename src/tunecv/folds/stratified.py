"""``fold_method: stratified``: scikit-learn's StratifiedKFold by ``stratify_column``."""

from __future__ import annotations

from tunecv.errors import DataError
from tunecv.folds import FoldMethod
from tunecv.folds.checks import class_counts, fmt, listing


class StratifiedMethod(FoldMethod):
    """:class:`~sklearn.model_selection.StratifiedKFold` (shuffled): classes balanced across folds."""

    stratify = "required"

    def split_positions(self, n, y, groups, seed):
        import numpy as np
        from sklearn.model_selection import StratifiedKFold

        splitter = StratifiedKFold(n_splits=self.split.total_folds, shuffle=True, random_state=seed)
        return splitter.split(np.zeros((n, 1)), y)

    def check(self, metadata, rest, after):
        k, column = self.split.total_folds, self.split.stratify_column
        classes, counts = class_counts(metadata, column, rest)
        small = [(c, n) for c, n in zip(classes, counts, strict=True) if n < k]
        if small:
            listed = listing(f"{fmt(c)} has {n}" for c, n in small)
            raise DataError(f"`split.total_folds` must be at most the size of every class of stratify_column "
                            f"{column!r} for fold_method 'stratified'{after} ({listed}); got {k}")
