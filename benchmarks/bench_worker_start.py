"""How fast a DevicePoolExecutor worker starts: forkserver with torch+lightning preloaded vs spawn.

For each start method, in a fresh interpreter: one warm-up job (it also starts the fork server), then
``--jobs`` jobs one after the other on a one-slot pool. Each job notes the time of its first line,
then does what a run does first: ``import lightning; import torch; torch.zeros(1)``.

Reported per start method (means over the measured jobs):

- first line: ``submit()`` -> first line of the job body (process start, unpickling, pinning);
- ready: ``submit()`` -> torch and lightning imported and a tensor made (what a run waits for);
- round trip: ``submit()`` -> ``result()`` returned (includes the worker's exit).

Usage: ``python benchmarks/bench_worker_start.py [--jobs 5]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

MODES = {
    "forkserver+preload": {"start_method": "forkserver", "preload": ["torch", "lightning"]},
    "spawn": {"start_method": "spawn", "preload": []},
}


def job() -> tuple[float, float]:
    first_line = time.time()
    import lightning  # noqa: F401
    import torch

    torch.zeros(1)
    return first_line, time.time()


def measure(mode: str, n_jobs: int) -> dict[str, float]:
    from tunecv.executors import DevicePoolExecutor

    settings = MODES[mode]
    with DevicePoolExecutor([0], start_method=settings["start_method"], preload=settings["preload"]) as ex:
        ex.submit(job).result()  # warm-up: starts the fork server, fills the OS file cache
        first, ready, total = [], [], []
        for _ in range(n_jobs):
            submitted = time.time()
            first_line, done = ex.submit(job).result()
            returned = time.time()
            first.append(first_line - submitted)
            ready.append(done - submitted)
            total.append(returned - submitted)
    return {"first_line": statistics.mean(first), "ready": statistics.mean(ready),
            "round_trip": statistics.mean(total)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--mode", choices=list(MODES), help="measure one mode in this process (internal)")
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(measure(args.mode, args.jobs)))
        return
    results = {}
    for mode in MODES:  # each mode in a fresh interpreter: the fork server is one per process
        out = subprocess.run([sys.executable, __file__, "--mode", mode, "--jobs", str(args.jobs)],
                             capture_output=True, text=True, check=True)
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{args.jobs} jobs per mode after one warm-up job, mean seconds")
    print(f"{'mode':<20}{'first line':>12}{'ready':>10}{'round trip':>12}")
    for mode, r in results.items():
        print(f"{mode:<20}{r['first_line']:>12.3f}{r['ready']:>10.3f}{r['round_trip']:>12.3f}")
    fs, sp = results["forkserver+preload"], results["spawn"]
    print("spawn / forkserver+preload: "
          + ", ".join(f"{k} {sp[k] / fs[k]:.1f}x" for k in ("first_line", "ready", "round_trip")))


if __name__ == "__main__":
    main()
