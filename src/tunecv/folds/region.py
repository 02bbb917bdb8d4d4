"""``fold_method: region``: scikit-learn's GroupKFold by ``group_column`` with shuffled groups: every group
is validated in exactly one fold and never trained on in that fold."""

from __future__ import annotations

import functools
import inspect

from tunecv.folds import FoldMethod


@functools.cache
def group_kfold_shuffles() -> bool:
    """GroupKFold learned ``shuffle`` in scikit-learn 1.6; before, groups are relabelled at random instead."""
    from sklearn.model_selection import GroupKFold

    return "shuffle" in inspect.signature(GroupKFold).parameters


class RegionMethod(FoldMethod):
    """:class:`~sklearn.model_selection.GroupKFold` by ``group_column``."""

    uses_groups = True

    def split_positions(self, n, y, groups, seed):
        import numpy as np
        from sklearn.model_selection import GroupKFold

        k = self.split.total_folds
        if group_kfold_shuffles():
            return GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros((n, 1)), None, groups)
        groups = np.random.default_rng(seed).permutation(groups.max() + 1)[groups]
        return GroupKFold(n_splits=k).split(np.zeros((n, 1)), None, groups)
