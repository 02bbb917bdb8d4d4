"""Regenerate the command outputs the docs show: ``python assets/doc_outputs.py`` (about 3 minutes on 2 cores).

Every ``text`` block of ``docs/*.md`` that shows what a command prints is either included from a file
of ``assets/outputs/`` (``--8<-- "assets/outputs/NAME.txt"``), written here by running that very
command, or marked ``<!-- illustrative -->`` on the line before it (an error of a crash, a full disk,
a lost database: outputs that need a fault to appear). ``tests/unit/test_doc_outputs.py`` holds the
docs to that, and ``tests/integration/test_doc_outputs.py`` runs the ``ci`` set again and compares.

The commands run in a fresh folder holding a link to ``configs/`` (so paths print as ``artifacts/...``,
as from the repository root), with ``COLUMNS=250`` (a wide terminal: the leaderboard is not squeezed)
and stdout and stderr together, as a terminal shows them. The example seeds everything, so the trials,
their pruning and their metrics are the same on every run; what varies (run ids, durations, elapsed
times) is written as printed and masked by :func:`normalise` when outputs are compared.

Two sets:

- ``quickstart``: the Quickstart's cv (5 folds x 2 seeds) and tune (8 trials x 5 folds) of the digits
  example, and ``tunecv report`` of that tune. About 2 minutes: too slow for CI, which checks the shape
  of these outputs against the ``ci`` set instead.
- ``ci``: the reduced tune of docs/tracking.md (the same config, ``--tune.n_trials 5 --cv.n_folds 3``),
  ``tunecv report`` of it and of one of its cvs, and a config error. About 50 s.

``--only SET`` regenerates one set; ``--check`` compares instead of writing (exit 1 on a difference).
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "assets" / "outputs"
REGENERATE = "python assets/doc_outputs.py"
COLUMNS = 250


@dataclass(frozen=True)
class Command:
    """One documented command; its output goes to ``assets/outputs/{name}.txt``."""

    name: str
    args: tuple[str, ...]          # the words after ``tunecv``
    show_prompt: bool = False      # the file starts with ``$ tunecv ...`` (the page shows the command with it)
    expect_rc: int = 0
    shown: bool = True             # False: checked only (the tune of docs/tracking.md, against the Quickstart's)

    @property
    def line(self) -> str:
        return "tunecv " + " ".join(self.args)


TUNE = ("tune", "--config", "configs/digits/tune.yaml", "--name", "digits-tune")
SETS: dict[str, tuple[Command, ...]] = {
    "quickstart": (
        Command("quickstart_cv", ("cv", "--config", "configs/digits/cv.yaml", "--name", "digits-cv")),
        Command("quickstart_tune", TUNE),
        Command("quickstart_report", ("report", "artifacts/digits-tune")),
    ),
    "ci": (
        Command("tracking_tune", (*TUNE, "--tune.n_trials", "5", "--cv.n_folds", "3"), shown=False),
        Command("tracking_report", ("report", "artifacts/digits-tune")),
        Command("tracking_report_cv", ("report", "artifacts/digits-tune/digits-tune-cv1", "--no-plots")),
        Command("training_config_error", ("train", "--config", "configs/digits/train.yaml",
                                          "--split.fold_method", "regoin"), show_prompt=True, expect_rc=2),
    ),
}
# Parts of an output shown on their own: {file: (source, first line's start, last line's start or None)}
EXCERPTS = {
    "quickstart_tune_ending": ("quickstart_tune", "tune digits-tune: best trial", None),
    "quickstart_cv_last_line": ("quickstart_cv", "cv digits-cv: score", None),
}


def run_command(cmd: Command, workdir: Path) -> str:
    """What ``cmd`` prints (stdout and stderr together) when run in ``workdir``."""
    env = {**os.environ, "COLUMNS": str(COLUMNS), "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline",
           "WANDB_SILENT": "true", "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    for var in ("TUNECV_STORAGE", "NO_COLOR", "FORCE_COLOR", "TERM"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-m", "tunecv", *cmd.args], cwd=workdir, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
    if proc.returncode != cmd.expect_rc:
        raise RuntimeError(f"`{cmd.line}` exited with {proc.returncode}, not {cmd.expect_rc}:\n{proc.stdout}")
    text = "\n".join(line.rstrip() for line in proc.stdout.replace(str(workdir) + os.sep, "").splitlines())
    return (f"$ {cmd.line}\n" if cmd.show_prompt else "") + text.strip("\n") + "\n"


def run_set(name: str, workdir: Path) -> dict[str, str]:
    """Run the commands of one set, in order, in ``workdir`` (made ready here); ``{file name: output}``."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "configs").exists():
        (workdir / "configs").symlink_to(REPO / "configs", target_is_directory=True)
    outputs = {cmd.name: run_command(cmd, workdir) for cmd in SETS[name]}
    for excerpt, (source, start, end) in EXCERPTS.items():
        if source in outputs:
            outputs[excerpt] = excerpt_of(outputs[source], start, end)
    return outputs


