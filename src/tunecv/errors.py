"""The exceptions tunecv raises for problems a user can act on.

Every user-facing error derives from :class:`TunecvError`. The CLI prints such an error as one line and
exits with code 2 (a traceback only with ``--debug``).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "Interrupted",
    "ResumeError",
    "RunFailedError",
    "SearchSpaceError",
    "StorageError",
    "TunecvError",
    "check_resume_reset",
]


class TunecvError(Exception):
    """Root of every error tunecv raises on purpose."""


class ConfigError(TunecvError, ValueError):
    """A config key has a value that breaks a constraint."""


class SearchSpaceError(ConfigError):
    """A search-space file is malformed or names an unknown config key."""


class DataError(ConfigError):
    """The data does not fit the split that was asked for (columns, folds, groups)."""


class ResumeError(TunecvError):
    """``--resume`` / ``--reset`` asked for something the artifact folder cannot give."""


def check_resume_reset(resume: bool, reset: bool, level: str) -> None:
    """Refuse ``--resume`` together with ``--reset`` (the one place that says so, for every level).

    Args:
        resume: ``--resume`` was given.
        reset: ``--reset`` was given.
        level: ``"run"``, ``"cv"`` or ``"tune"``: what the two flags act on.

    Raises:
        ResumeError: both were given.
    """
    if resume and reset:
        verb = "continues" if level == "run" else "finishes"
        raise ResumeError(f"--resume and --reset exclude each other: --resume {verb} the {level}, --reset "
                          f"deletes it and starts over")


class StorageError(TunecvError):
    """An Optuna storage cannot be reached or opened."""


class RunFailedError(TunecvError):
    """Every run of a cross-validation failed."""


def one_of(key: str, value: object, options: object) -> ConfigError:
    """Build the standard "must be one of" error: names the key, the options and the value received."""
    opts = ", ".join(str(o) for o in options)  # type: ignore[union-attr]
    return ConfigError(f"`{key}` must be one of {opts}; got {value!r}")


class Interrupted(SystemExit):
    """SIGINT or SIGTERM stopped a tunecv command; its code is 128 + the signal (130, 143).

    A :class:`SystemExit`: ``except Exception`` does not swallow it, a run it stops is not recorded as
    failed, and ``--resume`` finishes the work later.
    """

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(128 + int(signum))
        self.signum = int(signum)
        self.signal_name = signal.Signals(signum).name
