"""Startup and parsing cost of the config layer.

Fresh interpreters, best of ``--repeats``:

- ``tunecv --help`` and ``tunecv train --help`` (must stay under 0.2 s: no lightning import) against
  ``python -c pass``;
- ``tunecv train --config X --print_config`` (parse with LightningCLI's parser, validate, print) against
  ``LightningCLI ... fit --config X --print_config`` on the same file (LightningCLI's own parse and print).

In one process: parsing the same config again (the parser is built once and cached), as ``Config.replace``
and the search space do for every trial, against LightningCLI's parser ``parse_args`` of the same words.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the corpus models live in tests/compat
CONFIG = REPO / "tests" / "compat" / "configs" / "06_val_loss_plateau.yaml"
# an absolute path: jsonargparse resolves class paths from the config file's folder, where '' would point
ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
LCLI = ("import sys; path = sys.argv[1]; sys.argv = sys.argv[:1]; from lightning.pytorch.cli import LightningCLI; "
        "LightningCLI(args=['fit', '--config', path, '--print_config'])")


def best_of(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, env=ENV)
        times.append(time.perf_counter() - t0)
    return min(times)


def in_process(repeats: int) -> tuple[float, float]:
    from lightning.pytorch.cli import LightningCLI

    from tunecv.config import build_parser, parse_command

    words = ["--config", str(CONFIG), "--model.hidden", "16"]
    parse_command(words)  # build and cache the parser
    t0 = time.perf_counter()
    for _ in range(repeats):
        parse_command(words)
    ours = (time.perf_counter() - t0) / repeats
    cli = LightningCLI(args=["fit", "--config", str(CONFIG)], run=True, trainer_defaults={"max_epochs": 0},
                       save_config_callback=None)
    parser = cli._subcommand_parsers["fit"]
    t0 = time.perf_counter()
    for _ in range(repeats):
        parser.parse_args(words)
    base = (time.perf_counter() - t0) / repeats
    assert build_parser.cache_info().currsize >= 1
    return ours, base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    py = sys.executable
    bare = best_of([py, "-c", "pass"], args.repeats)
    help_top = best_of([py, "-m", "tunecv", "--help"], args.repeats)
    help_train = best_of([py, "-m", "tunecv", "train", "--help"], args.repeats)
    ours = best_of([py, "-m", "tunecv", "train", "--config", str(CONFIG), "--print_config"], args.repeats)
    base = best_of([py, "-c", LCLI, str(CONFIG)], args.repeats)
    print(f"python -c pass                      {bare:7.3f} s")
    print(f"tunecv --help                       {help_top:7.3f} s  (+{help_top - bare:.3f} s over bare python)")
    print(f"tunecv train --help                 {help_train:7.3f} s  (+{help_train - bare:.3f} s)")
    print(f"LightningCLI fit --print_config     {base:7.3f} s")
    print(f"tunecv train --print_config         {ours:7.3f} s  ratio {ours / base:.3f}")
    parse_ours, parse_base = in_process(20)
    print(f"parse again, LightningCLI parser    {parse_base * 1000:7.1f} ms")
    print(f"parse again, tunecv parse_command   {parse_ours * 1000:7.1f} ms  ratio {parse_ours / parse_base:.3f}")


if __name__ == "__main__":
    main()
