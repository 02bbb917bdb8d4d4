"""tune-parallel on 2 CPU worker slots against the same tune in series (same sampler seed, same trials).

    python benchmarks/bench_tune_parallel.py --trials 4 --epochs 8
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml
from _common import digits_config, machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    from tunecv.tune import tune

    with tempfile.TemporaryDirectory() as tmp:
        space = Path(tmp) / "space.yaml"
        space.write_text(yaml.safe_dump({"hyperparameters": {"model.init_args.lr": [0.001, 0.003, 0.01, 0.03]}}))
        cfg = digits_config(Path(tmp), args.epochs, n_folds=2)
        cfg["tune"] = {"search_space": str(space), "n_trials": "grid"}
        t0 = time.perf_counter()
        tune(cfg, name="serial", progress=False)
        t_serial = time.perf_counter() - t0
        t0 = time.perf_counter()
        tune({**cfg, "strategy": "tune-parallel", "devices": [0, 1]}, name="parallel", progress=False)
        t_par = time.perf_counter() - t0
    print(f"machine: {machine()}")
    print(f"4 trials x 2 runs of {args.epochs} epochs")
    print(f"serial tune:          {t_serial:.2f} s")
    print(f"tune-parallel 2 slots: {t_par:.2f} s")
    print(f"speedup: {t_serial / t_par:.2f}")


if __name__ == "__main__":
    main()
