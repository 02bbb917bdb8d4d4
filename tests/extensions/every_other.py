"""A fold method: fold ``i`` validates every ``k``-th sample from position ``i`` (no shuffling, no seed).

Registered with ``tunecv.register_fold_method("every-other", EveryOther)``, or named by its path
``tests.extensions.every_other.EveryOther``.
"""

from __future__ import annotations

import numpy as np

from tunecv.folds import FoldMethod

CALLS: list[tuple[int, int]] = []  # (samples, seed) of every split made in this process


class EveryOther(FoldMethod):
    def split_positions(self, n, y, groups, seed):
        CALLS.append((n, seed))
        k, everything = self.split.total_folds, np.arange(n)
        return [(everything[everything % k != i], everything[everything % k == i]) for i in range(k)]
