"""``logging.trackers: csv``: Lightning's CSVLogger into ``{run}/csv/metrics.csv`` (earlier attempts' metrics
kept as ``metrics.<k>.csv``)."""

from __future__ import annotations

from tunecv import tracking
from tunecv.trackers import Tracker


class CSVTracker(Tracker):
    """The run's metrics as CSV (what ``tunecv report`` reads)."""

    def loggers(self, run, user_loggers, package):
        return [tracking.csv_logger(run.run_dir, package=package)]
