"""``fold_method: kfold``: scikit-learn's KFold, shuffled with the run's seed."""

from __future__ import annotations

from tunecv.folds import FoldMethod


class KFoldMethod(FoldMethod):
    """:class:`~sklearn.model_selection.KFold` (shuffled)."""

    def split_positions(self, n, y, groups, seed):
        import numpy as np
        from sklearn.model_selection import KFold

        return KFold(n_splits=self.split.total_folds, shuffle=True, random_state=seed).split(np.zeros((n, 1)))