def excerpt_of(text: str, start: str, end: str | None) -> str:
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    last = next((i for i, line in enumerate(lines) if end and i > first and line.startswith(end)), len(lines) - 1)
    return "\n".join(lines[first:last + 1]) + "\n"


# -- comparison ---------------------------------------------------------------------------------------------

_VARYING = [
    (re.compile(r"(-run-f\d+s\d+|-retrain)-[a-z0-9]{8}\b"), r"\1-<id>"),          # run ids
    (re.compile(r"\b\d+:\d\d:\d\d\b"), "<h:mm:ss>"),                                 # elapsed, eta
    (re.compile(r"\b(in|elapsed|eta) \d+(\.\d+)?s\b"), r"\1 <t>s"),                  # cv progress lines
    (re.compile(r"\b\d+(\.\d+)? s\b"), "<t> s"),                                     # a run's duration
]
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
_RULE = re.compile(r"([━─═]){2,}")


def normalise(text: str) -> list[str]:
    """The lines of an output with what varies from run to run masked, and layout made comparable:
    spaces collapsed and table rules shortened (a wider number widens its column)."""
    out = []
    for line in text.splitlines():
        for pattern, repl in _VARYING:
            line = pattern.sub(repl, line)
        line = _RULE.sub(r"\1", line)
        line = " ".join(line.split())
        if line:
            out.append(line)
    return out


def differences(committed: str, fresh: str, rel: float = 0.02, abs_: float = 0.002) -> list[str]:
    """Why two outputs differ beyond what varies; [] when they match. Numbers match within ``rel``/``abs_``
    (the example is seeded; the tolerance only absorbs float noise of another CPU)."""
    a, b = normalise(committed), normalise(fresh)
    ta, tb = [_NUMBER.sub("#", line) for line in a], [_NUMBER.sub("#", line) for line in b]
    if ta != tb:
        return [line for line in difflib.unified_diff(a, b, "committed", "fresh", lineterm="", n=1)]
    diffs = []
    for la, lb in zip(a, b):
        for x, y in zip(_NUMBER.findall(la), _NUMBER.findall(lb)):
            if not math.isclose(float(x), float(y), rel_tol=rel, abs_tol=abs_):
                diffs.append(f"{x} -> {y} in: {lb}")
    return diffs


def shape(text: str) -> list[str]:
    """Each line's kind: its words without numbers, names or values, for outputs of different runs."""
    kinds = []
    for line in normalise(text):
        line = _NUMBER.sub("#", line)
        line = re.sub(r"digits-tune-cv#", "<cv>", line)
        kinds.append(" ".join(line.split()[:3]))
    return kinds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SETS), action="append", help="one set (repeatable)")
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = parser.parse_args(argv)
    failed = False
    for set_name in args.only or list(SETS):
        with tempfile.TemporaryDirectory(prefix=f"tunecv-docs-{set_name}-") as tmp:
            print(f"{set_name}: running {len(SETS[set_name])} commands in {tmp}", file=sys.stderr)
            outputs = run_set(set_name, Path(tmp))
        for name, text in outputs.items():
            path = OUT / f"{name}.txt"
            if args.check:
                diff = differences(path.read_text(), text) if path.exists() else ["missing"]
                if diff:
                    failed = True
                    print(f"{path.relative_to(REPO)} differs:\n" + "\n".join(diff), file=sys.stderr)
            else:
                OUT.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                print(f"wrote {path.relative_to(REPO)}", file=sys.stderr)
    if failed:
        print(f"regenerate with: {REGENERATE}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
