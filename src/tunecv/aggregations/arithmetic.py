"""``multi_score_strategy: arithmetic``: the mean of a run's metrics."""

from __future__ import annotations

from tunecv.aggregations import Aggregation


class Arithmetic(Aggregation):
    """The arithmetic mean."""

    def combine(self, values):
        return values.mean(axis=1)
