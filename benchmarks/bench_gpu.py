"""The GPU paths on one GPU: the ``gpu`` tests, cv-parallel with 1, 2 and 4 runs per device, a tune-parallel tune.

Needs a CUDA GPU (it stops with exit code 2 and one line when there is none). Everything runs on GPU 0
and fits in about 10 minutes; each step has its own time limit and a step that fails or runs out of
time is reported as such in the table instead of stopping the others.

1. ``pytest -m gpu``: the gpu-marked tests (skipped everywhere else).
2. One cv of ``--runs`` small runs with ``strategy: cv-parallel``, ``devices: [0]`` and
   ``runs_per_device`` 1, 2 and 4: runs per minute, and the throughput ratio against 1 per GPU
   (goal >= 2x at 4 per GPU for small models: one small model leaves most of a GPU idle).
3. A ``tune-parallel`` tune (4 trials x 2 runs) with ``runs_per_device`` 2 on GPU 0.

Then one table. Usage (from the repository root, with tunecv installed)::

    python benchmarks/bench_gpu.py              # about 6-10 minutes on one GPU
    python benchmarks/bench_gpu.py --quick      # smaller cvs, about 3 minutes

See benchmarks/README.md ("GPU") for taking tunecv's dependencies to a GPU machine without internet.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TOTAL_BUDGET = 600.0  # seconds, all steps together


def gpu_or_exit() -> str:
    """The name of GPU 0, found without initialising CUDA in this process; exit 2 when there is none."""
    from tunecv.executors import gpu_count

    if gpu_count() == 0:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        why = (f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU" if visible is not None
               else "`nvidia-smi -L` lists no GPU (or nvidia-smi is missing)")
        print(f"bench_gpu.py: needs a CUDA GPU, and none is visible: {why}. Nothing was run.", file=sys.stderr)
        sys.exit(2)
    out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader", "-i", "0"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() or "GPU 0"


def cv_config(artifact_dir: Path, runs: int, epochs: int, runs_per_device: int) -> dict:
    """A small digits cv on GPU 0: ``runs`` runs (folds x seeds), each a few seconds."""
    folds = min(runs, 5)
    return {
        "artifact_dir": str(artifact_dir),
        "model": {"class_path": "tunecv.examples.digits.DigitsClassifier",
                  "init_args": {"hidden_dim": 256, "lr": 0.003}},
        "data": {"class_path": "tunecv.examples.digits.DigitsDataModule", "init_args": {"batch_size": 32}},
        "split": {"fold_method": "stratified", "total_folds": 5, "stratify_column": "label"},
        "trainer": {"max_epochs": epochs, "enable_progress_bar": False, "enable_model_summary": False},
        "accelerator": "gpu",
        "strategy": "cv-parallel",
        "devices": [0],
        "runs_per_device": runs_per_device,
        "early_stopping": None,
        "cv": {"n_seeds": -(-runs // folds), "n_folds": folds, "scoring_metric": ["val/acc"]},
    }


def run_cli(args: list[str], cwd: Path, timeout: float) -> tuple[int, float, str]:
    t0 = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, "-m", "tunecv", *args, "--quiet"], cwd=cwd, capture_output=True,
                             text=True, timeout=max(timeout, 1.0))
    except subprocess.TimeoutExpired:
        return 124, time.perf_counter() - t0, f"ran past its {timeout:.0f} s limit"
    return out.returncode, time.perf_counter() - t0, (out.stderr.strip().splitlines() or [""])[-1]


def gpu_test_files() -> list[str]:
    """The test files that hold gpu-marked tests (collecting only them needs no test-only extras)."""
    return sorted(str(p) for p in (REPO / "tests").rglob("test_*.py")
                  if "mark.gpu" in p.read_text(encoding="utf-8", errors="replace"))


def step_gpu_tests(deadline: float) -> dict:
    t0 = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-n", "0", "-p", "no:cacheprovider",
                              *gpu_test_files()], cwd=REPO, capture_output=True, text=True,
                             timeout=max(deadline - time.time(), 1.0))
        summary = (out.stdout.strip().splitlines() or ["no output"])[-1]
        ok = out.returncode in (0, 5)  # 5: no test collected
    except subprocess.TimeoutExpired:
        summary, ok = "ran out of time", False
    return {"step": "pytest -m gpu", "ok": ok, "seconds": time.perf_counter() - t0, "result": summary}


def step_cv(tmp: Path, runs: int, epochs: int, rpd: int, deadline: float) -> dict:
    path = tmp / f"cv{rpd}.yaml"
    path.write_text(yaml.safe_dump(cv_config(tmp / "artifacts", runs, epochs, rpd)))
    code, seconds, last = run_cli(["cv", "--config", str(path), "--name", f"rpd{rpd}"], tmp,
                                  deadline - time.time())
    result: dict = {"step": f"cv-parallel, {rpd} run(s) per GPU", "ok": code == 0, "seconds": seconds}
    if code == 0:
        import pandas as pd

        df = pd.read_parquet(tmp / "artifacts" / "_cross_validations" / f"rpd{rpd}" / "run_infos.parquet")
        done = int((df["status"] == "completed").sum())
        result["runs_per_min"] = 60.0 * done / seconds
        result["result"] = f"{done}/{len(df)} runs completed, mean run {df['duration'].mean():.1f} s"
    else:
        result["result"] = f"exit {code}: {last}"
    return result


def step_tune(tmp: Path, epochs: int, deadline: float) -> dict:
    cfg = cv_config(tmp / "artifacts", 2, epochs, 2)
    cfg["strategy"] = "tune-parallel"
    cfg["cv"] = {"n_seeds": 1, "n_folds": 2, "scoring_metric": ["val/acc"]}
    space = tmp / "space.yaml"
    space.write_text(yaml.safe_dump({"hyperparameters": {
        "model.init_args.lr": [0.001, 0.003], "model.init_args.hidden_dim": [64, 256]}}))
    cfg["tune"] = {"search_space": str(space), "n_trials": "grid"}
    path = tmp / "tune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code, seconds, last = run_cli(["tune", "--config", str(path), "--name", "gputune"], tmp, deadline - time.time())
    result: dict = {"step": "tune-parallel, 4 trials x 2 runs, 2 per GPU", "ok": code == 0, "seconds": seconds}
    if code == 0:
        import pandas as pd

        df = pd.read_parquet(tmp / "artifacts" / "gputune" / "run_infos.parquet")
        result["runs_per_min"] = 60.0 * int((df["status"] == "completed").sum()) / seconds
        result["result"] = f"{df['cv_name'].nunique()} trials, {len(df)} runs, best score {df['score'].max():.4f}"
    else:
        result["result"] = f"exit {code}: {last}"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="runs of each cv-parallel cv")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of each run")
    parser.add_argument("--quick", action="store_true", help="4 runs of 3 epochs")
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.epochs = 4, 3
    gpu = gpu_or_exit()
    start = time.time()
    deadline = start + TOTAL_BUDGET
    rows = [step_gpu_tests(start + 0.3 * TOTAL_BUDGET)]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for rpd in (1, 2, 4):
            rows.append(step_cv(tmp, args.runs, args.epochs, rpd, min(deadline - 60, time.time() + 150)))
        rows.append(step_tune(tmp, args.epochs, deadline))
    base = next((r.get("runs_per_min") for r in rows if r["step"].startswith("cv-parallel, 1 ")), None)
    print(f"\nGPU 0: {gpu}; {args.runs} runs x {args.epochs} epochs per cv; total {time.time() - start:.0f} s")
    print(f"| {'step':<44} | ok  | {'wall s':>7} | {'runs/min':>8} | {'vs 1/GPU':>8} | result")
    print(f"|{'-' * 46}|-----|{'-' * 9}|{'-' * 10}|{'-' * 10}|-------")
    for r in rows:
        rate = r.get("runs_per_min")
        ratio = f"{rate / base:.2f}x" if rate and base and r["step"].startswith("cv-parallel") else ""
        print(f"| {r['step']:<44} | {'yes' if r['ok'] else 'NO ':<3} | {r['seconds']:7.1f} | "
              f"{(f'{rate:.1f}' if rate else ''):>8} | {ratio:>8} | {r.get('result', '')}")
    print("goal: 4 runs per GPU >= 2.00x the throughput of 1 per GPU for small models")
    if args.json:
        args.json.write_text(json.dumps({"gpu": gpu, "rows": rows}, indent=2))
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
