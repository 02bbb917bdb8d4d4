"""Runs the steps of one corpus project in one process (torch and Lightning import once per project).

``python _runner.py SPEC.json`` where SPEC holds ``steps``: each ``{"name", "kind", "cwd", "argv", "env",
"probe_out"}``. ``kind`` is ``file`` (``python FILE ARGS``: the project's own entry point run as
``__main__`` with its folder first on sys.path), ``module`` (``python -m MODULE ARGS``, the cwd first on
sys.path) or ``tunecv`` (``tunecv.cli.main(ARGS)``). Between steps, the modules imported from the project
folder are purged and sys.path, the cwd and the environment restored, so each step starts as a fresh
command would. Writes ``{name: {"rc", "error", "seconds", "snapshot"}}`` to SPEC's ``results`` path.
``python _runner.py --serve`` runs one SPEC after another, their paths read from stdin (:func:`serve`): the same
purge between steps holds between projects.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import time
import traceback
from pathlib import Path


def _purge(root: Path) -> None:
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None) or ""
        if file and Path(file).resolve().is_relative_to(root):
            del sys.modules[name]


def _run(step: dict) -> int:
    argv = step["argv"]
    if step["kind"] == "tunecv":
        from tunecv.cli import main

        return main(argv)
    if step["kind"] == "file":
        sys.argv = [step["entry"], *argv]
        sys.path.insert(0, str(Path(step["entry"]).resolve().parent))
        runpy.run_path(step["entry"], run_name="__main__")
    else:
        sys.argv = [step["entry"], *argv]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(step["entry"], run_name="__main__", alter_sys=True)
    return 0


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    root = Path(spec["root"]).resolve()
    results: dict = {}
    saved_path, saved_argv, saved_env = list(sys.path), list(sys.argv), dict(os.environ)
    for step in spec["steps"]:
        os.chdir(step["cwd"])
        os.environ.update(step.get("env", {}))
        start = time.monotonic()
        error = None
        try:
            rc = _run(step)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if rc:
                error = f"SystemExit({exc.code!r})"
        except BaseException:
            rc, error = 1, traceback.format_exc()
        probe = step.get("probe_out")
        snapshot = json.loads(Path(probe).read_text()) if probe and Path(probe).is_file() else None
        results[step["name"]] = {"rc": rc, "error": error, "seconds": round(time.monotonic() - start, 2),
                                 "snapshot": snapshot}
        Path(spec["results"]).write_text(json.dumps(results, indent=1))
        sys.path[:], sys.argv[:] = saved_path, saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        _purge(root)
        if "tunecv.user_cli" in sys.modules:  # its classes are purged: the next step resolves the CLI again
            sys.modules["tunecv.user_cli"].clear_caches()
        try:  # a W&B run left open by a step must not swallow the next one's logging
            import wandb

            if wandb.run is not None:
                wandb.finish()
        except Exception:
            pass


def serve() -> None:
    """``python _runner.py --serve``: one SPEC path per line of stdin, each run in turn in this process (torch,
    Lightning and tunecv import once per runner, not once per project); SPEC's ``done`` file is written after
    each, results or not."""
    for line in sys.stdin:
        spec_path = line.strip()
        if not spec_path:
            continue
        print(f"=== {spec_path}", flush=True)
        try:
            main(spec_path)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            Path(json.loads(Path(spec_path).read_text())["done"]).touch()


if __name__ == "__main__":
    serve() if sys.argv[1] == "--serve" else main(sys.argv[1])
