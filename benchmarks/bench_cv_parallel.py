"""Parallel speedup: ``cv-parallel`` on 2 CPU worker slots against the same cv in series.

The serial cv runs in this process (torch using every core); the parallel one runs each run in a
worker pinned to one slot with its share of the cores. Prints both times and the speedup
(goal >= 1.8 on 2 cores for runs of >= 10 s).

    python benchmarks/bench_cv_parallel.py --epochs 12 --folds 4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import digits_config, machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()
    from tunecv.cv import cross_validate

    with tempfile.TemporaryDirectory() as tmp:
        cfg = digits_config(Path(tmp), args.epochs, n_folds=args.folds)
        t0 = time.perf_counter()
        serial = cross_validate(cfg, name="serial", progress=False)
        t_serial = time.perf_counter() - t0
        par_cfg = {**cfg, "strategy": "cv-parallel", "devices": list(range(args.slots))}
        t0 = time.perf_counter()
        par = cross_validate(par_cfg, name="parallel", progress=False)
        t_par = time.perf_counter() - t0
    per_run = serial.run_infos["duration"].mean()
    print(f"machine: {machine()}")
    print(f"{args.folds} runs of {args.epochs} epochs (~{per_run:.1f} s each in series)")
    print(f"serial cv:              {t_serial:.2f} s")
    print(f"cv-parallel, {args.slots} slots:   {t_par:.2f} s (includes starting the worker server)")
    print(f"speedup: {t_serial / t_par:.2f} (goal >= 1.8 on 2 cores for runs >= 10 s)")
    assert sorted(serial.run_infos["fold"]) == sorted(par.run_infos["fold"])


if __name__ == "__main__":
    main()
