"""Pruning on two axes (issue #25): epochs until reaching random search's best cv score, per arm, on the
three problems of ``bench_tune_efficiency.py`` (same configs, same seeds).

Arms (one seed = one sampler seed for every arm):

1. ``random``: random search, N full cvs: its best cv score is the target;
2. ``tunecv``: TPE + Wilcoxon fold pruning (tunecv today);
3. ``two-axis``: TPE + Wilcoxon between runs + ``tune.run_pruner`` (successive halving at epoch rungs,
   ``--rf``, ``--min-epochs``) inside runs;
4. ``optuna-holdout``: what an Optuna user writes: TPE + ``HyperbandPruner`` on one holdout split (fold 0),
   reporting the validation metric after each epoch and stopping a pruned run, the pattern of
   ``optuna_integration.PyTorchLightningPruningCallback`` (``optuna-integration`` is not installed here: the
   callback below does what it does: ``trial.report(value, epoch)``, ``trial.should_prune()``). Each new
   holdout-best configuration is then scored with the same cv (not counted in its epochs);
5. Ray Tune ASHA + OptunaSearch: not run (see benchmarks/README.md).

Per arm: epochs spent (in trial order) until a complete trial's cv score first reached the target, and the
cv score and test score (mean of the chosen cv's runs on the held-out test split) of the configuration it
chose (its best trial, after at most 2N trials or the target).

    python benchmarks/bench_two_axis_pruning.py --trials 8 --seeds 2 --epochs 9
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

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


def optuna_holdout(problem: dict, root: Path, space: Path, args, seed: int, target: float, lower: bool):
    """Arm 4: TPE + HyperbandPruner on fold 0 alone; each new holdout-best config scored with the cv."""
    import optuna
    from lightning.pytorch.callbacks import Callback

    from tunecv.build import as_config
    from tunecv.cv import cross_validate
    from tunecv.search_space import SearchSpace, apply
    from tunecv.train import train

    metric = problem["metric"].split(":")[0]
    base = as_config(_cfg(problem, root, space, args, "tpe", "none", 1, seed))
    sp = SearchSpace.from_file(str(space))

    class Report(Callback):  # what PyTorchLightningPruningCallback does
        def __init__(self, trial):
            self.trial, self.epochs, self.pruned = trial, 0, False

        def on_validation_end(self, trainer, pl_module):
            if trainer.sanity_checking:
                return
            self.epochs = trainer.current_epoch + 1
            self.trial.report(float(trainer.callback_metrics[metric]), self.epochs)
            if self.trial.should_prune():
                self.pruned, trainer.should_stop = True, True

    study = optuna.create_study(direction="minimize" if lower else "maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=args.epochs,
                                                                      reduction_factor=3))
    spent, reached, best = 0, False, None
    for n in range(2 * args.trials):
        trial = study.ask()
        values = sp.suggest(trial)
        cfg = apply(base, sp.to_config(values)).replace(fold=0, name=f"h{seed}-{n}",
                                                        artifact_dir=str(root / f"holdout-{seed}"))
        cb = Report(trial)
        res = train(cfg, callbacks=[cb], quiet=True, progress_bar=False)
        spent += cb.epochs
        if cb.pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        study.tell(trial, float(res.metrics[metric]))
        if study.best_trial.number == trial.number:  # a new holdout best: its cv score (not counted)
            cv = cross_validate(cfg.replace(name=None), name=f"hcv{seed}-{n}", progress=False)
            best = (cv.score, chosen(cv.run_infos.assign(trial=0), problem["metric"], 0)[1])
            if cv.score <= target + 1e-12 if lower else cv.score >= target - 1e-12:
                reached = True
                break
    return spent, reached, best


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
                        name=f"{name}-{label}-{seed}", progress=False)

        rnd = run("random", "random", "none", args.trials)
        target = rnd.best_score
        r_epochs, _ = epochs_until(rnd.run_infos, -math.inf if lower else math.inf, args.epochs, lower)
        row = {"problem": name, "seed": seed, "target": target,
               "random": (r_epochs, True, chosen(rnd.run_infos, problem["metric"], rnd.best_trial))}
        arms = {"tunecv": {}, "two-axis": {"run_pruner": "successive_halving", "rung_min_epochs": args.min_epochs,
                                           "rung_reduction_factor": args.rf}}
        for label, keys in arms.items():
            with stop_at(target, lower):
                res = run(label, "tpe", "wilcoxon", 2 * args.trials, **keys)
            spent, reached = epochs_until(res.run_infos, target, args.epochs, lower)
            pick = chosen(res.run_infos, problem["metric"], res.best_trial) if res.best_trial is not None else None
            row[label] = (spent, reached, pick)
        if not args.no_holdout:
            row["optuna-holdout"] = optuna_holdout(problem, root, space, args, seed, target, lower)
        print(fmt(row, r_epochs), flush=True)
        out.append(row)
    return out


def fmt(row: dict, r_epochs: float) -> str:
    parts = [f"{row['problem']} seed {row['seed']}: target {row['target']:.4f}"]
    for arm in ("random", "tunecv", "two-axis", "optuna-holdout"):
        if arm in row:
            spent, reached, pick = row[arm]
            cv, test = pick if pick else (float("nan"), float("nan"))
            parts.append(f"{arm} {spent:.0f} ep ({spent / r_epochs:.2f}){'' if reached else ' NOT reached'} "
                         f"cv {cv:.4f} test {test:.4f}")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", choices=sorted(PROBLEMS), default=list(PROBLEMS))
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--rf", type=int, default=3)
    parser.add_argument("--min-epochs", type=int, default=1)
    parser.add_argument("--no-holdout", action="store_true")
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.problems:
            rows += run_problem(name, Path(tmp), args)
    print(f"machine: {machine()}; {time.perf_counter() - t0:.0f} s in all; epochs {args.epochs}, rungs "
          f"min {args.min_epochs} x {args.rf}^k")
    for name in args.problems:
        mine = [r for r in rows if r["problem"] == name]
        ratios = {arm: statistics.median(r[arm][0] / r["random"][0] for r in mine)
                  for arm in ("tunecv", "two-axis", "optuna-holdout") if arm in mine[0]}
        print(f"{name}: median epochs vs random " + ", ".join(f"{a} {v:.2f}" for a, v in ratios.items()))


if __name__ == "__main__":
    main()
