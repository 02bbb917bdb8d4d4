"""Many workers on one study: N ``tunecv tune`` processes of the null model on one journal file and on one
PostgreSQL study, ``--trials`` in all.

    python benchmarks/bench_tune_workers.py                                # 8 and 32 workers, both storages
    python benchmarks/bench_tune_workers.py --workers 8 --storages journal --trials 400

Each worker is a real ``python -m tunecv tune ... --quiet`` process; a small wrapper times every call it
makes to the Optuna storage and records when each of its trials was asked and told. Printed per setting:
trials per second, storage time per trial (summed over workers), the per-trial overhead of a worker (from
telling one trial to asking the next, including the tune table and the ask's own checks) over the first
and the last 10 % of the trials, their ratio, and the checks: exactly ``--trials`` finished trials, no cv
run twice, nothing lost in the tune table. The baseline of each setting is its own start.
PostgreSQL settings need the server binaries (``.ci/run`` installs Debian's package) and ``psycopg``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import machine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Run inside each worker: time the storage's public methods, log asks and tells, then run the CLI.
WRAPPER = r'''
import atexit, functools, json, os, sys, threading, time
import optuna
from optuna.storages import BaseStorage
out = sys.argv[1]
totals = {"storage_s": 0.0, "storage_calls": 0, "events": []}
depth = threading.local()

def timed(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if getattr(depth, "n", 0):  # a storage calling another (the cache over the RDB): count once
            return fn(*args, **kwargs)
        depth.n = 1
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            depth.n = 0
            totals["storage_s"] += time.perf_counter() - t0
            totals["storage_calls"] += 1
    return wrapper

classes = [optuna.storages.RDBStorage, optuna.storages.JournalStorage]
from optuna.storages._cached_storage import _CachedStorage
classes.append(_CachedStorage)
for cls in classes:
    for name in [n for n in vars(BaseStorage) if not n.startswith("_")]:
        if name in vars(cls) and callable(vars(cls)[name]):
            setattr(cls, name, timed(vars(cls)[name]))

ask, tell = optuna.Study.ask, optuna.Study.tell
def logged_ask(self, *a, **k):
    trial = ask(self, *a, **k)
    totals["events"].append(("ask", trial.number, time.time()))
    return trial
def logged_tell(self, trial, *a, **k):
    result = tell(self, trial, *a, **k)
    number = trial if isinstance(trial, int) else trial.number
    totals["events"].append(("tell", number, time.time()))
    return result
optuna.Study.ask, optuna.Study.tell = logged_ask, logged_tell

def dump():
    with open(out, "w") as fh:
        json.dump(totals, fh)
atexit.register(dump)
from tunecv.cli import main
code = main(sys.argv[2:])
dump()
os._exit(code)
'''


def null_config(root: Path, n_trials: int, storage: str) -> Path:
    space = root / "space.yaml"
    space.write_text(yaml.safe_dump({"hyperparameters": {"model.init_args.x": {"low": -1.0, "high": 1.0}}}))
    cfg = {
        "artifact_dir": str(root / "artifacts"),
        "model": {"class_path": "tunecv.examples.null.NullModel"},
        "data": {"class_path": "tunecv.examples.null.NullDataModule"},
        "split": {"fold_method": "none"},
        "trainer": {"max_epochs": 1, "enable_progress_bar": False, "enable_model_summary": False},
        "accelerator": "cpu", "devices": [0], "early_stopping": None,
        "cv": {"n_seeds": 1, "scoring_metric": ["val/loss:lower"]},
        "tune": {"search_space": str(space), "n_trials": n_trials, "sampler": "random", "pruner": "none",
                 "storage": storage},
    }
    path = root / "tune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def overheads(logs: list[dict]) -> list[tuple[float, float]]:
    """(time of the next ask, seconds from a worker's tell to its next ask), over every worker."""
    gaps = []
    for log in logs:
        events = sorted(log["events"], key=lambda e: e[2])
        for prev, cur in zip(events, events[1:]):  # noqa: RUF007 - pairs of one worker's events
            if prev[0] == "tell" and cur[0] == "ask":
                gaps.append((cur[2], cur[2] - prev[2]))
    return sorted(gaps)


def run_setting(storage_kind: str, workers: int, n_trials: int, root: Path, pg_url: str | None) -> dict:
    import optuna
    from optuna.trial import TrialState

    from tunecv.results import load_run_infos

    name = f"{storage_kind}{workers}"
    if storage_kind == "journal":
        url = f"journal://{root / 'journal.log'}"
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(root / "journal.log")))
    else:
        url = pg_url
        storage = url
    cfg = null_config(root, n_trials, url)
    wrapper = root / "wrapper.py"
    wrapper.write_text(WRAPPER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, str(wrapper), str(root / f"worker{i}.json"), "tune", "--config",
                               str(cfg), "--name", name, "--quiet"], cwd=root, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for i in range(workers)]
    errors = []
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            errors.append(err[-1500:])
    wall = time.perf_counter() - t0
    logs = [json.loads((root / f"worker{i}.json").read_text()) for i in range(workers)
            if (root / f"worker{i}.json").is_file()]
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    cv_names = [t.user_attrs.get("cv_name") for t in complete]
    df = load_run_infos(root / "artifacts" / name)
    first_start = min(t.datetime_start for t in trials if t.datetime_start).timestamp()
    last_end = max(t.datetime_complete for t in complete).timestamp()
    gaps = overheads(logs)
    tenth = max(1, len(gaps) // 10)
    return {
        "storage": storage_kind, "workers": workers, "n_trials": n_trials, "wall": wall,
        "trials_window": last_end - first_start,
        "complete": len(complete), "failed": sum(t.state == TrialState.FAIL for t in trials),
        "running": sum(t.state == TrialState.RUNNING for t in trials),
        "unique_cvs": len(set(cv_names)), "rows": len(df), "unique_runs": int(df["run_name"].nunique()),
        "storage_s": sum(log["storage_s"] for log in logs), "storage_calls": sum(log["storage_calls"] for log in logs),
        "overhead_first": statistics.median(g for _, g in gaps[:tenth]),
        "overhead_last": statistics.median(g for _, g in gaps[-tenth:]),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--storages", nargs="+", default=["journal", "postgres"], choices=["journal", "postgres"])
    parser.add_argument("--trials", type=int, default=2000, help="trials in all (default 2000)")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    rows = []
    for kind in args.storages:
        for workers in args.workers:
            root = Path(tempfile.mkdtemp(prefix=f"tunecv-workers-{kind}{workers}-"))
            os.chmod(root, 0o755)
            try:
                if kind == "postgres":
                    from tests.integration.postgres import postgres_server, unavailable_reason

                    reason = unavailable_reason()
                    if reason:
                        print(f"postgres skipped: {reason}")
                        break
                    with postgres_server(root / "pg") as url:
                        row = run_setting(kind, workers, args.trials, root, url)
                else:
                    row = run_setting(kind, workers, args.trials, root, None)
            finally:
                shutil.rmtree(root, ignore_errors=True)
            rows.append(row)
            ok = (row["complete"] == row["n_trials"] == row["unique_cvs"] == row["rows"] == row["unique_runs"]
                  and not row["running"] and not row["errors"])
            print(f"{kind}, {workers} workers: {row['n_trials']} trials in {row['wall']:.1f} s "
                  f"({row['n_trials'] / row['wall']:.2f} trials/s; {row['n_trials'] / row['trials_window']:.2f} "
                  f"after the workers started); storage {1000 * row['storage_s'] / row['n_trials']:.1f} ms per trial "
                  f"({row['storage_calls'] / row['n_trials']:.1f} calls); overhead per trial first 10 % "
                  f"{1000 * row['overhead_first']:.0f} ms, last 10 % {1000 * row['overhead_last']:.0f} ms "
                  f"(ratio {row['overhead_last'] / row['overhead_first']:.2f}); complete {row['complete']}, failed "
                  f"(overflow) {row['failed']}, running {row['running']}, distinct cvs {row['unique_cvs']}, rows "
                  f"{row['rows']}, distinct runs {row['unique_runs']}: {'OK' if ok else 'MISMATCH'}", flush=True)
            for err in row["errors"]:
                print("worker error:", err)
    print()
    print("| storage | workers | trials | wall | trials/s | storage ms/trial | overhead first / last 10 % | checks |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ok = r["complete"] == r["n_trials"] == r["unique_cvs"] == r["rows"] == r["unique_runs"] and not r["running"]
        print(f"| {r['storage']} | {r['workers']} | {r['n_trials']} | {r['wall']:.0f} s | "
              f"{r['n_trials'] / r['wall']:.2f} | {1000 * r['storage_s'] / r['n_trials']:.1f} | "
              f"{1000 * r['overhead_first']:.0f} / {1000 * r['overhead_last']:.0f} ms | "
              f"{'exact' if ok else 'MISMATCH'} |")


if __name__ == "__main__":
    main()
