"""Orchestration overhead: a serial ``tunecv cv`` of N runs against a hand-written loop of Trainer.fit.

Both use the same model, data, splits, epochs, checkpointing (best and last), validation of the best
checkpoint and CSV logging every 10 steps, in this one process. The
hand-written loop is what a user would write without tunecv. Prints the wall-time ratio (goal <= 1.05
for runs of >= 10 s) and the per-run overhead in seconds.

    python benchmarks/bench_cv_overhead.py --epochs 12 --folds 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import digits_config, machine


def hand_written(cfg: dict, folds: list[int], seed: int, root: Path) -> float:
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from tunecv.config import SplitConfig
    from tunecv.examples.digits import DigitsClassifier, DigitsDataModule

    t0 = time.perf_counter()
    for fold in folds:
        L.seed_everything(seed, verbose=False)
        model = DigitsClassifier(**cfg["model"]["init_args"])
        data = DigitsDataModule(**cfg["data"]["init_args"])
        data.configure_split(SplitConfig(**cfg["split"]), fold, seed)
        out = root / f"fold{fold}"
        trainer = L.Trainer(max_epochs=cfg["trainer"]["max_epochs"], accelerator="cpu", devices=1,
                            log_every_n_steps=10,  # tunecv's default (logging.log_every_n_steps)
                            logger=CSVLogger(out), enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[ModelCheckpoint(dirpath=out / "ckpt", monitor="val/loss", save_last=True)])
        trainer.fit(model, datamodule=data)
        trainer.validate(model, datamodule=data, ckpt_path="best", verbose=False)
    return time.perf_counter() - t0


def with_tunecv(cfg: dict, root: Path) -> float:
    from tunecv.cv import cross_validate

    t0 = time.perf_counter()
    cross_validate({**cfg, "artifact_dir": str(root)}, name="bench", progress=False)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import lightning  # noqa: F401  (import once, outside the timings)

    import tunecv.cv  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        cfg = digits_config(Path(tmp), args.epochs, n_folds=args.folds)
        hand, ours = [], []
        for r in range(args.repeats):  # interleaved, so a change in machine load hits both
            hand.append(hand_written(cfg, list(range(args.folds)), 42, Path(tmp) / f"hand{r}"))
            ours.append(with_tunecv(cfg, Path(tmp) / f"tunecv{r}"))
    h, o = min(hand), min(ours)
    print(f"machine: {machine()}")
    print(f"{args.folds} runs of {args.epochs} epochs; best of {args.repeats}")
    print(f"hand-written loop: {h:.2f} s ({h / args.folds:.2f} s per run)")
    print(f"tunecv cv serial:  {o:.2f} s ({o / args.folds:.2f} s per run)")
    print(f"ratio tunecv / hand-written: {o / h:.3f} (goal <= 1.05 for runs >= 10 s)")
    print(f"overhead per run: {(o - h) / args.folds:+.2f} s")


if __name__ == "__main__":
    main()
