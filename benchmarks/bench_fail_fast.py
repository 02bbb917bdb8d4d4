"""Time to the error line for ten mistakes in tunecv's own keys and files, against ``tunecv --help``.

Each mistake (a missing or broken config file, an unknown or out-of-range key of ``cv`` / ``split`` /
``slurm`` / ``tune``, a bad search-space file) is reported before torch and Lightning are imported, so it
should cost about what ``tunecv --help`` costs. For scale, one mistake that needs the model class (an
unknown ``model.init_args`` key) is timed too: it imports torch and Lightning. Each command is a fresh
``python -m tunecv`` process; the median of ``--repeats`` runs is shown.

    python benchmarks/bench_fail_fast.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine  # noqa: E402
from tests.unit.test_fail_fast import TRAIN, mistakes  # noqa: E402  (the same ten mistakes as the test)


def timed(words: list[str], repeats: int) -> tuple[float, int, str]:
    times, proc = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "tunecv", *words], capture_output=True, text=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    assert proc is not None
    return statistics.median(times), proc.returncode, (proc.stderr or proc.stdout).strip().splitlines()[-1][:90]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    base, _, _ = timed(["--help"], args.repeats)
    print(f"{'tunecv --help':<58} {base:6.2f} s  1.00x")
    with tempfile.TemporaryDirectory() as tmp:
        ratios = []
        for words, _ in mistakes(Path(tmp)):
            t, rc, line = timed(words, args.repeats)
            ratios.append(t / base)
            shown = " ".join(w.replace(tmp, "TMP").replace(str(ROOT) + "/", "") for w in words)
            print(f"{shown[:58]:<58} {t:6.2f} s  {t / base:4.2f}x  exit {rc}: {line}")
        t, rc, line = timed(["train", "--config", TRAIN, "--model.init_args.hidden", "8"], args.repeats)
        print(f"{'(needs the model class) --model.init_args.hidden 8':<58} {t:6.2f} s  {t / base:4.2f}x  exit {rc}")
    print(f"ten mistakes: median {statistics.median(ratios):.2f}x, max {max(ratios):.2f}x of tunecv --help")


if __name__ == "__main__":
    main()
