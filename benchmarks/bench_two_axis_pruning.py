"""Pruning on two axes (issue #25): epochs until reaching random search's best cv score, per arm, on the
three problems of ``bench_tune_efficiency.py`` (same configs, same seeds).

Arms (one seed = one sampler seed for every arm):

1. ``random``: random search, N full cvs: its best cv score is the target;
2. ``tunecv``: TPE + Wilcoxon fold pruning (tunecv today);
3. ``two-axis``: TPE + Wilcoxon between runs + ``tune.run_pruner`` (successive halving at epoch rungs,
   ``--schedules``) inside runs;
4. ``optuna-holdout``: what an Optuna user writes: TPE + ``HyperbandPruner`` (min 1 epoch, reduction factor 3)
   + ``optuna_integration.PyTorchLightningPruningCallback`` on one holdout split (fold 0 of the same cv);
   each new holdout-best configuration is then scored with the same cv (not counted in its epochs);
5. ``ray-asha``: Ray Tune, ``ASHAScheduler`` (grace period 1 epoch, reduction factor 3) + ``OptunaSearch``
   (TPE, same seed), one trial at a time, on the same holdout split, scored afterwards as arm 4.

Arms 4 and 5 need the ``bench`` extra (``pip install -e .[bench]``: optuna-integration, ray[tune]).
Per arm: epochs spent (in trial order) until a complete trial's cv score first reached the target, and the
cv score and test score (mean of the chosen cv's runs on the held-out test split, 20 % of the data) of the
configuration it chose (its best trial, after at most 2N trials or the target). Every arm stops at the
target. ``--schedules 1x3 1x2`` runs one two-axis arm per rung schedule (``rung_min_epochs`` x
``rung_reduction_factor``).

``--stop-when`` runs the convergence check instead: TPE + Wilcoxon with ``tune.stop_when: converged`` and a
cap of ``--cap`` trials; then the same tune resumed without ``stop_when`` up to the cap; does the first stop
by itself before the cap, and is its choice within the cv's std (of the capped tune's best trial's run
scores) of the capped tune's choice?

    python benchmarks/bench_two_axis_pruning.py --trials 5 --seeds 2 --epochs 9 --schedules 1x3 1x2
    python benchmarks/bench_two_axis_pruning.py --stop-when --seeds 1 --epochs 2 --cap 40
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Optional

import pandas as pd
import yaml
from _common import machine
from bench_tune_efficiency import PROBLEMS, config, stop_at


def _cfg(problem: dict, root: Path, space: Path, args, sampler: str, pruner: str, n: int, seed: int, **tune_keys):
    cfg = config(problem, root, space, args.epochs, sampler, pruner, n, seed)
    cfg["split"] = {**cfg["split"], "test_split": "random", "test_split_by": [0.2]}
    cfg["tune"].update(tune_keys)
    return cfg


def epochs_until(df, target: float, epochs: int, lower: bool) -> tuple[float, bool]:
    """Epochs trained, in trial order, until a complete trial's cv reached ``target``: a run pruned inside
    counts its ``pruned_at_epoch``, a run never started counts nothing."""
    spent = 0.0
    for trial in sorted(df["trial"].unique()):
        rows = df[df["trial"] == trial]
        for row in rows.itertuples():
            at = getattr(row, "pruned_at_epoch", None)
            if row.status in ("completed", "failed"):
                spent += epochs
            elif row.status == "pruned" and at is not None and not pd.isna(at):
                spent += int(at)
        score = float(rows["score"].iloc[0])
        if rows["trial_state"].iloc[0] == "complete" and (score <= target + 1e-12 if lower else score >= target - 1e-12):
            return spent, True
    return spent, False


def chosen(df, metric: str, best_trial) -> tuple[float, float]:
    """(cv score, mean test metric) of ``best_trial``'s cv."""
    rows = df[(df["trial"] == best_trial) & (df["status"] == "completed")]
    test_col = "test/" + metric.split(":")[0].split("/", 1)[1]
    test = float(rows[test_col].mean()) if test_col in rows else float("nan")
    return float(rows["score"].iloc[0]), test


def reached(score: float, target: float, lower: bool) -> bool:
    return score <= target + 1e-12 if lower else score >= target - 1e-12


