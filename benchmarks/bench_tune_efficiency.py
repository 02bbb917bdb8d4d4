"""Sample efficiency: TPE + Wilcoxon fold pruning against random search with full cvs (DARTS's method)
and against TPE with full cvs (what a plain Optuna user gets).

For each problem and seed: random search runs N trials of full cross-validations; its best cv score is
the target. Then, with the same sampler seed and up to 2N trials each:

- tunecv: ``tune.sampler: tpe`` + ``tune.pruner: wilcoxon`` as tunecv builds them (the threshold of the
  Wilcoxon test follows the cv's size: ``search_space.wilcoxon_p_threshold``);
- plain Optuna: ``optuna.samplers.TPESampler(seed=seed)`` with Optuna's defaults (10 random startup trials,
  independent sampling) and no pruning: every cv is run in full.

We count the training epochs (and the training time) each spent, in trial order, until a finished cv first
reached the target; each TPE arm then stops (what it would do after is not counted). Prints per seed the epoch ratio of tunecv against random search (all of its N cvs)
and against plain Optuna TPE (epochs to the same target), and their medians per problem.
Goal: median <= 0.5 against random search on every problem, and < 1 against TPE without pruning.

With the same seed, a TPE sampler's random startup trials are exactly random search's first trials:
plain Optuna TPE with N <= 10 replays random search and reaches the target at random search's best trial.

    python benchmarks/bench_tune_efficiency.py --trials 8 --seeds 10
    python benchmarks/bench_tune_efficiency.py --trials 8 --seeds 10 --cv-seeds 3   # tunecv's default cv shape
    python benchmarks/bench_tune_efficiency.py --problems digits --seeds 3 --trials 6
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import yaml
from _common import machine

PROBLEMS = {
    "digits": {
        "model": "tunecv.examples.digits.DigitsClassifier",
        "data": {"class_path": "tunecv.examples.digits.DigitsDataModule",
                 "init_args": {"batch_size": 64, "limit": 700}},
        "split": {"fold_method": "stratified", "total_folds": 5, "stratify_column": "label"},
        "metric": "val/acc",
        "space": {
            "model.init_args.lr": {"distribution": "loguniform", "low": 1e-4, "high": 0.3},
            "model.init_args.hidden_dim": {"distribution": "intuniform", "low": 4, "high": 96},
            "model.init_args.dropout": {"distribution": "uniform", "low": 0.0, "high": 0.6},
        },
    },
    "penguins": {
        "model": "tunecv.examples.penguins.PenguinClassifier",
        "data": {"class_path": "tunecv.examples.penguins.PenguinsDataModule", "init_args": {"batch_size": 32}},
        "split": {"fold_method": "stratified", "total_folds": 5, "stratify_column": "species"},
        "metric": "val/loss:lower",  # accuracy saturates at 1.0 on penguins; the loss still ranks trials
        "space": {
            "model.init_args.lr": {"distribution": "loguniform", "low": 1e-4, "high": 0.3},
            "model.init_args.hidden_dim": {"distribution": "intuniform", "low": 2, "high": 64},
        },
    },
    "regression": {
        "model": "tunecv.examples.diabetes.DiabetesRegressor",
        "data": {"class_path": "tunecv.examples.diabetes.DiabetesDataModule", "init_args": {"batch_size": 32}},
        "split": {"fold_method": "kfold", "total_folds": 5},
        "metric": "val/loss:lower",
        "space": {
            "model.init_args.lr": {"distribution": "loguniform", "low": 1e-4, "high": 0.3},
            "model.init_args.hidden_dim": {"distribution": "intuniform", "low": 2, "high": 96},
            "model.init_args.dropout": {"distribution": "uniform", "low": 0.0, "high": 0.6},
            "model.init_args.weight_decay": {"distribution": "loguniform", "low": 1e-6, "high": 1e-1},
        },
    },
}


def config(problem: dict, root: Path, space: Path, epochs: int, sampler: str, pruner: str, n_trials: int,
           seed: int, cv_seeds: int = 1) -> dict:
    return {
        "artifact_dir": str(root),
        "model": {"class_path": problem["model"], "init_args": {}},
        "data": problem["data"],
        "split": problem["split"],
        "trainer": {"max_epochs": epochs, "enable_progress_bar": False, "enable_model_summary": False},
        "accelerator": "cpu", "devices": [0], "early_stopping": None,
        "cv": {"n_seeds": cv_seeds, "scoring_metric": [problem["metric"]]},
        "tune": {"search_space": str(space), "n_trials": n_trials, "sampler": sampler, "pruner": pruner,
                 "seed": seed},
    }


@contextlib.contextmanager
def plain_optuna_tpe():
    """``tune.sampler: tpe`` builds ``optuna.samplers.TPESampler(seed=seed)`` with Optuna's defaults, as a plain
    Optuna user would, instead of tunecv's settings."""
    import optuna

    import tunecv.search_space
    import tunecv.tune

    def make_sampler(name, seed=None, space=None, n_objectives=1):
        assert name == "tpe", name
        return optuna.samplers.TPESampler(seed=seed)

    with contextlib.ExitStack() as stack:
        for module in (tunecv.search_space, tunecv.tune):
            if hasattr(module, "make_sampler"):
                stack.enter_context(mock.patch.object(module, "make_sampler", make_sampler))
        yield


