"""Bookkeeping cost of a tune as it grows: the null-model tune at 200 and 2 000 trials (10 000 with --full).

    python benchmarks/bench_tune_scale.py            # 200 and 2 000 trials
    python benchmarks/bench_tune_scale.py --full     # and 10 000
    python benchmarks/bench_tune_scale.py --sizes 300

Each trial is one cv of one run of :mod:`tunecv.examples.null` (a one-parameter model, one batch), with
the random sampler and no pruner, so that what grows is tunecv's bookkeeping. For each size it prints
the time from one trial's start to the next (Optuna's ``datetime_start``), mean and median, over the first
and the last 100 trials and their ratio (the baseline is the same tune's first trials), and the share of
the tune's wall time spent inside trials (``datetime_start`` to ``datetime_complete``: the cv, its run,
its files) and inside the runs themselves (``duration`` in ``run_infos``).

Before / after a change: ``--base-src OTHER_CHECKOUT/src`` runs each size with this tree's ``src`` and with
``OTHER_CHECKOUT/src``, each tune in its own process (``PYTHONPATH``, imports outside the timing), ``--pairs``
times, alternating which goes first, and prints the after / before ratio of the wall time and of the
start-to-start gaps (median over the pairs).

    python benchmarks/bench_tune_scale.py --sizes 200 --pairs 3 --base-src ../wt-before/src
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from _common import machine, run_in_tree

WINDOW = 100


def null_config(artifact_dir: Path, space: Path, n_trials: int, **tune_keys) -> dict:
    """A tune of the null model: one run per trial, random sampler, no pruner, no retrain."""
    return {
        "artifact_dir": str(artifact_dir),
        "model": {"class_path": "tunecv.examples.null.NullModel"},
        "data": {"class_path": "tunecv.examples.null.NullDataModule"},
        "split": {"fold_method": "none"},
        "trainer": {"max_epochs": 1, "enable_progress_bar": False, "enable_model_summary": False},
        "accelerator": "cpu",
        "devices": [0],
        "early_stopping": None,
        "cv": {"n_seeds": 1, "scoring_metric": ["val/loss:lower"]},
        "tune": {"search_space": str(space), "n_trials": n_trials, "sampler": "random", "pruner": "none",
                 "retrain_and_test": False, **tune_keys},
    }


def write_space(folder: Path) -> Path:
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump({"hyperparameters": {"model.init_args.x": {"low": -1.0, "high": 1.0}}}))
    return path


def trial_timings(study) -> dict:
    """Start-to-start gaps of the first and last ``WINDOW`` trials (by start time) and time in trials."""
    from optuna.trial import TrialState

    trials = sorted((t for t in study.get_trials(deepcopy=False) if t.datetime_start is not None),
                    key=lambda t: t.datetime_start)
    starts = [t.datetime_start.timestamp() for t in trials]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    inside = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials
                 if t.state != TrialState.RUNNING and t.datetime_complete is not None)
    window = min(WINDOW, max(1, len(gaps) // 2))
    first, last = gaps[:window], gaps[-window:]
    return {"first_mean": statistics.fmean(first), "first_median": statistics.median(first),
            "last_mean": statistics.fmean(last), "last_median": statistics.median(last),
            "inside_trials": inside, "window": window}


def run_size(n_trials: int, root: Path) -> dict:
    from tunecv.results import load_run_infos
    from tunecv.tune import tune

    space = write_space(root)
    cfg = null_config(root / "artifacts", space, n_trials)
    t0 = time.perf_counter()
    result = tune(cfg, name=f"scale{n_trials}", progress=False)
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    df = load_run_infos(result.tune_dir)
    load = time.perf_counter() - t1
    assert result.n_finished == n_trials and len(df) == n_trials and df["run_name"].is_unique, \
        (result.n_finished, len(df))
    stats = trial_timings(result.study)
    stats.update(wall=wall, inside_runs=float(df["duration"].sum()), load_run_infos=load, n=n_trials)
    return stats


def table_only(n_trials: int, root: Path) -> dict:
    """The tune table's own work per trial (write the cv's part, compact on schedule) over ``n_trials``
    one-run cvs, through the tune's real writer and a real Optuna study, without training anything."""
    import datetime as dt
    from types import SimpleNamespace

    import optuna

    from tunecv.results import read_tune_table, run_infos_frame
    from tunecv.tune.table import _TuneTable

    study = optuna.create_study(direction="minimize")
    table = _TuneTable(root, study)
    start = dt.datetime(2026, 11, 29, tzinfo=dt.timezone.utc)
    times = []
    for i in range(n_trials):
        trial = study.ask()
        row = {"run_name": f"t-cv{i}-run-f0s42", "run_id": f"{i:08d}", "cv_name": f"t-cv{i}", "tune_name": "t",
               "fold": 0, "seed": 42, "started_at": start, "finished_at": start, "duration": 0.01,
               "checkpoint": None, "status": "completed", "error": None, "is_unstable": False,
               "val/loss": 0.1, "val/acc": 0.9, "score": 0.1, "score_is_unstable": False, "trial": trial.number,
               "trial_state": "running", "model.init_args.x": 0.5}
        session = SimpleNamespace(name=f"t-cv{i}", frame=lambda row=row: run_infos_frame([row]))
        study.tell(trial, 0.1)
        t0 = time.perf_counter()
        table.add(session, trial, "complete")
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    table.compact()
    final = time.perf_counter() - t0
    assert len(read_tune_table(root)) == n_trials
    window = min(WINDOW, n_trials // 2)
    return {"first": statistics.fmean(times[:window]), "last": statistics.fmean(times[-window:]),
            "max": max(times), "total": sum(times), "final": final, "window": window}


SRC = {"after": str(Path(__file__).resolve().parent.parent / "src")}  # "before": --base-src


def in_child(tree: str, n_trials: int, root: Path) -> dict:
    """:func:`run_size` in a new process whose tunecv is ``SRC[tree]``."""
    root.mkdir(parents=True)
    return run_in_tree(__file__, SRC[tree], ["--child", str(root), "--sizes", str(n_trials)], tree)


def child(root: Path, n_trials: int) -> None:
    import lightning  # noqa: F401  (outside the timing)
    import optuna
    import torch

    import tunecv
    import tunecv.tune  # (outside the timing)

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    cpu = time.process_time()
    stats = run_size(n_trials, root)
    stats["cpu"] = time.process_time() - cpu  # this process's CPU time: less sensitive to load than wall
    print(json.dumps({**stats, "tunecv": str(Path(tunecv.__file__).resolve())}))


def before_after(sizes: list[int], pairs: int, base_src: str) -> None:
    SRC["before"] = str(Path(base_src).resolve())
    print(f"machine: {machine()}; load at start: {os.getloadavg()[0]:.2f}")
    print(f"each tune in its own process, 1 torch thread; after = {SRC['after']}, before = {SRC['before']}")
    keys = ("wall", "cpu", "first_median", "last_median")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            ratios: dict[str, list[float]] = {k: [] for k in keys}
            for i in range(pairs):
                order = ["after", "before"] if i % 2 == 0 else ["before", "after"]
                got = {tree: in_child(tree, n, Path(tmp) / f"{tree}{n}-{i}") for tree in order}
                for k in keys:
                    ratios[k].append(got["after"][k] / got["before"][k])
                print(f"{n} trials, pair {i + 1} ({' then '.join(order)}): wall after {got['after']['wall']:.1f} s, "
                      f"before {got['before']['wall']:.1f} s (ratio {ratios['wall'][-1]:.3f}); CPU after "
                      f"{got['after']['cpu']:.1f} s, before {got['before']['cpu']:.1f} s (ratio {ratios['cpu'][-1]:.3f}); "
                      f"median start-to-start "
                      f"first {got['after']['window']} after {got['after']['first_median'] * 1000:.0f} ms, before "
                      f"{got['before']['first_median'] * 1000:.0f} ms; last after "
                      f"{got['after']['last_median'] * 1000:.0f} ms, before {got['before']['last_median'] * 1000:.0f} "
                      f"ms; load {os.getloadavg()[0]:.2f}", flush=True)
            print(f"{n} trials, median ratio after / before over {pairs} pairs: wall "
                  f"{statistics.median(ratios['wall']):.3f} (min {min(ratios['wall']):.3f}, max "
                  f"{max(ratios['wall']):.3f}); CPU {statistics.median(ratios['cpu']):.3f} (min {min(ratios['cpu']):.3f}, "
                  f"max {max(ratios['cpu']):.3f}); first gaps {statistics.median(ratios['first_median']):.3f}; last gaps "
                  f"{statistics.median(ratios['last_median']):.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="trial counts (default 200 2000)")
    parser.add_argument("--full", action="store_true", help="also 10 000 trials")
    parser.add_argument("--keep", type=Path, default=None, help="keep the artifacts in this folder")
    parser.add_argument("--table-only", type=int, nargs="+", default=None, metavar="N",
                        help="measure only the tune table's work per trial (no training) at these sizes")
    parser.add_argument("--base-src", help="another checkout's src: run each size with its tunecv too (before/after)")
    parser.add_argument("--pairs", type=int, default=3, help="before/after pairs per size (with --base-src)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.sizes[0])
        return
    if args.base_src:
        before_after(args.sizes or [200], args.pairs, args.base_src)
        return
    if args.table_only:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        print(f"machine: {machine()}")
        for n in args.table_only:
            with tempfile.TemporaryDirectory() as tmp:
                r = table_only(n, Path(tmp))
            print(f"tune table alone, {n} trials: mean per trial first {r['window']} {r['first'] * 1000:.1f} ms, "
                  f"last {r['window']} {r['last'] * 1000:.1f} ms (ratio {r['last'] / r['first']:.2f}); all "
                  f"{r['total']:.1f} s ({r['total'] / n * 1000:.1f} ms per trial), slowest one {r['max']:.2f} s "
                  f"(a compaction), final compaction {r['final']:.2f} s", flush=True)
        return
    sizes = args.sizes or ([200, 2000, 10000] if args.full else [200, 2000])
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"machine: {machine()}")
    rows = []
    for n in sizes:
        if args.keep is not None:
            folder = args.keep / f"scale{n}"
            folder.mkdir(parents=True, exist_ok=False)
            rows.append(run_size(n, folder))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(run_size(n, Path(tmp)))
        r = rows[-1]
        print(f"{n} trials: wall {r['wall']:.1f} s ({n / r['wall']:.2f} trials/s); "
              f"start-to-start first {r['window']}: mean {r['first_mean'] * 1000:.0f} ms, median "
              f"{r['first_median'] * 1000:.0f} ms; last {r['window']}: mean {r['last_mean'] * 1000:.0f} ms, "
              f"median {r['last_median'] * 1000:.0f} ms; last/first mean {r['last_mean'] / r['first_mean']:.2f}, "
              f"median {r['last_median'] / r['first_median']:.2f}; inside trials "
              f"{100 * r['inside_trials'] / r['wall']:.0f} % of wall, inside runs "
              f"{100 * r['inside_runs'] / r['wall']:.0f} %; load_run_infos {r['load_run_infos']:.2f} s",
              flush=True)
    print()
    print("| trials | wall | trials/s | first 100 mean / median | last 100 mean / median | last/first (mean, median) "
          "| in trials | in runs |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['n']} | {r['wall']:.1f} s | {r['n'] / r['wall']:.2f} | {r['first_mean'] * 1000:.0f} / "
              f"{r['first_median'] * 1000:.0f} ms | {r['last_mean'] * 1000:.0f} / {r['last_median'] * 1000:.0f} ms "
              f"| {r['last_mean'] / r['first_mean']:.2f}, {r['last_median'] / r['first_median']:.2f} "
              f"| {100 * r['inside_trials'] / r['wall']:.0f} % | {100 * r['inside_runs'] / r['wall']:.0f} % |")


if __name__ == "__main__":
    main()
