"""Orchestration overhead: a serial ``tunecv cv`` of N runs against a hand-written loop of Trainer.fit.

Both use the same model, data, splits, epochs, checkpointing (best and last), validation of the best
checkpoint and CSV logging every 10 steps, in this one process. The
hand-written loop is what a user would write without tunecv. Prints the wall-time ratio (goal <= 1.05
for runs of >= 10 s) and the per-run overhead in seconds.

    python benchmarks/bench_cv_overhead.py --epochs 12 --folds 3

Before / after a change: ``--base-src OTHER_CHECKOUT/src`` times the tunecv cv of this tree's ``src`` and of
``OTHER_CHECKOUT/src`` instead, each in its own process (``PYTHONPATH``, imports outside the timing, one
torch thread per run), alternating which goes first, and prints each pair's after / before ratio and their
median. The config (and the digits example) must mean the same in both trees.

    python benchmarks/bench_cv_overhead.py --epochs 3 --folds 2 --repeats 4 --base-src ../wt-before/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import digits_config, machine, run_in_tree


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


SRC = {"after": str(Path(__file__).resolve().parent.parent / "src")}  # "before": --base-src


def in_child(tree: str, cfg: dict, root: Path) -> dict:
    """``with_tunecv`` in a new process whose tunecv is ``SRC[tree]`` (imports outside the timing)."""
    root.mkdir(parents=True)
    (root / "cfg.json").write_text(json.dumps(cfg))
    return run_in_tree(__file__, SRC[tree], ["--child", str(root)], tree)


def child(root: Path) -> None:
    import lightning  # noqa: F401  (outside the timing, as in this process's own arms)
    import torch

    import tunecv
    import tunecv.cv  # (outside the timing)

    torch.set_num_threads(1)
    cfg = json.loads((root / "cfg.json").read_text())
    cpu = time.process_time()
    seconds = with_tunecv(cfg, root / "artifacts")
    cpu = time.process_time() - cpu  # this process's CPU time: far less sensitive to a loaded machine than wall
    print(json.dumps({"seconds": seconds, "cpu": cpu, "tunecv": str(Path(tunecv.__file__).resolve())}))


def before_after(args: argparse.Namespace) -> None:
    SRC["before"] = str(Path(args.base_src).resolve())
    print(f"machine: {machine()}; load at start: {os.getloadavg()[0]:.2f}")
    print(f"tunecv cv serial, {args.folds} runs of {args.epochs} epochs, each arm in its own process, 1 torch "
          f"thread; after = {SRC['after']}, before = {SRC['before']}")
    ratios, cpu_ratios, times = [], [], {"after": [], "before": []}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = digits_config(Path(tmp) / "unused", args.epochs, n_folds=args.folds)
        for r in range(args.repeats):
            order = ["after", "before"] if r % 2 == 0 else ["before", "after"]
            got = {tree: in_child(tree, cfg, Path(tmp) / f"{tree}{r}") for tree in order}
            for tree in order:
                times[tree].append(got[tree]["seconds"])
            a, b = got["after"], got["before"]
            ratios.append(a["seconds"] / b["seconds"])
            cpu_ratios.append(a["cpu"] / b["cpu"])
            print(f"pair {r + 1} ({' then '.join(order)}): wall after {a['seconds']:.2f} s, before {b['seconds']:.2f} s "
                  f"(ratio {ratios[-1]:.3f}); CPU after {a['cpu']:.2f} s, before {b['cpu']:.2f} s (ratio "
                  f"{cpu_ratios[-1]:.3f}); load {os.getloadavg()[0]:.2f}", flush=True)
    print(f"median ratio after / before over {len(ratios)} pairs: wall {statistics.median(ratios):.3f} (min "
          f"{min(ratios):.3f}, max {max(ratios):.3f}), CPU {statistics.median(cpu_ratios):.3f} (min "
          f"{min(cpu_ratios):.3f}, max {max(cpu_ratios):.3f}); best wall after {min(times['after']):.2f} s, before "
          f"{min(times['before']):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--base-src", help="another checkout's src: time its tunecv cv against this tree's")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.base_src:
        before_after(args)
        return
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
