"""The ``tunecv`` command line: parses, then calls the Python API.

``tunecv --help`` (and ``tunecv train --help``) import neither torch, lightning, optuna nor wandb.
A user error is printed as one line and exits with code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, Optional

from tunecv import _chatter, naming
from tunecv.errors import ConfigError, Interrupted, RunFailedError, TunecvError

__all__ = ["main"]

COMMANDS = {
    "train": "one training run",
    "cv": "a cross-validation: folds x seeds",
    "tune": "a hyperparameter sweep (Optuna) over cross-validations",
    "nested": "nested cross-validation: outer folds, a tune on each, its winner tested on the outer fold",
    "report": "tables and plots of what a run, cv or tune left",
}

USAGE = """usage: tunecv [--version] {train,cv,tune,nested,report} ...

tunecv: tune -> cross-validate -> train any PyTorch Lightning model.

commands:
  train    one training run
  cv       a cross-validation: folds x seeds
  tune     a hyperparameter sweep (Optuna) over cross-validations
  nested   nested cross-validation: a tune on each outer fold, tested there
  report   tables and plots of what a run, cv or tune left

common options (train, cv, tune, nested):
  --config FILE         a YAML config (repeatable, later wins)
  --KEY VALUE           any config key, dotted: --model.init_args.lr 0.01 --split.total_folds 3
  --print_config        print the resolved config and exit
  --resume              finish what an earlier call with the same --name left
  --reset               delete that name's artifacts and start over
  --dry_run             (cv, tune, nested) print the plan and create nothing
  --quiet               no progress bars
  --verbose             let torch, Lightning and Optuna print their own messages too
  --debug               show tracebacks (the exit code stays the same)

Run `tunecv COMMAND --help` for every config key.
"""

# the command flags (tunecv.config.FLAGS, spelled as on the command line; kept here so --help stays light)
FLAGS = {"--print_config", "--resume", "--reset", "--dry_run", "--debug", "--help", "-h", "--quiet", "--verbose"}



def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tunecv")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def _command_help(command: str) -> str:
    from tunecv.config import build_parser  # lazy: the config schema, only for a command's --help

    # the light parser: the same keys without importing lightning (--help stays fast)
    parser = build_parser(prog=f"tunecv {command}", description=COMMANDS[command], light=True)
    text = parser.format_help()
    extra = ("\ncommand options:\n  --config FILE         a YAML config (repeatable, later wins)\n"
             "  --print_config        print the resolved config and exit\n"
             "  --resume              finish what an earlier call with the same name left\n"
             "  --reset               delete that name's artifacts and start over\n"
             "  --verbose             let torch, Lightning and Optuna print their own messages too\n"
             "  --debug               show tracebacks (the exit code stays the same)\n")
    if command in ("cv", "tune", "nested"):
        extra += "  --dry_run             print the plan and create nothing\n"
    if command in ("tune", "nested"):
        extra += "  --tune.search_space FILE   the search-space file (YAML or TOML)\n"
    return text + extra


class _UsageError(Exception):
    pass


def _error(message: str, debug: bool, exc: Optional[BaseException] = None) -> int:
    if debug and exc is not None:  # the traceback, then the same line and exit code as without --debug
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    line = " ".join(str(message).split("\n")[0].split())
    print(f"tunecv: error: {line}", file=sys.stderr)
    return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``tunecv`` and ``python -m tunecv``; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    code = _main(args)
    if argv is None:
        sys.exit(code)
    return code


def _main(args: list[str]) -> int:
    debug = "--debug" in args
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0 if args else 2
    if args[0] == "--version":
        print(f"tunecv {_version()}")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        return _error(f"unknown command {command!r}; valid commands: {', '.join(COMMANDS)}", debug)
    if "-h" in rest or "--help" in rest:
        if command == "report":
            print("usage: tunecv report PATH [--format table|json] [--no-plots]\n\n"
                  "Tables and plots of a run, cv, tune or nested folder (also while a tune is still running).")
        else:
            print(_command_help(command), end="")
        return 0

    try:
        if command == "report":
            return _report(rest)
        return _run(command, rest)
    except TunecvError as exc:
        code = _error(str(exc), debug, exc)
        return 1 if isinstance(exc, RunFailedError) else code
    except (KeyboardInterrupt, SystemExit) as exc:
        import signal

        if isinstance(exc, Interrupted):
            signum = exc.signum
        elif _RECEIVED:  # Lightning turns a KeyboardInterrupt into sys.exit(1)
            signum = _RECEIVED[0]
        elif isinstance(exc, KeyboardInterrupt):
            signum = signal.SIGINT
        elif _is_lightning_sigterm(exc) or exc.code == 143:
            signum = signal.SIGTERM
        else:
            raise
        print(f"tunecv: {_interrupted_line(command, rest, signum)}", file=sys.stderr)
        return 128 + int(signum)
    finally:
        _restore_signals()


# -- SIGINT / SIGTERM: stop, say how to finish, exit 130 / 143 ---------------------------------------------

def _is_lightning_sigterm(exc: BaseException) -> bool:
    """Whether ``exc`` is Lightning's ``SIGTERMException`` (its loops raise it on SIGTERM).

    Only a process that loaded Lightning can have raised it: without Lightning loaded the answer is no,
    and nothing is imported (an exit of ``tunecv --help`` stays fast).
    """
    if "lightning.pytorch" not in sys.modules:
        return False
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    return isinstance(exc, SIGTERMException)


_RECEIVED: list[int] = []
_PREVIOUS: dict[int, Any] = {}


def _on_signal(signum: int, frame: Any) -> None:
    first = not _RECEIVED
    _RECEIVED.append(signum)
    if first:  # a second Ctrl-C while the workers are being stopped does not cut the clean-up short
        raise Interrupted(signum)


def _install_signals() -> None:
    """SIGINT and SIGTERM raise :class:`~tunecv.errors.Interrupted` in the main thread."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    _RECEIVED.clear()
    naming.current.update(kind=None, name=None)
    for signum in (signal.SIGINT, signal.SIGTERM):
        _PREVIOUS[signum] = signal.getsignal(signum)
        signal.signal(signum, _on_signal)