class HoldoutArm:
    """What arms 4 and 5 share: one holdout split (fold 0 of the same cv), and each new holdout-best
    configuration scored afterwards with the same cv (not counted in the arm's epochs)."""

    def __init__(self, problem: dict, root: Path, space: Path, args, seed: int, label: str) -> None:
        from tunecv.build import as_config
        from tunecv.search_space import SearchSpace

        self.problem, self.root, self.args, self.seed, self.label = problem, root, args, seed, label
        self.metric = problem["metric"].split(":")[0]
        self.lower = problem["metric"].endswith(":lower")
        self.base = as_config(_cfg(problem, root, space, args, "tpe", "none", 1, seed))
        self.space = SearchSpace.from_file(str(space))
        self.best_holdout: Optional[float] = None
        self.best: Optional[tuple[float, float]] = None  # (cv score, test score) of the holdout-best config

    def config(self, values: dict, n: int):
        from tunecv.search_space import apply

        return apply(self.base, self.space.to_config(values)).replace(
            fold=0, name=f"{self.label}{self.seed}-{n}", artifact_dir=str(self.root / f"{self.label}-{self.seed}"))

    def finished(self, values: dict, n: int, holdout: float, target: float) -> bool:
        """A run that trained to the end: when it is the new holdout best, its cv score; whether it reached
        ``target``."""
        from tunecv.cv import cross_validate

        if self.best_holdout is not None and not reached(holdout, self.best_holdout, self.lower):
            return False
        self.best_holdout = holdout
        cv = cross_validate(self.config(values, n).replace(name=None), name=f"{self.label}cv{self.seed}-{n}",
                            progress=False)
        self.best = (cv.score, chosen(cv.run_infos.assign(trial=0), self.problem["metric"], 0)[1])
        return reached(cv.score, target, self.lower)


def optuna_holdout(problem: dict, root: Path, space: Path, args, seed: int, target: float, lower: bool):
    """Arm 4, what an Optuna user writes: TPE + HyperbandPruner + optuna-integration's
    ``PyTorchLightningPruningCallback`` on one holdout split."""
    import optuna
    from optuna_integration import PyTorchLightningPruningCallback

    from tunecv.train import train

    arm = HoldoutArm(problem, root, space, args, seed, "h")

    class Counted(PyTorchLightningPruningCallback):  # counts the epochs it saw; the pruning is Optuna's own
        epochs, pruned = 0, False

        def on_validation_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                self.epochs = trainer.current_epoch + 1
            try:
                super().on_validation_end(trainer, pl_module)
            except optuna.TrialPruned:
                self.pruned = True
                raise

    study = optuna.create_study(direction="minimize" if lower else "maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=args.epochs,
                                                                      reduction_factor=3))
    spent, hit = 0, False
    for n in range(2 * args.trials):
        trial = study.ask()
        values = arm.space.suggest(trial)
        cb = Counted(trial, monitor=arm.metric)
        try:
            res = train(arm.config(values, n), callbacks=[cb], quiet=True, progress_bar=False)
        except optuna.TrialPruned:
            res = None
        spent += cb.epochs
        if cb.pruned or res is None or arm.metric not in res.metrics:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED if cb.pruned else optuna.trial.TrialState.FAIL)
            continue
        study.tell(trial, float(res.metrics[arm.metric]))
        if arm.finished(values, n, float(res.metrics[arm.metric]), target):
            hit = True
            break
    return spent, hit, arm.best


def _ray_space(problem: dict) -> dict:
    from ray import tune as rt

    out = {}
    for key, d in problem["space"].items():
        make = {"loguniform": lambda d: rt.loguniform(d["low"], d["high"]),
                "uniform": lambda d: rt.uniform(d["low"], d["high"]),
                "intuniform": lambda d: rt.randint(d["low"], d["high"] + 1)}[d["distribution"]]
        out[key.replace(".", "__")] = make(d)
    return out


def _ray_trainable(config: dict, arm: HoldoutArm) -> None:
    """One holdout run in a Ray worker, reporting the metric after every validation epoch (ASHA stops it)."""
    from lightning.pytorch.callbacks import Callback
    from ray import tune as rt

    from tunecv.train import train

    class Report(Callback):
        def on_validation_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                rt.report({"value": float(trainer.callback_metrics[arm.metric]), "epoch": trainer.current_epoch + 1})

    values = {k.replace("__", "."): v for k, v in config.items()}
    train(arm.config(values, abs(hash(str(sorted(values.items())))) % 10**8), callbacks=[Report()], quiet=True,
          progress_bar=False)


