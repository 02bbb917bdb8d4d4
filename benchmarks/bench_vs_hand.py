"""The floor: ``tunecv tune`` against the Optuna + Lightning loop a user writes by hand, as whole processes.

The same sweep in every arm: N trials of random search (lr log-uniform, hidden_dim), each trial a cv of
3 stratified folds x 1 seed of the digits MLP, best + last checkpoint per run, CSV logging every 10 steps,
one CPU thread per run. Arms, each a fresh process (imports included, as a user pays them):

- ``tunecv``: ``python -m tunecv tune`` serial;
- ``hand``: a hand-written loop in one process (``study.optimize`` of a loop of ``Trainer.fit`` over the folds);
- ``tunecv-par``: ``python -m tunecv tune`` with ``strategy: tune-parallel`` on 2 slots;
- ``hand-par``: the hand-written loop as 2 processes on one study (a journal file), 1 thread each.

Pairs run in alternating order (tunecv first, then hand first, ...), so a change in the machine's load hits
both arms; the script prints each pair's ratio and the median of the ratios. Two cases: ``long`` (4 epochs
on all the digits) and ``short`` (1 epoch on 300 samples, where the per-trial cost dominates).

    python benchmarks/bench_vs_hand.py --case long --pairs 8
    python benchmarks/bench_vs_hand.py --case short --pairs 8 --arms serial
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import digits_config, machine

HERE = Path(__file__).resolve().parent
CASES = {"long": {"epochs": 4, "limit": None, "trials": 8}, "short": {"epochs": 1, "limit": 300, "trials": 8}}
SPACE = {"model.init_args.lr": {"distribution": "loguniform", "low": 1e-4, "high": 1e-1},
         "model.init_args.hidden_dim": {"distribution": "intuniform", "low": 32, "high": 128, "step": 32}}


def sweep_config(root: Path, case: dict) -> dict:
    cfg = digits_config(root, case["epochs"], n_seeds=1, n_folds=3, hidden=64)
    cfg["split"]["total_folds"] = 3
    cfg["data"]["init_args"]["limit"] = case["limit"]
    cfg["local"] = {"threads_per_worker": 1}
    return cfg


# ---------------------------------------------------------------- the hand-written loop (one process)

def hand_worker(cfg: dict, storage: str, n_trials: int, seed: int) -> None:
    """What a user writes: an Optuna objective that cross-validates with Trainer.fit, one thread."""
    import lightning as L
    import optuna
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from tunecv.config import SplitConfig
    from tunecv.examples.digits import DigitsClassifier, DigitsDataModule

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = Path(cfg["artifact_dir"])

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("model.init_args.lr", 1e-4, 1e-1, log=True)
        hidden = trial.suggest_int("model.init_args.hidden_dim", 32, 128, step=32)
        scores = []
        for fold in range(3):
            L.seed_everything(42, verbose=False)
            model = DigitsClassifier(hidden_dim=hidden, lr=lr)
            data = DigitsDataModule(**cfg["data"]["init_args"])
            data.configure_split(SplitConfig(**cfg["split"]), fold, 42)
            out = root / f"trial{trial.number}" / f"fold{fold}"
            trainer = L.Trainer(max_epochs=cfg["trainer"]["max_epochs"], accelerator="cpu", devices=1,
                                log_every_n_steps=10, logger=CSVLogger(out), enable_progress_bar=False,
                                enable_model_summary=False,
                                callbacks=[ModelCheckpoint(dirpath=out / "ckpt", monitor="val/acc", mode="max",
                                                           save_last=True)])
            trainer.fit(model, datamodule=data)
            scores.append(float(trainer.callback_metrics["val/acc"]))
        return sum(scores) / len(scores)

    if storage.endswith(".log"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend
        store = JournalStorage(JournalFileBackend(storage))
    else:
        store = storage
    study = optuna.create_study(study_name="hand", storage=store, load_if_exists=True, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=seed))
    study.optimize(objective, n_trials=n_trials,
                   callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=None)])


# ---------------------------------------------------------------- the arms, as whole processes

SRC = {"": str(HERE.parent / "src")}  # "base": another checkout's src (--base-src), for before/after


def _env(tree: str = "") -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_MODE="offline")
    src = SRC[tree]
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


CPU: list[float] = []  # the CPU seconds (user + sys) of each arm's processes, in the order run


def _timed(cmds: list[list[str]], cwd: Path, tree: str = "") -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, cwd=cwd, env=_env(tree), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for c in cmds]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"arm failed ({p.args}):\n{err.decode()[-3000:]}")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall


def run_arm(arm: str, case: dict, tmp: Path, index: int) -> float:
    root = tmp / f"{arm}{index}"
    root.mkdir()
    cfg = sweep_config(root, case)
    if arm.startswith("tunecv"):
        (root / "space.yaml").write_text(yaml.safe_dump({"hyperparameters": SPACE}))
        cfg["tune"] = {"search_space": str(root / "space.yaml"), "n_trials": case["trials"], "sampler": "random"}
        if arm.startswith("tunecv-par"):
            cfg.update(strategy="tune-parallel", devices=[0, 1])
        (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        return _timed([[sys.executable, "-m", "tunecv", "tune", "--config", str(root / "cfg.yaml"),
                        "--name", "bench", "--quiet"]], root, "base" if arm.endswith("-base") else "")
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    storage = f"sqlite:///{root / 'hand.db'}" if arm == "hand" else str(root / "hand.log")
    worker = [sys.executable, str(Path(__file__).resolve()), "--hand-worker", str(root / "cfg.yaml"),
              "--storage", storage, "--trials", str(case["trials"])]
    n = 1 if arm == "hand" else 2
    return _timed([[*worker, "--seed", str(w)] for w in range(n)], root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), default="long")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--arms", choices=["serial", "parallel", "both"], default="both")
    parser.add_argument("--trials", type=int, default=None, help="trials per tune (default: the case's)")
    parser.add_argument("--base-src", help="another checkout's src: its tunecv runs in each pair too (before/after)")
    parser.add_argument("--hand-worker", metavar="CFG", help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hand_worker:
        hand_worker(yaml.safe_load(Path(args.hand_worker).read_text()), args.storage, args.trials, args.seed)
        return
    case = dict(CASES[args.case], **({"trials": args.trials} if args.trials else {}))
    pairs = {"serial": [("tunecv", "hand")], "parallel": [("tunecv-par", "hand-par")]}
    groups = pairs["serial"] + pairs["parallel"] if args.arms == "both" else pairs[args.arms]
    if args.base_src:
        SRC["base"] = str(Path(args.base_src).resolve())
        groups = [(ours, hand, f"{ours}-base") for ours, hand in groups]
    print(f"machine: {machine()}; load at start: {os.getloadavg()[0]:.2f}")
    print(f"case {args.case}: {case['trials']} trials x 3 folds x {case['epochs']} epochs, "
          f"{case['limit'] or 'all'} samples, 1 thread per run")
    ratios: dict[str, list[float]] = {arm: [] for group in groups for arm in group[:1] + group[2:]}
    after_before: dict[str, list[float]] = {group[0]: [] for group in groups if len(group) > 2}
    cpu_after_before: dict[str, list[float]] = {group[0]: [] for group in groups if len(group) > 2}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs):
            for group in groups:
                order = list(group) if i % 2 == 0 else list(reversed(group))
                times = {arm: run_arm(arm, case, Path(tmp), i) for arm in order}
                cpu = dict(zip(order, CPU[-len(order):]))
                hand = group[1]
                for arm in group[:1] + group[2:]:
                    ratios[arm].append(times[arm] / times[hand])
                if len(group) > 2:  # this tree against --base-src in the same pair
                    after_before[group[0]].append(times[group[0]] / times[group[2]])
                print(f"pair {i + 1} ({' then '.join(order)}): "
                      + ", ".join(f"{a} {times[a]:.2f} s" for a in order)
                      + "; ratio " + ", ".join(f"{a} / {hand} {ratios[a][-1]:.3f}" for a in group[:1] + group[2:])
                      + f"; load {os.getloadavg()[0]:.2f}; CPU s " + ", ".join(f"{a} {cpu[a]:.1f}" for a in order),
                      flush=True)
                if len(group) > 2:
                    cpu_after_before[group[0]].append(cpu[group[0]] / cpu[group[2]])
    for group in groups:
        for arm in group[:1] + group[2:]:
            r = ratios[arm]
            print(f"median {arm} / {group[1]}: {statistics.median(r):.3f} over {len(r)} pairs "
                  f"(min {min(r):.3f}, max {max(r):.3f})")
    for arm, r in after_before.items():
        print(f"median {arm} / {arm}-base (this tree / --base-src): {statistics.median(r):.3f} over {len(r)} pairs "
              f"(min {min(r):.3f}, max {max(r):.3f})")
        c = cpu_after_before[arm]
        print(f"median CPU time {arm} / {arm}-base: {statistics.median(c):.3f} (min {min(c):.3f}, max {max(c):.3f})")


if __name__ == "__main__":
    main()
