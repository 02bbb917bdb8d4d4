"""A scoring aggregation: twice a run's worst metric.

Registered with ``tunecv.register_aggregation("worst-twice", WorstTwice)``, or named by its path.
"""

from __future__ import annotations

from tunecv.aggregations import Aggregation


class WorstTwice(Aggregation):
    def combine(self, values):
        return 2.0 * values.min(axis=1)
