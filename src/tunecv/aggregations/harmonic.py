"""``multi_score_strategy: harmonic`` (the default): ``n / sum(1 / v)``."""

from __future__ import annotations

from tunecv.aggregations import Aggregation


class Harmonic(Aggregation):
    """The harmonic mean; unstable runs are skipped."""

    skips_unstable = True

    def combine(self, values):
        return values.shape[1] / (1.0 / values).sum(axis=1)