def _restore_signals() -> None:
    import signal

    for signum, handler in list(_PREVIOUS.items()):
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        del _PREVIOUS[signum]


def resume_command(command: str, rest: Sequence[str], name: Optional[str]) -> str:
    """The command line that finishes what ``tunecv COMMAND REST`` started (``--resume``, named)."""
    import shlex

    words = [w for w in rest if w not in ("--reset", "--resume", "--dry_run")]
    named = any(w == "--name" or w.startswith("--name=") for w in words)
    if name and not named:
        words += ["--name", name]
    return shlex.join(["tunecv", command, *words, "--resume"])


def _interrupted_line(command: str, rest: Sequence[str], signum: int) -> str:
    import signal

    what = f"{'interrupted' if signum == signal.SIGINT else 'terminated'} ({signal.Signals(signum).name})"
    name = naming.current["name"]
    if name is None:
        return f"{what} before anything was written; nothing to finish"
    return f"{what}; finished runs are kept; finish with: {resume_command(command, rest, name)}"


def _run(command: str, rest: list[str]) -> int:
    # lazy: the config schema, only once a command runs (--help stays light)
    from tunecv.config import dump_yaml, parse_command, precheck

    light = precheck(rest, command)  # tunecv's own keys and files: before torch and lightning are imported
    if command in ("tune", "nested") and light is not None and light.tune.search_space:
        from tunecv.search_space import load_search_space  # lazy: the search space, only for tune and nested

        load_search_space(light.tune.search_space)  # its file's mistakes too
    parsed = parse_command(rest, prog=f"tunecv {command}")
    flags = {f"--{flag}" for flag in parsed.flags}

    _chatter.install("--verbose" in flags)  # before a pool starts: its workers inherit the setting
    if command in ("cv", "tune", "nested"):
        _prestart_pool(parsed.config, flags)
    if "--dry_run" in flags and command == "train":
        raise ConfigError("`--dry_run` applies to cv and tune; for train use --print_config")
    cfg = parsed.config
    if "--print_config" in flags:
        print(dump_yaml(cfg), end="")
        return 0
    _setup_logging()
    _install_signals()
    resume, reset, dry_run = "--resume" in flags, "--reset" in flags, "--dry_run" in flags
    progress = "--quiet" not in flags
    if command == "train":
        import tunecv.train as train_mod  # lazy: the command's level, only once it runs

        result = train_mod.train(cfg, resume=resume, reset=reset, progress_bar=None if progress else False)
        _print_train(result)
        return 0
    if command == "cv":
        import tunecv.cv as cv_mod  # lazy: the command's level, only once it runs

        res = cv_mod.cross_validate(cfg, resume=resume, reset=reset, dry_run=dry_run, progress=progress)
        return 0 if res is None or res.n_completed > 0 else 1
    if command == "nested":
        import tunecv.nested as nested_mod  # lazy: the command's level, only once it runs

        nested_res = nested_mod.nested(cfg, resume=resume, reset=reset, dry_run=dry_run, progress=progress)
        if nested_res is not None and not progress:  # the outer folds' table ends the command, also --quiet
            nested_mod.print_summary(nested_res.summary)
        return 0 if nested_res is None or nested_res.summary["test_score"]["n"] > 0 else 1
    import tunecv.tune as tune_mod  # lazy: the command's level, only once it runs

    tune_res = tune_mod.tune(cfg, resume=resume, reset=reset, dry_run=dry_run, progress=progress)
    return 0 if tune_res is None or tune_res.n_finished > 0 else 1