def ray_asha(problem: dict, root: Path, space: Path, args, seed: int, target: float, lower: bool):
    """Arm 5: Ray Tune, ``ASHAScheduler`` (grace 1 epoch, reduction factor 3) + ``OptunaSearch`` (TPE, same
    seed), one trial at a time, on the same holdout split as arm 4."""
    import ray
    from ray import tune as rt
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    arm = HoldoutArm(problem, root, space, args, seed, "r")
    mode = "min" if lower else "max"
    state = {"spent": 0, "hit": False}

    class Watch(rt.Callback):  # in the driver: epochs in trial order, and the cv of each new holdout best
        def on_trial_complete(self, iteration, trials, trial, **info):
            last = trial.last_result or {}
            state["spent"] += int(last.get("epoch", 0))
            if not state["hit"] and last.get("epoch") == args.epochs:
                values = {k.replace("__", "."): v for k, v in trial.config.items()}
                state["hit"] = arm.finished(values, len(trials), float(last["value"]), target)

    class StopAtTarget(rt.Stopper):
        def __call__(self, trial_id, result):
            return False

        def stop_all(self):
            return state["hit"]

    if not ray.is_initialized():
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    tuner = rt.Tuner(
        rt.with_parameters(_ray_trainable, arm=arm), param_space=_ray_space(problem),
        tune_config=rt.TuneConfig(metric="value", mode=mode, num_samples=2 * args.trials, max_concurrent_trials=1,
                                  search_alg=OptunaSearch(seed=seed),
                                  scheduler=ASHAScheduler(time_attr="epoch", max_t=args.epochs, grace_period=1,
                                                          reduction_factor=3)),
        run_config=rt.RunConfig(storage_path=str(root / f"ray-{seed}"), name=f"asha-{seed}", verbose=0,
                                callbacks=[Watch()], stop=StopAtTarget()))
    tuner.fit()
    return state["spent"], state["hit"], arm.best


def schedule_label(schedule: str) -> str:
    return "two-axis" if schedule is None else f"two-axis {schedule}"


def run_problem(name: str, root: Path, args) -> list[dict]:
    from tunecv.tune import tune

    problem = PROBLEMS[name]
    lower = problem["metric"].endswith(":lower")
    space = root / f"{name}-space.yaml"
    space.write_text(yaml.safe_dump({"hyperparameters": problem["space"]}))
    out = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        def run(label, sampler, pruner, n, seed=seed, **keys):
            return tune(_cfg(problem, root, space, args, sampler, pruner, n, seed, **keys),
                        name=f"{name}-{label.replace(' ', '-')}-{seed}", progress=False)

        rnd = run("random", "random", "none", args.trials)
        target = rnd.best_score
        r_epochs, _ = epochs_until(rnd.run_infos, -math.inf if lower else math.inf, args.epochs, lower)
        row = {"problem": name, "seed": seed, "target": target, "random_epochs": r_epochs,
               "random": (r_epochs, True, chosen(rnd.run_infos, problem["metric"], rnd.best_trial))}
        arms: dict[str, dict] = {"tunecv": {}} if "tunecv" in args.arms else {}
        if "two-axis" in args.arms:
            for schedule in args.schedules:
                low, rf = (int(x) for x in schedule.split("x"))
                label = schedule_label(None if len(args.schedules) == 1 else schedule)
                arms[label] = {"run_pruner": "successive_halving", "rung_min_epochs": low, "rung_reduction_factor": rf}
        for label, keys in arms.items():
            t0 = time.perf_counter()
            with stop_at(target, lower):
                res = run(label, "tpe", "wilcoxon", 2 * args.trials, **keys)
            spent, hit = epochs_until(res.run_infos, target, args.epochs, lower)
            pick = chosen(res.run_infos, problem["metric"], res.best_trial) if res.best_trial is not None else None
            row[label] = (spent, hit, pick, time.perf_counter() - t0)
        for label, arm in (("optuna-holdout", optuna_holdout), ("ray-asha", ray_asha)):
            if label in args.arms:
                t0 = time.perf_counter()
                row[label] = (*arm(problem, root, space, args, seed, target, lower), time.perf_counter() - t0)
        print(fmt(row), flush=True)
        out.append(row)
    return out


def fmt(row: dict) -> str:
    parts = [f"{row['problem']} seed {row['seed']}: target {row['target']:.4f}"]
    for arm in arm_names(row):
        spent, hit, pick = row[arm][:3]
        cv, test = pick if pick else (float("nan"), float("nan"))
        parts.append(f"{arm} {spent:.0f} ep ({spent / row['random_epochs']:.2f}){'' if hit else ' NOT reached'} "
                     f"cv {cv:.4f} test {test:.4f}")
    return "; ".join(parts)


def arm_names(row: dict) -> list[str]:
    return [k for k, v in row.items() if isinstance(v, tuple)]


