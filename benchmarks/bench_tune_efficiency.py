"""Sample efficiency: TPE + Wilcoxon pruning against random search with full cvs (the predecessor's way).

For each seed: random search runs N trials of full cross-validations; its best cv score is the target.
TPE with Wilcoxon fold-level pruning then runs (up to 2N trials) and we count the training epochs
(and wall time) it spent until a trial first reached that target. Prints the ratio of epochs and of
wall time per seed and their median (goal <= 0.5).

    python benchmarks/bench_tune_efficiency.py --trials 12 --seeds 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import yaml
from _common import machine

SPACE = {"hyperparameters": {
    "model.init_args.lr": {"distribution": "loguniform", "low": 1e-4, "high": 0.3},
    "model.init_args.hidden_dim": {"distribution": "intuniform", "low": 4, "high": 96},
    "model.init_args.dropout": {"distribution": "uniform", "low": 0.0, "high": 0.6},
}}


def config(root: Path, space: Path, epochs: int, sampler: str, pruner: str, n_trials: int, seed: int) -> dict:
    return {
        "artifact_dir": str(root),
        "model": {"class_path": "tunecv.examples.digits.DigitsClassifier", "init_args": {}},
        "data": {"class_path": "tunecv.examples.digits.DigitsDataModule",
                 "init_args": {"batch_size": 64, "limit": 700}},
        "split": {"fold_method": "stratified", "total_folds": 5, "stratify_column": "label"},
        "trainer": {"max_epochs": epochs, "enable_progress_bar": False, "enable_model_summary": False},
        "accelerator": "cpu", "devices": [0], "early_stopping": None,
        "cv": {"n_seeds": 1, "scoring_metric": ["val/acc"]},
        "tune": {"search_space": str(space), "n_trials": n_trials, "sampler": sampler, "pruner": pruner,
                 "seed": seed},
    }


def cost_until(df, target: float, epochs: int) -> tuple[float, float, bool]:
    """Epochs and seconds spent, in trial order, until a finished cv first reached ``target``."""
    spent_epochs = spent_time = 0.0
    for trial in sorted(df["trial"].unique()):
        rows = df[df["trial"] == trial]
        spent_epochs += len(rows) * epochs
        spent_time += float(rows["duration"].sum())
        state = rows["trial_state"].iloc[0]
        if state == "complete" and rows["score"].iloc[0] >= target - 1e-12:
            return spent_epochs, spent_time, True
    return spent_epochs, spent_time, False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    from tunecv.tune import tune

    epoch_ratios, time_ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        space = Path(tmp) / "space.yaml"
        space.write_text(yaml.safe_dump(SPACE))
        for seed in range(args.seeds):
            rnd = tune(config(Path(tmp), space, args.epochs, "random", "none", args.trials, seed),
                       name=f"random-{seed}", progress=False)
            target = rnd.best_score
            rdf = rnd.run_infos
            r_epochs, r_time = len(rdf) * args.epochs, float(rdf["duration"].sum())
            tpe = tune(config(Path(tmp), space, args.epochs, "tpe", "wilcoxon", 2 * args.trials, seed),
                       name=f"tpe-{seed}", progress=False)
            t_epochs, t_time, reached = cost_until(tpe.run_infos, target, args.epochs)
            pruned = int((tpe.run_infos.drop_duplicates("trial")["trial_state"] == "pruned").sum())
            epoch_ratios.append(t_epochs / r_epochs)
            time_ratios.append(t_time / r_time)
            print(f"seed {seed}: target {target:.4f}; random {r_epochs:.0f} epochs {r_time:.1f} s; "
                  f"tpe+wilcoxon {'reached' if reached else 'NOT reached'} after {t_epochs:.0f} epochs "
                  f"{t_time:.1f} s ({pruned} pruned) -> epoch ratio {t_epochs / r_epochs:.2f}")
    print(f"machine: {machine()}")
    print(f"median epoch ratio tpe+wilcoxon / random: {statistics.median(epoch_ratios):.2f} (goal <= 0.5)")
    print(f"median wall-time ratio: {statistics.median(time_ratios):.2f}")


if __name__ == "__main__":
    main()
