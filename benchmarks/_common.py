"""Shared settings of the benchmarks: the digits example, sized so that one run takes a given time."""

from __future__ import annotations

import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")


def digits_config(artifact_dir: Path, epochs: int, n_seeds: int = 1, n_folds: int = 2, hidden: int = 256) -> dict:
    """A digits cv config whose runs last roughly ``epochs`` x (time of one epoch)."""
    return {
        "artifact_dir": str(artifact_dir),
        "model": {"class_path": "tunecv.examples.digits.DigitsClassifier",
                  "init_args": {"hidden_dim": hidden, "lr": 0.003}},
        "data": {"class_path": "tunecv.examples.digits.DigitsDataModule", "init_args": {"batch_size": 16}},
        "split": {"fold_method": "stratified", "total_folds": 5, "stratify_column": "label"},
        "trainer": {"max_epochs": epochs, "enable_progress_bar": False, "enable_model_summary": False},
        "accelerator": "cpu",
        "devices": [0],
        "early_stopping": None,
        "cv": {"n_seeds": n_seeds, "n_folds": n_folds, "scoring_metric": ["val/acc"]},
    }


def machine() -> str:
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"


@contextmanager
def timer(label: str, results: dict):
    t0 = time.perf_counter()
    yield
    results[label] = time.perf_counter() - t0


def run_in_tree(script: str, src: str, args: list[str], tree: str) -> dict:
    """Run ``script args`` in a new process whose tunecv comes from ``src`` (one torch thread), and return the
    JSON object its last stdout line prints; stops the benchmark when the arm fails or imported another tunecv
    (the child prints its ``tunecv`` module path under the key ``"tunecv"``)."""
    import json
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=src, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(Path(script).resolve()), *args], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"{tree} arm failed:\n{done.stderr[-3000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if not answer["tunecv"].startswith(src):
        raise SystemExit(f"{tree} arm imported tunecv from {answer['tunecv']}, not {src}")
    return answer
