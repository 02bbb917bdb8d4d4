"""Write ``configs/*.yaml``: each case's config as ``LightningCLI ... fit --print_config`` prints it.

Run from the repository root: ``python -m tests.compat.generate``. The files are committed; the tests
check that they are still what LightningCLI prints.
"""

from __future__ import annotations

import contextlib
import io
import sys

from tests.compat.cases import CASES, COMMON, CONFIGS, Case


def print_config(case: Case) -> str:
    """What ``LightningCLI(...)`` prints for ``fit <case args> --print_config``."""
    from lightning.pytorch.cli import LightningCLI

    out = io.StringIO()
    argv, sys.argv = sys.argv, ["lightning"]  # LightningCLI(args=...) warns about the caller's own argv
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            LightningCLI(args=["fit", *COMMON, *case.args, "--print_config"])
    finally:
        sys.argv = argv
    return out.getvalue()


def main() -> int:
    CONFIGS.mkdir(exist_ok=True)
    for case in CASES:
        text = print_config(case)
        if "model:" not in text:
            print(f"{case.name}: LightningCLI printed no config", file=sys.stderr)
            return 1
        case.path.write_text(text)
        print(f"wrote {case.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
