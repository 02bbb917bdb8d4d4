"""Time ``tunecv.results.load_run_infos`` on 100 files / 100k rows against a plain pandas baseline.

Writes 100 ``run_infos.parquet`` files (1,000 rows each, 20 metric columns, 5 hyperparameter columns)
into a temp folder laid out as cvs under tunes, then times:

- ``load_run_infos(root)``;
- the baseline ``pd.concat([pd.read_parquet(f) for f in files])`` (no search, no normalization).

Run: ``python benchmarks/bench_load_run_infos.py [--files 100] [--rows 100000] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tunecv.results import RUN_INFOS_FILE, load_run_infos, run_infos_frame, write_parquet_atomic

N_METRICS = 20
HYPERPARAMETERS = ("model.init_args.lr", "model.init_args.hidden", "model.init_args.dropout",
                   "data.init_args.batch_size", "optimizer.init_args.weight_decay")


def _rows(rng: np.random.Generator, tune: str, cv: str, trial: int, n: int, offset: int) -> list[dict]:
    start = pd.Timestamp("2024-01-01", tz="UTC")
    hp = {"model.init_args.lr": float(rng.uniform(1e-4, 1e-1)), "model.init_args.hidden": int(rng.integers(8, 256)),
          "model.init_args.dropout": float(rng.uniform(0, 0.5)),
          "data.init_args.batch_size": int(rng.choice([16, 32, 64])),
          "optimizer.init_args.weight_decay": float(rng.uniform(0, 1e-2))}
    metrics = rng.random((n, N_METRICS))
    rows = []
    for i in range(n):
        uid = offset + i
        rows.append({
            "run_name": f"{cv}-run-f{i % 5}s{i}", "run_id": f"{uid:08x}", "cv_name": cv, "tune_name": tune,
            "fold": i % 5, "seed": i, "started_at": start + pd.Timedelta(seconds=uid),
            "finished_at": start + pd.Timedelta(seconds=uid + 60), "duration": 60.0,
            "checkpoint": f"/artifacts/{tune}/{cv}/run-{uid}/best.ckpt", "status": "completed", "error": None,
            "is_unstable": False, **{f"val/m{j}": metrics[i, j] for j in range(N_METRICS)},
            "score": 0.5, "score_is_unstable": False, "trial": trial, "trial_state": "COMPLETE", **hp,
        })
    return rows


def write_tree(root: Path, n_files: int, n_rows: int, seed: int = 0) -> list[Path]:
    """``n_files`` cv files (10 per tune folder) holding ``n_rows`` rows in all."""
    rng = np.random.default_rng(seed)
    per_file = n_rows // n_files
    files = []
    for k in range(n_files):
        tune, cv = f"tune{k // 10}", f"tune{k // 10}-cv{k % 10}"
        path = root / "artifacts" / tune / cv / RUN_INFOS_FILE
        write_parquet_atomic(run_infos_frame(_rows(rng, tune, cv, k % 10, per_file, k * per_file)), path)
        files.append(path)
    return files


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        files = write_tree(root, args.files, args.rows)
        print(f"wrote {len(files)} files, {args.rows} rows in {time.perf_counter() - t0:.2f} s")

        df = load_run_infos(root)
        base = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        assert len(df) == len(base) == args.rows, (len(df), len(base))
        assert list(df.columns) == list(base.columns)

        t_load = _best(lambda: load_run_infos(root), args.repeat)
        t_base = _best(lambda: pd.concat([pd.read_parquet(f) for f in files], ignore_index=True), args.repeat)
        print(f"load_run_infos:             {t_load:.3f} s (best of {args.repeat})")
        print(f"pd.concat(pd.read_parquet): {t_base:.3f} s (best of {args.repeat})")
        print(f"ratio load_run_infos / baseline: {t_load / t_base:.2f}")


if __name__ == "__main__":
    main()
