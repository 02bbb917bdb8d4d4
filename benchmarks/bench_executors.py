"""Executors: the same cv of short runs on each executor; wall time, ratio to ``local`` and overhead per run.

Every executor runs the cv with ``strategy: cv-parallel`` and the same number of runs at once (``--slots``):
``local`` is the device pool of this machine; ``slurm`` submits each run as one job to a SLURM cluster:
the cluster that ``SLURM_CONF`` names, else a single-node cluster that this script starts for the
measurement (``tests/slurm/cluster.py``: root, ``apt-get install -y slurm-wlm munge``; ``CPUs`` = slots).
The overhead per run of an executor is ``(its wall time - local's) / runs``: what submitting, queueing,
starting a job (a fresh Python importing torch and lightning) and collecting its result cost on top of
the pool. Goal for ``slurm``: <= 2 s per run on the local cluster.

    python benchmarks/bench_executors.py --runs 6 --epochs 4
    python benchmarks/bench_executors.py --executors local,slurm

Another executor is one more entry in ``EXECUTORS``: a context manager that prepares what it needs
(a cluster) and yields the config keys of its run (``executor:`` and its section).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import digits_config, machine

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def local(slots: int) -> Iterator[dict[str, Any]]:
    yield {"executor": "local", "devices": list(range(slots))}


@contextlib.contextmanager
def slurm(slots: int) -> Iterator[dict[str, Any]]:
    keys = {"executor": "slurm", "slurm": {"time": 30, "cpus_per_job": 1, "max_jobs": slots, "poll_interval": 0.5}}
    if os.environ.get("SLURM_CONF"):
        yield keys
        return
    sys.path.insert(0, str(REPO))
    from tests.slurm.cluster import SlurmCluster

    with SlurmCluster(cpus=slots):
        yield keys


# name -> context manager yielding the config keys of that executor (add a column here)
EXECUTORS = {"local": local, "slurm": slurm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6, help="runs of the cv (folds)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--slots", type=int, default=2, help="runs at once on every executor")
    parser.add_argument("--executors", default=",".join(EXECUTORS), help=f"of {', '.join(EXECUTORS)}")
    args = parser.parse_args()
    names = [n.strip() for n in args.executors.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXECUTORS]
    if unknown:
        parser.error(f"--executors: unknown {unknown}; valid: {', '.join(EXECUTORS)}")
    if "local" not in names:
        names.insert(0, "local")  # the baseline
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from tunecv.cv import cross_validate

    walls: dict[str, float] = {}
    durations: dict[str, float] = {}
    scores: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = digits_config(Path(tmp), args.epochs, n_folds=args.runs)
        base["split"]["total_folds"] = max(args.runs, 2)
        base["strategy"] = "cv-parallel"
        for name in names:
            with EXECUTORS[name](args.slots) as keys:
                t0 = time.perf_counter()
                res = cross_validate({**base, **keys}, name=f"bench-{name}", progress=False)
                walls[name] = time.perf_counter() - t0
            assert res.n_completed == args.runs, res.run_infos[["run_name", "status", "error"]]
            durations[name] = float(res.run_infos["duration"].mean())
            scores[name] = res.score
    print(f"machine: {machine()}")
    print(f"cv of {args.runs} runs x {args.epochs} epochs, {args.slots} at once on every executor")
    print(f"{'executor':<10}{'wall (s)':>10}{'ratio':>8}{'overhead/run (s)':>18}{'mean run (s)':>14}{'score':>9}")
    for name in names:
        overhead = (walls[name] - walls["local"]) / args.runs
        print(f"{name:<10}{walls[name]:>10.2f}{walls[name] / walls['local']:>8.2f}{overhead:>18.2f}"
              f"{durations[name]:>14.2f}{scores[name]:>9.4f}")
    if "slurm" in walls:
        overhead = (walls["slurm"] - walls["local"]) / args.runs
        print(f"slurm scheduling overhead: {overhead:.2f} s per run (goal <= 2 s)")


if __name__ == "__main__":
    main()
