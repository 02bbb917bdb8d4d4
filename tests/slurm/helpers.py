"""Things SLURM jobs of the tests import (the jobs run in the repository root, so ``tests`` is importable)."""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class SlowEpochs(L.Callback):
    """Sleep at the end of every training epoch, so that a test can act on a job mid-run."""

    def __init__(self, seconds: float = 1.0) -> None:
        self.seconds = seconds

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        time.sleep(self.seconds)
