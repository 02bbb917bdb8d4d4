"""``fold_method: shuffle``: StratifiedShuffleSplit by ``stratify_column`` (ShuffleSplit without one); each
validation set holds ``1 / total_folds`` of the samples, and validation sets may overlap."""

from __future__ import annotations

import math

from tunecv.folds import FoldMethod
from tunecv.folds.checks import check_stratified_shuffle


class ShuffleMethod(FoldMethod):
    """Random validation sets of ``1 / total_folds`` of the samples."""

    stratify = "optional"

    def split_positions(self, n, y, groups, seed):
        import numpy as np
        from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

        k = self.split.total_folds
        cls = StratifiedShuffleSplit if y is not None else ShuffleSplit
        return cls(n_splits=k, test_size=1 / k, random_state=seed).split(np.zeros((n, 1)), y)

    def check(self, metadata, rest, after):
        if self.split.stratify_column is None:
            return
        k = self.split.total_folds
        check_stratified_shuffle(metadata, self.split, rest, math.ceil(len(rest) / k), "`split.total_folds`", k,
                                 f"fold_method 'shuffle'{after}")
