"""Scoring aggregations: the values of ``cv.multi_score_strategy``.

With several scoring metrics, an aggregation combines each run's metrics (a ``:lower`` metric enters as
``1/value``) into one value; :func:`tunecv.scoring.score_runs` then averages those over the runs. It is a
subclass of :class:`Aggregation`; the built-ins (one module each) are ``arithmetic``, ``geometric``,
``harmonic`` and ``min``. A user's own is registered with one line,
``tunecv.register_aggregation("name", MyAggregation)``, or named by its dotted path
(``cv: {multi_score_strategy: my_pkg.scores.MyAggregation}``). See docs/extending.md.
"""

from __future__ import annotations

from typing import Any

from tunecv.registry import Registry

__all__ = ["AGGREGATIONS", "Aggregation", "aggregation", "register_aggregation"]


class Aggregation:
    """Combines the scoring metrics of each run into one value.

    ``skips_unstable``: runs with a scoring metric that is 0 or not finite are left out (the score is 0.0
    when none is left), as the harmonic and geometric means need; otherwise every run whose metrics and
    combined value are finite counts.
    """

    skips_unstable: bool = False

    def combine(self, values: Any) -> Any:
        """One value per row of ``values`` (a runs x metrics float array, higher is better in every column);
        NaN where undefined."""
        raise NotImplementedError


AGGREGATIONS = Registry("cv.multi_score_strategy", "a scoring aggregation", {
    "arithmetic": "tunecv.aggregations.arithmetic:Arithmetic",
    "geometric": "tunecv.aggregations.geometric:Geometric",
    "harmonic": "tunecv.aggregations.harmonic:Harmonic",
    "min": "tunecv.aggregations.minimum:Minimum",
})


def register_aggregation(name: str, cls: Any) -> None:
    """Register an :class:`Aggregation` subclass (or ``"module:Class"``) as ``cv.multi_score_strategy: name``."""
    AGGREGATIONS.register(name, cls)


def aggregation(name: str, key: str = "cv.multi_score_strategy") -> Aggregation:
    """The aggregation that ``name`` names (a registered name or a dotted class path), built."""
    return AGGREGATIONS.load_class(name, Aggregation, key)()