def _prestart_pool(cfg: Any, flags: set[str]) -> bool:
    """Start a local pool's fork server now, as a fork of this process, when the command will use one.

    Called right after parsing, which imported torch and lightning: the server, forked from this
    process, starts with them (and imports only the rest of what a run needs), so a cv-parallel command
    pays the interpreter start and the imports once, as a serial one does (see
    :func:`tunecv.executors.prestart_forkserver`); :func:`tunecv.placement.prestart_pool` decides whether the
    command uses such a pool.

    Returns:
        Whether a server was started.
    """
    if flags & {"--dry_run", "--print_config"}:
        return False
    from tunecv.placement import prestart_pool  # lazy: the executors, only to prestart a pool

    return prestart_pool(cfg)


def _report(rest: list[str]) -> int:
    paths = [w for w in rest if not w.startswith("--")]
    fmt = "table"
    if "--format" in rest:
        i = rest.index("--format")
        if i + 1 >= len(rest):
            raise ConfigError("`--format` needs a value: table or json")
        fmt = rest[i + 1]
        paths = [p for p in paths if p != fmt]
    for w in rest:
        if w.startswith("--format="):
            fmt = w.split("=", 1)[1]
    if fmt not in ("table", "json"):
        raise ConfigError(f"`--format` must be one of table, json; got {fmt!r}")
    if len(paths) != 1:
        raise ConfigError(f"`tunecv report` needs exactly one PATH (a run, cv or tune folder); got {paths}")
    import tunecv.report as report_mod  # lazy: pandas and the report's tables, only for tunecv report

    report_mod.report(paths[0], fmt=fmt, plots="--no-plots" not in rest)
    return 0


def _setup_logging() -> None:
    import logging

    from rich.logging import RichHandler

    level = os.environ.get("TUNECV_LOG_LEVEL", "INFO").upper()
    handler = RichHandler(show_path=False, show_time=False, markup=False, rich_tracebacks=False)
    root = logging.getLogger("tunecv")
    if not root.handlers:
        root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def _print_train(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"run {result.name} ({result.run_id})", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(result.metrics):
        table.add_row(key, f"{result.metrics[key]:.6g}")
    console.print(table)
    console.print(f"folder:     {result.run_dir}")
    console.print(f"checkpoint: {result.checkpoint}")
    console.print(f"duration:   {result.duration:.1f} s")


if __name__ == "__main__":  # pragma: no cover
    main()
