"""Dispatch overhead of each executor: the same cv of short runs on ``local`` (the device pool) and others.

Every executor runs the same ``cv-parallel`` cv (same folds, seeds, epochs, slots) in this process. Each
executor is built once and first runs one warm-up cv (the pool's fork server imports torch and
lightning, Ray's workers do the same), then ``--repeats`` timed cvs, interleaved between executors so a
change in machine load hits all. Prints, per executor, the best wall time, the ratio to ``local`` and
the overhead per run against ``local``: ``(wall - local wall) / (runs per slot)``, the time each run
adds on its slot, and the dispatch time per run: ``wall / (runs per slot) - mean run duration`` (the
time a slot spends on a run outside its own ``train``: submitting, starting, returning, recording).

    python benchmarks/bench_executors.py --executors local ray --folds 4 --epochs 2
    python benchmarks/bench_executors.py --executors local slurm --folds 6 --epochs 4

For ``slurm`` it also prints where the time of each job goes (from the stamps each job writes to its log)
and two numbers apart: the executor's scheduling overhead per job and per run (SLURM, submitit and
tunecv: everything outside the job's call) and what the job's fresh interpreter spends before its first
run (the imports of torch, lightning and the model, building model and data), next to a fresh
``python -c "import torch, lightning"`` timed alone.

``slurm`` submits each run as one job to the cluster that ``SLURM_CONF`` names, else to a single-node
cluster this script starts for the measurement (``tests/slurm/cluster.py``: root and
``apt-get install -y slurm-wlm munge``; the node has ``--slots`` CPUs, one per job). Its overhead per
run includes starting a fresh Python that imports torch and lightning in every job, which the pool's
fork server does once. Goal for ``slurm``: <= 2 s per run on the local cluster.

An executor is one entry of ``SETUPS``: a context manager that starts what the executor needs (a Ray
cluster, a SLURM cluster) and yields the config keys that select it.
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

from _common import digits_config, machine


@contextlib.contextmanager
def local_setup(args: argparse.Namespace, timings: dict) -> Iterator[dict]:
    yield {"executor": "local"}


@contextlib.contextmanager
def ray_setup(args: argparse.Namespace, timings: dict) -> Iterator[dict]:
    """``ray.address: local``: the executor starts a Ray cluster on this machine (one CPU per run)."""
    yield {"executor": "ray", "ray": {"address": "local", "num_cpus": 1}}


@contextlib.contextmanager
def slurm_setup(args: argparse.Namespace, timings: dict) -> Iterator[dict]:
    """Each run one SLURM job (one CPU each); a local single-node cluster unless ``SLURM_CONF`` is set."""
    keys = {"executor": "slurm", "slurm": {"time": 30, "cpus_per_job": 1, "max_jobs": args.slots,
                                           "poll_interval": 0.5}}
    if os.environ.get("SLURM_CONF"):
        yield keys
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.slurm.cluster import SlurmCluster

    t0 = time.perf_counter()
    with SlurmCluster(cpus=args.slots):
        timings["slurm cluster start"] = time.perf_counter() - t0
        yield keys


def import_time() -> float:
    """Seconds a fresh Python takes to ``import torch, lightning`` (what every SLURM job pays for its run)."""
    import subprocess

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, lightning"], check=True)
    return time.perf_counter() - t0


SEGMENTS = (  # (label, from, to) over the stamps of one SLURM job (driver and job clocks: one machine here)
    ("sbatch", "submit", "sbatch_done"),
    ("queue + job start", "sbatch_done", "batch_start"),
    ("srun step start", "batch_start", "python_start"),
    ("python + submitit + unpickle", "python_start", "call_start"),
    ("imports + build model/data", "call_start", "run_start"),
    ("run(s) (train)", "run_start", "run_end"),
    ("after the run(s)", "run_end", "call_end"),
    ("result pickled", "call_end", "result"),
    ("driver notices", "result", "noticed"),
)


def slurm_timeline(jobs: list) -> dict[str, dict[str, float]]:
    """Per job: unix times of each step from submission to the driver noticing the result (a job of several
    runs, one cv under tune-parallel: from the first run's start to the last run's end)."""
    import json
    from datetime import datetime

    from tunecv.executors._slurm import read_timeline

    out = {}
    for job in jobs:
        stamps = dict(job.times)
        stamps.update(read_timeline(job.submitit_job.paths.stderr))
        names = job.folders or [job.folder.name]
        infos = [json.loads((job.folder.parent / name / "run_info.json").read_text()) for name in names]
        if all(info.get("started_at") and info.get("finished_at") for info in infos):
            stamps["run_start"] = datetime.fromisoformat(str(infos[0]["started_at"])).timestamp()
            stamps["run_end"] = datetime.fromisoformat(str(infos[-1]["finished_at"])).timestamp()
            stamps["n_runs"] = len(infos)
        result = job.submitit_job.paths.result_pickle
        if result.exists():
            stamps["result"] = result.stat().st_mtime
        out[job.job_id] = stamps
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def print_timeline(timeline: dict[str, dict[str, float]], imports: float) -> None:
    """Where the time of a job goes, then the two numbers apart: what the executor adds (SLURM, submitit,
    tunecv: everything outside the job's call) and what the call pays before its first run (a fresh
    interpreter's imports of torch, lightning and the model, and building model and data)."""
    print(f"slurm: where the time of each job goes (mean over {len(timeline)} jobs, seconds)")
    for label, a, b in SEGMENTS:
        values = [t[b] - t[a] for t in timeline.values() if a in t and b in t]
        if values:
            print(f"  {label:<32} {_mean(values):>6.2f}  (min {min(values):.2f}, max {max(values):.2f})")
    full = [t for t in timeline.values() if {"noticed", "submit", "call_start", "call_end", "run_start"} <= set(t)]
    if not full:
        return
    executor = _mean([(t["noticed"] - t["submit"]) - (t["call_end"] - t["call_start"]) for t in full])
    before_run = _mean([t["run_start"] - t["call_start"] for t in full])
    runs_per_job = _mean([t.get("n_runs", 1) for t in full])
    print(f"slurm: the executor's scheduling overhead (SLURM + submitit + tunecv: sbatch, queue, job start, srun, "
          f"Python start, submitit, unpickling, result, notice): {executor:.2f} s per job, "
          f"{executor / runs_per_job:.2f} s per run ({runs_per_job:g} runs per job)")
    print(f"slurm: the job's fresh interpreter before its first run (imports of torch, lightning, the model; "
          f"building model and data): {before_run:.2f} s per job, {before_run / runs_per_job:.2f} s per run; "
          f"`import torch, lightning` alone in a fresh Python: {imports:.2f} s")


SETUPS = {"local": local_setup, "ray": ray_setup, "slurm": slurm_setup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executors", nargs="+", default=["local", "ray"], choices=sorted(SETUPS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--level", choices=("cv", "tune"), default="cv",
                        help="cv: one cv-parallel cv of --folds runs; tune: a tune-parallel grid tune of --trials "
                             "cvs of --folds runs each (slurm: one job per cv)")
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args()
    if "local" not in args.executors:
        args.executors.insert(0, "local")
    from tunecv.config import load_config
    from tunecv.cv import cross_validate
    from tunecv.executors import make_executor_from_config
    from tunecv.tune import tune

    n_runs = args.folds * (args.trials if args.level == "tune" else 1)

    def run_level(cfg: dict, name: str, executor) -> object:
        if args.level == "cv":
            return cross_validate(cfg, name=name, progress=False, executor=executor)
        return tune(cfg, name=name, progress=False, executor=executor)

    walls: dict[str, list[float]] = {name: [] for name in args.executors}
    timings: dict[str, float] = {}
    durations: dict[str, list[float]] = {}
    slurm_jobs: list = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        base = {**digits_config(Path(tmp), args.epochs, n_folds=args.folds, hidden=64),
                "strategy": "cv-parallel", "devices": list(range(args.slots))}
        if args.level == "tune":
            import yaml

            space = Path(tmp) / "space.yaml"
            lrs = [round(0.001 * (i + 1), 4) for i in range(args.trials)]
            space.write_text(yaml.safe_dump({"hyperparameters": {"model.init_args.lr": lrs}}))
            base.update(strategy="tune-parallel", tune={"search_space": str(space), "n_trials": "grid",
                                                        "sampler": "grid", "pruner": "none",
                                                        "retrain_and_test": False})
        executors = {}
        for name in args.executors:
            cfg = {**base, **stack.enter_context(SETUPS[name](args, timings))}
            t0 = time.perf_counter()
            executor = stack.enter_context(make_executor_from_config(load_config(cfg), parallel=True,
                                                                     accelerator="cpu"))
            if name == "slurm":  # keep the jobs, for their timeline
                submit_runs = executor.submit_runs  # submit_run goes through it too

                def keep(*a, _submit=submit_runs, **kw):
                    job = _submit(*a, **kw)
                    slurm_jobs.append(job)
                    return job

                executor.submit_runs = keep
            assert executor.n_slots == args.slots, (name, executor.n_slots)
            run_level(cfg, f"{name}-warmup", executor)
            timings[f"{name} start + warm-up cv"] = time.perf_counter() - t0
            executors[name] = (cfg, executor)
        for r in range(args.repeats):
            for name, (cfg, executor) in executors.items():
                t0 = time.perf_counter()
                res = run_level(cfg, f"{name}-{r}", executor)
                walls[name].append(time.perf_counter() - t0)
                assert (res.run_infos["status"] == "completed").sum() == n_runs, (name, res.run_infos)
                durations.setdefault(name, []).append(float(res.run_infos["duration"].mean()))
        n_jobs = len(slurm_jobs) // (args.repeats + 1) if slurm_jobs else 0
        timeline = slurm_timeline(slurm_jobs[n_jobs:])  # without the warm-up's jobs

    runs_per_slot = n_runs / args.slots
    # the duration of the runs of the fastest cv, to go with its wall time
    durations = {name: durations[name][walls[name].index(min(walls[name]))] for name in args.executors}
    local = min(walls["local"])
    print(f"machine: {machine()}")
    what = (f"cv of {args.folds} runs" if args.level == "cv"
            else f"tune of {args.trials} cvs x {args.folds} runs (tune-parallel)")
    print(f"{what} x {args.epochs} epochs on {args.slots} slots; best of {args.repeats} warm repeats; "
          f"slurm jobs per repeat: {n_jobs}")
    for label, seconds in timings.items():
        print(f"  {label}: {seconds:.2f} s")
    print(f"{'executor':<10} {'wall':>8} {'ratio':>7} {'vs local/run':>13} {'run duration':>13} {'dispatch/run':>13}")
    for name in args.executors:
        wall = min(walls[name])
        print(f"{name:<10} {wall:>7.2f}s {wall / local:>7.3f} {(wall - local) / runs_per_slot:>+12.2f}s "
              f"{durations[name]:>12.2f}s {wall / runs_per_slot - durations[name]:>12.2f}s")
    if "slurm" in walls:
        imports = min(import_time() for _ in range(2))
        print_timeline(timeline, imports)
        print("slurm: goal for the executor's scheduling overhead: <= 2 s per run; the interpreter's imports are "
              "the run's own cost in a new process (a local pool's fork server pays them once per command)")


if __name__ == "__main__":
    main()
