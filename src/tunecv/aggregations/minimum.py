"""``multi_score_strategy: min``: a run is as good as its worst metric."""

from __future__ import annotations

from tunecv.aggregations import Aggregation


class Minimum(Aggregation):
    """The smallest metric."""

    def combine(self, values):
        return values.min(axis=1)
