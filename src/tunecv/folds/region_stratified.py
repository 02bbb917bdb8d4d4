"""``fold_method: region-stratified``: scikit-learn's StratifiedGroupKFold: groups kept apart as ``region``
and classes of ``stratify_column`` balanced across folds."""

from __future__ import annotations

from tunecv.errors import DataError
from tunecv.folds import FoldMethod
from tunecv.folds.checks import class_counts, fmt


class RegionStratifiedMethod(FoldMethod):
    """:class:`~sklearn.model_selection.StratifiedGroupKFold` (shuffled)."""

    uses_groups = True
    stratify = "required"

    def split_positions(self, n, y, groups, seed):
        import numpy as np
        from sklearn.model_selection import StratifiedGroupKFold

        splitter = StratifiedGroupKFold(n_splits=self.split.total_folds, shuffle=True, random_state=seed)
        return splitter.split(np.zeros((n, 1)), y, groups)

    def check(self, metadata, rest, after):
        import numpy as np

        k, column = self.split.total_folds, self.split.stratify_column
        classes, counts = class_counts(metadata, column, rest)
        if all(n < k for n in counts):
            largest = int(np.argmax(counts))
            raise DataError(f"`split.total_folds` must be at most the size of the largest class of stratify_column "
                            f"{column!r} for fold_method 'region-stratified'{after} ({fmt(classes[largest])} has "
                            f"{counts[largest]}); got {k}")
