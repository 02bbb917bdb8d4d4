"""``multi_score_strategy: geometric``: ``exp(mean(log v))``; use it for recall / precision / F1 / IoU."""

from __future__ import annotations

from tunecv.aggregations import Aggregation


class Geometric(Aggregation):
    """The geometric mean: NaN for a negative value, 0 for a 0; unstable runs are skipped."""

    skips_unstable = True

    def combine(self, values):
        import numpy as np

        return np.exp(np.log(values).mean(axis=1))
