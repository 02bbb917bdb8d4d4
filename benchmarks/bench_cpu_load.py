"""A serial cv on an idle machine against the same cv while one busy process per core runs beside it.

Shared workstations and HPC nodes are always busy. A run that starts one thread per core competes with
the other programs for every core, and PyTorch's OpenMP threads then wait on each other at every
operation. tunecv's thread policy (``local.threads_per_worker: null``) gives each run the cores that are free when it
starts (at least one). Each case is one ``tunecv cv`` command, so that its thread settings apply from
the first import of torch:

- ``auto``: tunecv's policy;
- ``all cores``: ``--local.threads_per_worker N`` with N the number of cores (torch's own default, the old behaviour);
- ``all cores, passive``: the same with ``OMP_WAIT_POLICY=PASSIVE`` (an OpenMP thread that waits at a
  barrier sleeps at once);
- ``all cores, active``: the same with ``OMP_WAIT_POLICY=ACTIVE`` (it spins, holding its core).

Without the variable, GNU OpenMP (torch's wheels) spins for a while, then sleeps. With one thread per run
(what ``auto`` gives on a busy machine) there is no barrier, so the policy only matters with several.

Prints each case's wall time and the ratio loaded/idle (goal <= 2.5 for ``auto``), and each case's
ratio to ``auto`` on the same machine state.

    python benchmarks/bench_cpu_load.py --epochs 10 --folds 2
    python benchmarks/bench_cpu_load.py --epochs 2 --folds 2 --cases all,passive,active
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import digits_config, machine


def busy() -> None:  # one core, fully used, until terminated
    while True:
        pass


def run_cv(cfg_path: Path, name: str, threads: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    flag = [] if threads == "auto" else ["--local.threads_per_worker", threads]
    out = subprocess.run([sys.executable, "-m", "tunecv", "cv", "--config", str(cfg_path), "--name", name, *flag,
                          "--quiet"], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"cv {name} failed: {out.stderr[-1500:]}")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--cases", default="auto,all,passive,active",
                        help="which cases: auto, all, passive, active")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    base_env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                                 "OMP_WAIT_POLICY")}
    cases = {"auto": ("auto", {}), "all": (str(cores), {}), "passive": (str(cores), {"OMP_WAIT_POLICY": "PASSIVE"}),
             "active": (str(cores), {"OMP_WAIT_POLICY": "ACTIVE"})}
    chosen = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in cases]
    if unknown:
        raise SystemExit(f"--cases: unknown case(s) {unknown}; cases are {', '.join(cases)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cfg = digits_config(tmp / "artifacts", args.epochs, n_folds=args.folds)
        cfg_path = tmp / "cv.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        for case in chosen:
            threads, extra = cases[case]
            env = {**base_env, **extra}
            idle = run_cv(cfg_path, f"{case}-idle", threads, env)
            hogs = [multiprocessing.Process(target=busy, daemon=True) for _ in range(cores)]
            for h in hogs:
                h.start()
            try:
                loaded = run_cv(cfg_path, f"{case}-loaded", threads, env)
            finally:
                for h in hogs:
                    h.terminate()
                for h in hogs:
                    h.join()
            rows.append((case, threads, idle, loaded))
    print(f"machine: {machine()}; load average now: {os.getloadavg()[0]:.1f}")
    print(f"serial cv of {args.folds} runs x {args.epochs} epochs; loaded = {cores} busy processes (one per core)")
    print(f"| {'case':<22} | threads     | {'idle s':>7} | {'loaded s':>8} | loaded/idle")
    print(f"|{'-' * 24}|-------------|{'-' * 9}|{'-' * 10}|------------")
    labels = {"auto": "auto (tunecv)", "all": "all cores", "passive": "all cores, passive",
              "active": "all cores, active"}
    for case, threads, idle, loaded in rows:
        print(f"| {labels[case]:<22} | {threads:>11} | {idle:7.1f} | {loaded:8.1f} | {loaded / idle:.2f}")
    if len(rows) > 1:
        first_case, _, first_idle, first_loaded = rows[0]
        print(f"relative to {labels[first_case]} (idle / loaded): " + "; ".join(
            f"{labels[case]} {idle / first_idle:.2f} / {loaded / first_loaded:.2f}"
            for case, _, idle, loaded in rows[1:]))
    print("goal: loaded/idle <= 2.5 with tunecv's policy (auto)")


if __name__ == "__main__":
    main()
