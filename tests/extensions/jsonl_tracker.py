"""A tracker: each run's lifecycle and metrics as JSON lines in ``{run}/tracker.jsonl``.

Registered with ``tunecv.register_tracker("jsonl", JsonlTracker)``, or named by its path.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from tunecv.trackers import Tracker


def _write(run, event: dict) -> None:
    with open(Path(run.run_dir) / "tracker.jsonl", "a") as f:
        f.write(json.dumps(event) + "\n")


class JsonlTracker(Tracker):
    def loggers(self, run, user_loggers, package):
        Logger = importlib.import_module(f"{package}.loggers.logger").Logger

        class JsonlLogger(Logger):
            name, version = "jsonl", "0"

            def log_metrics(self, metrics, step=None):
                _write(run, {"event": "metrics", "step": step, **{k: float(v) for k, v in metrics.items()}})

            def log_hyperparams(self, params, *args, **kwargs):
                pass

        return [JsonlLogger()]

    def start(self, run, trainer, loggers):
        _write(run, {"event": "start", "run_id": run.run_id, "job_type": run.job_type,
                     "loggers": [type(lg).__name__ for lg in loggers]})

    def finish(self, run, exit_code):
        _write(run, {"event": "finish", "exit_code": exit_code})