def summary(rows: list[dict], problems: list[str]) -> None:
    """Per problem and arm: median epochs vs random search, how often it reached the target, median cv and
    test score of its choice; two-axis against arms 4 and 5 in the same run (median of the per-seed ratios)."""
    for name in problems:
        mine = [r for r in rows if r["problem"] == name]
        if not mine:
            continue
        print(f"{name} ({len(mine)} seeds): arm: median epochs / random [reached n/N] median cv, test of the choice")
        for arm in arm_names(mine[0]):
            ratio = statistics.median(r[arm][0] / r["random_epochs"] for r in mine)
            picks = [r[arm][2] for r in mine if r[arm][2]]
            cv = statistics.median(p[0] for p in picks) if picks else float("nan")
            test = statistics.median(p[1] for p in picks) if picks else float("nan")
            hits = sum(bool(r[arm][1]) for r in mine)
            print(f"  {arm:<18} {ratio:5.2f} [{hits}/{len(mine)}] cv {cv:.4f} test {test:.4f}")
        for mine_arm in [a for a in arm_names(mine[0]) if a.startswith("two-axis")]:
            for other in ("optuna-holdout", "ray-asha"):
                if other in mine[0]:
                    ratio = statistics.median(r[mine_arm][0] / max(r[other][0], 1) for r in mine)
                    print(f"  {mine_arm} / {other}: {ratio:.2f} (goal <= 0.7)")


def stop_when_check(name: str, root: Path, args) -> list[dict]:
    """``tune.stop_when: converged`` with a cap of ``--cap`` trials (TPE + Wilcoxon): does the tune stop by
    itself before the cap, and is its choice within the cv's std of the choice the full cap makes? The full
    tune is the same tune resumed without ``stop_when`` up to the cap (its first trials are the stopped
    tune's own)."""
    from tunecv.tune import tune

    problem = PROBLEMS[name]
    space = root / f"{name}-space.yaml"
    space.write_text(yaml.safe_dump({"hyperparameters": problem["space"]}))
    out = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        cfg = _cfg(problem, root, space, args, "tpe", args.stop_pruner, args.cap, seed, stop_when="converged",
                   stop_min_trials=args.stop_min_trials)
        stopped = tune(cfg, name=f"{name}-stop-{seed}", progress=False)
        n_stop = sum(t.state.is_finished() for t in stopped.study.trials)
        n_complete = sum(t.state.name == "COMPLETE" for t in stopped.study.trials)
        cfg["tune"]["stop_when"] = None
        full = tune(cfg, name=f"{name}-stop-{seed}", resume=True, progress=False)
        runs = full.study.trials[full.best_trial].user_attrs.get("run_scores") or {}
        std = statistics.stdev(runs.values()) if len(runs) > 1 else float("nan")
        row = {"problem": name, "seed": seed, "trials": n_stop, "complete": n_complete, "stopped_by": stopped.stopped_by,
               "score": stopped.best_score, "full": full.best_score, "std": std,
               "within": abs(stopped.best_score - full.best_score) <= std}
        print(f"{name} seed {seed}: stopped after {n_stop} trials, {n_complete} complete ({stopped.stopped_by}); choice {row['score']:.4f} "
              f"vs {args.cap}-trial {row['full']:.4f}, cv std {std:.4f}: {'within' if row['within'] else 'OUTSIDE'}",
              flush=True)
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", choices=sorted(PROBLEMS), default=list(PROBLEMS))
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--schedules", nargs="+", default=["1x3"],
                        help="rung schedules of the two-axis arm, MINxRF (rung_min_epochs x rung_reduction_factor)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--stop-when", action="store_true", help="run the stop_when check instead of the arms")
    parser.add_argument("--cap", type=int, default=40, help="trial cap of the stop_when check")
    parser.add_argument("--stop-min-trials", type=int, default=20, help="tune.stop_min_trials of the check")
    parser.add_argument("--stop-pruner", default="wilcoxon", help="tune.pruner of the check")
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.problems:
            rows += (stop_when_check if args.stop_when else run_problem)(name, Path(tmp), args)
    print(f"machine: {machine()}; load {os.getloadavg()[0]:.1f} at the end; {time.perf_counter() - t0:.0f} s in "
          f"all; epochs {args.epochs}, trials {args.trials} (random) / {2 * args.trials} (others), schedules "
          f"{' '.join(args.schedules)}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if args.stop_when:
        for name in args.problems:
            mine = [r for r in rows if r["problem"] == name]
            print(f"{name}: stopped before {args.cap} in {sum(r['trials'] < args.cap for r in mine)}/{len(mine)}, "
                  f"choice within the cv std in {sum(r['within'] for r in mine)}/{len(mine)}; trials "
                  f"{[r['trials'] for r in mine]}")
    else:
        summary(rows, args.problems)


ARMS = ("tunecv", "two-axis", "optuna-holdout", "ray-asha")

if __name__ == "__main__":
    main()
