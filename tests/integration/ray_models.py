"""A digits classifier that tells the ``ray`` tests where and how each attempt of a run ran.

Ray workers import it by name: Ray puts the driver's working directory (the repository root, where the
tests run) on every worker's ``sys.path``. Each attempt appends one line to ``attempts.txt`` in its run
folder: the Ray node id, the process id, the epoch it starts at (``> 0``: it continued from a
checkpoint), ``CUDA_VISIBLE_DEVICES`` and the GPU ids Ray gave it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tunecv.examples.digits import DigitsClassifier

ATTEMPTS = "attempts.txt"


def read_attempts(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / ATTEMPTS
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class ProbeClassifier(DigitsClassifier):
    """``DigitsClassifier`` that records its attempts, can sleep after each epoch and can fail on a fold.

    Args:
        epoch_sleep: seconds to sleep after each training epoch (time for a test to kill the node).
        fail_on_seed: raise in the first training step of runs with this seed (``-1``: never).
    """

    def __init__(self, hidden_dim: int = 16, lr: float = 0.02, epoch_sleep: float = 0.0,
                 fail_on_seed: int = -1) -> None:
        super().__init__(hidden_dim=hidden_dim, lr=lr)
        self.epoch_sleep = epoch_sleep
        self.fail_on_seed = fail_on_seed

    def on_train_start(self) -> None:
        try:
            import ray

            node, gpus = ray.get_runtime_context().get_node_id(), [str(g) for g in ray.get_gpu_ids()]
        except Exception:  # not in a Ray worker
            node, gpus = None, []
        line = {"node": node, "pid": os.getpid(), "epoch": self.current_epoch, "gpus": gpus,
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "devices": self.trainer.num_devices}
        with open(Path(self.trainer.default_root_dir) / ATTEMPTS, "a") as fh:
            fh.write(json.dumps(line) + "\n")

    def training_step(self, batch, batch_idx):
        seed = int(os.environ.get("PL_GLOBAL_SEED", "-2"))
        if seed == self.fail_on_seed:
            raise RuntimeError(f"seed {seed} fails on purpose")
        return super().training_step(batch, batch_idx)

    def on_train_epoch_end(self) -> None:
        if self.epoch_sleep:
            time.sleep(self.epoch_sleep)
