"""Trackers: the values of ``logging.trackers`` (default ``[csv, wandb]``).

A tracker follows each training run: the Lightning loggers it adds to the run, and the run's start and end
(with its exit status). It is a subclass of :class:`Tracker`, built once per run from the config; the
built-ins (one module each) are ``csv`` (``{run}/csv/metrics.csv``, always useful: ``tunecv report`` reads
it) and ``wandb`` (a W&B run per run when ``logging.wandb_project`` is set or the user's ``trainer.logger``
holds a WandbLogger). A user's own is registered with one line,
``tunecv.register_tracker("name", MyTracker)``, or named by its dotted path
(``logging: {trackers: [csv, wandb, my_pkg.track.MyTracker]}``). See docs/extending.md.

:mod:`tunecv.train` calls every tracker of the run the same way: :meth:`Tracker.select` and
:meth:`Tracker.loggers` when the run's loggers are made (the user's loggers first, then each tracker's in
the order of ``logging.trackers``), :meth:`Tracker.start` once the Trainer exists, and :meth:`Tracker.finish`
when the run ends (``exit_code`` 0) or raises (1).
"""

from __future__ import annotations

from typing import Any

from tunecv.registry import Registry

__all__ = ["TRACKERS", "Tracker", "register_tracker", "run_trackers"]


class Tracker:
    """Follows one training run. ``self.cfg`` is the run's config.

    ``run`` below is the run's :class:`tunecv.tracking.RunIdentity`: ``run_id``, ``run_name``, ``group``,
    ``job_type``, ``run_dir`` (the run's folder) and ``wandb_defaults``.
    """

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def select(self, run: Any, user_loggers: list[Any]) -> list[Any]:
        """The user's loggers (``trainer.logger``) the run keeps; all of them unless a tracker drops one."""
        return user_loggers

    def loggers(self, run: Any, user_loggers: list[Any], package: str) -> list[Any]:
        """The Lightning loggers this tracker adds to the run (``package``: ``lightning.pytorch`` or
        ``pytorch_lightning``, the package of the run's model)."""
        return []

    def start(self, run: Any, trainer: Any, loggers: list[Any]) -> None:
        """The Trainer exists and fit is about to start; ``loggers`` is the run's list (a tracker may take
        one out, and then sets ``trainer.loggers`` again)."""

    def finish(self, run: Any, exit_code: int) -> None:
        """The run ended: ``exit_code`` 0 when it completed, 1 when it raised."""


TRACKERS = Registry("logging.trackers", "a tracker", {
    "csv": "tunecv.trackers.csvlog:CSVTracker",
    "wandb": "tunecv.trackers.wandblog:WandbTracker",
})


def register_tracker(name: str, cls: Any) -> None:
    """Register a :class:`Tracker` subclass (or ``"module:Class"``) as a ``logging.trackers`` entry."""
    TRACKERS.register(name, cls)


def run_trackers(cfg: Any) -> list[Tracker]:
    """One tracker of each ``logging.trackers`` entry, built for one run."""
    out = []
    for i, name in enumerate(cfg.logging.trackers):
        key = f"logging.trackers[{i}]"
        out.append(TRACKERS.load_class(name, Tracker, key)(cfg))
    return out
