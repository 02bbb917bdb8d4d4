"""cv-parallel on 2 CPU worker slots against the same cv in series, for a short and a long cv.

Each cv is one whole ``tunecv cv`` command (interpreter start, imports, validation, runs, exit), as a
user runs it; serial and parallel alternate, ``--repeats`` pairs per case, and the ratio is taken per
pair (median and range printed):

- **short**: penguins, 3 epochs, 3 folds x 2 seeds = 6 runs of ~0.1 s. What users try first; here the
  pool's fixed cost (a worker server importing torch and lightning, one worker per run) is all there is.
- **long**: digits, ``--epochs`` epochs, ``--folds`` runs of >= 10 s each (the parallel speedup).

Goal: parallel/serial wall time <= 1.0 for both (the long one ~0.55 on 2 cores).

``--reuse off`` runs the pool with ``--local.reuse_workers false`` (a new worker process per run);
``--reuse both`` adds that command to each pair (serial, parallel, parallel without reuse) and prints
its ratio too.

    python benchmarks/bench_cv_parallel.py                         # both cases
    python benchmarks/bench_cv_parallel.py --cases short --repeats 4
    python benchmarks/bench_cv_parallel.py --cases short --repeats 6 --reuse both
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import digits_config, machine


def penguins_config(artifact_dir: Path) -> dict:
    return {
        "artifact_dir": str(artifact_dir),
        "model": {"class_path": "tunecv.examples.penguins.PenguinClassifier",
                  "init_args": {"hidden_dim": 16, "lr": 0.02}},
        "data": {"class_path": "tunecv.examples.penguins.PenguinsDataModule", "init_args": {"batch_size": 32}},
        "split": {"fold_method": "kfold", "total_folds": 3},
        "trainer": {"max_epochs": 3, "enable_progress_bar": False, "enable_model_summary": False},
        "accelerator": "cpu",
        "devices": [0],
        "early_stopping": None,
        "cv": {"n_seeds": 2, "scoring_metric": ["val/acc"]},
    }


def timed_cv(cfg_path: Path, name: str, extra: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "tunecv", "cv", "--config", str(cfg_path), "--name", name,
                          "--quiet", *extra], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"cv {name} failed ({out.returncode}): {out.stderr[-1500:]}")
    return wall


def run_case(label: str, cfg: dict, slots: int, repeats: int, tmp: Path, reuse: str = "on") -> dict:
    cfg_path = tmp / f"{label}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    parallel = ["--strategy", "cv-parallel", "--devices", str(list(range(slots)))]
    fresh = [*parallel, "--local.reuse_workers", "false"]
    serial_t, par_t, fresh_t = [], [], []
    for i in range(repeats):  # alternate, so that a change in the machine's load hits both alike
        serial_t.append(timed_cv(cfg_path, f"{label}-s{i}", [], tmp))
        if reuse in ("on", "both"):
            par_t.append(timed_cv(cfg_path, f"{label}-p{i}", parallel, tmp))
        if reuse in ("off", "both"):
            fresh_t.append(timed_cv(cfg_path, f"{label}-f{i}", fresh, tmp))
    result = {"case": label, "serial": serial_t, "parallel": par_t or fresh_t,
              "ratios": [p / s for p, s in zip(par_t or fresh_t, serial_t, strict=True)]}
    if reuse == "both":
        result["fresh"] = fresh_t
        result["fresh_ratios"] = [p / s for p, s in zip(fresh_t, serial_t, strict=True)]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="short,long")
    parser.add_argument("--epochs", type=int, default=12, help="epochs of the long case")
    parser.add_argument("--folds", type=int, default=4, help="runs of the long case")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reuse", choices=["on", "off", "both"], default="on",
                        help="the pool's CPU worker reuse (local.reuse_workers): on (the default), off, or both")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
            if case == "short":
                cfg = penguins_config(tmp / "artifacts")
            elif case == "long":
                cfg = digits_config(tmp / "artifacts", args.epochs, n_folds=args.folds)
            else:
                raise SystemExit(f"--cases: unknown case {case!r}; cases are short, long")
            results.append(run_case(case, cfg, args.slots, args.repeats, tmp, args.reuse))
    print(f"machine: {machine()}; load average now {os.getloadavg()[0]:.1f}")
    print(f"whole `tunecv cv` commands, serial vs cv-parallel on {args.slots} CPU slots, {args.repeats} pairs each; "
          f"worker reuse: {args.reuse}")
    print("| case | serial s (median) | cv-parallel s (median) | parallel/serial median | range |")
    print("| --- | --- | --- | --- | --- |")
    for r in results:
        what = "short: 6 runs x 3 epochs (penguins)" if r["case"] == "short" else \
            f"long: {args.folds} runs x {args.epochs} epochs (digits)"
        print(f"| {what} | {statistics.median(r['serial']):.2f} | {statistics.median(r['parallel']):.2f} | "
              f"**{statistics.median(r['ratios']):.2f}** | {min(r['ratios']):.2f}-{max(r['ratios']):.2f} |")
        if "fresh" in r:
            print(f"| {what}, without worker reuse | {statistics.median(r['serial']):.2f} | "
                  f"{statistics.median(r['fresh']):.2f} | **{statistics.median(r['fresh_ratios']):.2f}** | "
                  f"{min(r['fresh_ratios']):.2f}-{max(r['fresh_ratios']):.2f} |")
    for r in results:
        print(f"{r['case']} pairs (serial s, parallel s, ratio): " + "; ".join(
            f"{s:.2f}, {p:.2f}, {p / s:.3f}" for s, p in zip(r["serial"], r["parallel"], strict=True)))
        if "fresh" in r:
            print(f"{r['case']} without reuse (serial s, parallel s, ratio): " + "; ".join(
                f"{s:.2f}, {p:.2f}, {p / s:.3f}" for s, p in zip(r["serial"], r["fresh"], strict=True)))
    print("goal: parallel/serial <= 1.0 for both cases")


if __name__ == "__main__":
    main()