@contextlib.contextmanager
def stop_at(target: float, lower: bool):
    """The tune starts no new cv once a complete trial reached ``target``. Nothing after that trial is counted
    (:func:`cost_until`), so this saves the benchmark's time and changes none of its numbers."""
    import tunecv.tune

    driver_cls = tunecv.tune.TuneDriver
    tell, may_ask = driver_cls.tell, driver_cls._may_ask

    def tell_and_check(self, tr):
        state = tell(self, tr)
        score = tr.session.result().score
        if state == "complete" and (score <= target + 1e-12 if lower else score >= target - 1e-12):
            self._bench_reached = True
        return state

    def may_ask_until(self):
        return not getattr(self, "_bench_reached", False) and may_ask(self)

    with mock.patch.object(driver_cls, "tell", tell_and_check), \
            mock.patch.object(driver_cls, "_may_ask", may_ask_until):
        yield


def cost_until(df, target: float, epochs: int, lower: bool) -> tuple[float, float, bool]:
    """Epochs and training seconds spent, in trial order, until a finished cv first reached ``target``
    (all of them, and ``False``, when none did)."""
    spent_epochs = spent_time = 0.0
    for trial in sorted(df["trial"].unique()):
        rows = df[df["trial"] == trial]
        trained = rows[rows["status"].isin(["completed", "failed"])]  # not the runs a pruner never started
        spent_epochs += len(trained) * epochs
        spent_time += float(trained["duration"].sum())
        score = float(rows["score"].iloc[0])
        reached = score <= target + 1e-12 if lower else score >= target - 1e-12
        if rows["trial_state"].iloc[0] == "complete" and reached:
            return spent_epochs, spent_time, True
    return spent_epochs, spent_time, False


def run_problem(name: str, root: Path, args: argparse.Namespace) -> dict:
    from tunecv.tune import tune

    problem = PROBLEMS[name]
    lower = problem["metric"].endswith(":lower")
    space = root / f"{name}-space.yaml"
    space.write_text(yaml.safe_dump({"hyperparameters": problem["space"]}))
    vs_random, vs_tpe, time_vs_random = [], [], []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        def run(sampler: str, pruner: str, n: int, label: str, seed: int = seed):
            return tune(config(problem, root, space, args.epochs, sampler, pruner, n, seed, args.cv_seeds),
                        name=f"{name}-{label}-{seed}", progress=False)

        rnd = run("random", "none", args.trials, "random")
        target = rnd.best_score
        rdf = rnd.run_infos
        r_epochs, r_time, _ = cost_until(rdf, math.inf if not lower else -math.inf, args.epochs, lower)  # all
        with stop_at(target, lower):
            tpe_w = run("tpe", "wilcoxon", 2 * args.trials, "tpe-wilcoxon")
        w_epochs, w_time, w_reached = cost_until(tpe_w.run_infos, target, args.epochs, lower)
        with plain_optuna_tpe(), stop_at(target, lower):
            tpe_n = run("tpe", "none", 2 * args.trials, "tpe-full")
        sampler = tpe_n.study.sampler  # the arm must be what it claims: Optuna's TPESampler as it comes
        assert type(sampler).__name__ == "TPESampler" and not sampler._multivariate, sampler
        assert sampler._n_startup_trials == 10, sampler._n_startup_trials
        n_epochs, _, n_reached = cost_until(tpe_n.run_infos, target, args.epochs, lower)
        pruned = int((tpe_w.run_infos.drop_duplicates("trial")["trial_state"] == "pruned").sum())
        vs_random.append(w_epochs / r_epochs)
        vs_tpe.append(w_epochs / n_epochs)
        time_vs_random.append(w_time / r_time)
        print(f"{name} seed {seed}: target {target:.4f}; random {r_epochs:.0f} epochs {r_time:.1f} s; "
              f"tunecv tpe+wilcoxon {'reached' if w_reached else 'NOT reached'} after {w_epochs:.0f} epochs "
              f"{w_time:.1f} s ({pruned} trials pruned); optuna tpe full cvs {'reached' if n_reached else 'NOT reached'} "
              f"after {n_epochs:.0f} epochs -> ratio vs random {vs_random[-1]:.2f}, vs tpe {vs_tpe[-1]:.2f}",
              flush=True)
    return {"vs_random": vs_random, "vs_tpe": vs_tpe, "time_vs_random": time_vs_random}


def main() -> None:
    from tunecv.search_space import wilcoxon_p_threshold

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", choices=sorted(PROBLEMS), default=list(PROBLEMS))
    parser.add_argument("--trials", type=int, default=8, help="random search's trials (TPE gets twice as many)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cv-seeds", type=int, default=1,
                        help="seeds per fold (cv.n_seeds): each cv has 5 x this many runs; tunecv's default is 3")
    args = parser.parse_args()

    t0 = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.problems:
            results[name] = run_problem(name, Path(tmp), args)
    print(f"machine: {machine()}; {time.perf_counter() - t0:.0f} s in all")
    print("tunecv settings: " + "; ".join(
        f"{name}: wilcoxon p < "
        f"{wilcoxon_p_threshold(PROBLEMS[name]['split']['total_folds'] * args.cv_seeds):.4f}" for name in results))
    print(f"{'problem':<12} {'seeds':>5} {'vs random (goal <= 0.5)':>24} {'[q1, q3]':>12} {'min-max':>11} "
          f"{'vs tpe full cvs (goal < 1)':>27} {'[q1, q3]':>12} {'wall vs random':>15}")
    for name, r in results.items():
        print(f"{name:<12} {len(r['vs_random']):>5} {statistics.median(r['vs_random']):>24.2f} "
              f"{quartiles(r['vs_random']):>12} {min(r['vs_random']):.2f}-{max(r['vs_random']):.2f} "
              f"{statistics.median(r['vs_tpe']):>27.2f} {quartiles(r['vs_tpe']):>12} "
              f"{statistics.median(r['time_vs_random']):>15.2f}")


def quartiles(values: list[float]) -> str:
    if len(values) < 2:
        return "-"
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"[{q1:.2f}, {q3:.2f}]"


if __name__ == "__main__":
    main()
