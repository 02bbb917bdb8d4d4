"""One naming scheme and one folder layout for the three levels.

``tune_name``, ``cv_name`` and ``run_name`` are human-readable; ``run_id`` is 8 random characters
``[a-z0-9]`` (also the wandb run id). Generated names come from :mod:`coolname`.

Folders::

    {artifact_dir}/_runs/{run_name}-{run_id}/                         train alone
    {artifact_dir}/_cross_validations/{cv_name}/{run_name}-{run_id}/  cv alone
    {artifact_dir}/{tune_name}/{cv_name}/{run_name}-{run_id}/         under a tune

The files in these folders are named in :mod:`tunecv.artifacts.files`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import string
import time
from pathlib import Path
from typing import Any, Optional

from tunecv.errors import ConfigError, ResumeError

__all__ = [
    "CVS_DIR",
    "RUNS_DIR",
    "NameClaim",
    "claim_name",
    "cv_dir",
    "cv_name",
    "derived_name",
    "derived_run_id",
    "find_run_dirs",
    "free_name",
    "generate_name",
    "new_run_id",
    "retrain_name",
    "run_dir",
    "run_name",
    "split_run_dir_name",
    "tune_dir",
    "validate_name",
]

RUNS_DIR = "_runs"
CVS_DIR = "_cross_validations"
RUN_ID_ALPHABET = string.ascii_lowercase + string.digits
RUN_ID_LENGTH = 8
_RUN_ID_RE = re.compile(rf"^[a-z0-9]{{{RUN_ID_LENGTH}}}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")
_RESERVED = {RUNS_DIR, CVS_DIR, "report"}


def generate_name(words: int = 2) -> str:
    """A fresh human-readable name such as ``brave-otter``."""
    import coolname

    return coolname.generate_slug(words)


def free_name(parent: str | Path, words: int = 2) -> str:
    """A generated name that no folder in ``parent`` uses yet (for a cv or a tune)."""
    for _ in range(100):
        candidate = generate_name(words)
        if not (Path(parent) / candidate).exists():
            return candidate
    raise ConfigError(f"could not generate a free name in {parent}; pass --name")  # pragma: no cover


def new_run_id() -> str:
    """8 random characters from ``[a-z0-9]``."""
    return "".join(secrets.choice(RUN_ID_ALPHABET) for _ in range(RUN_ID_LENGTH))


def derived_run_id(key: str) -> str:
    """8 characters ``[a-z0-9]`` derived from ``key``: every process of one job computes the same id."""
    import hashlib

    number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    chars = []
    for _ in range(RUN_ID_LENGTH):
        number, digit = divmod(number, len(RUN_ID_ALPHABET))
        chars.append(RUN_ID_ALPHABET[digit])
    return "".join(chars)


def derived_name(key: str, words: int = 2) -> str:
    """A human-readable name derived from ``key`` (the same in every process of one job)."""
    import random

    import coolname

    coolname.replace_random(random.Random(key))
    try:
        return coolname.generate_slug(words)
    finally:
        coolname.replace_random(random.SystemRandom())


def is_run_id(text: str) -> bool:
    return bool(_RUN_ID_RE.match(text))


def validate_name(name: str, key: str = "name") -> str:
    """Return ``name`` if it is safe as a folder name, else raise :class:`ConfigError`."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"`{key}` must be a non-empty string; got {name!r}")
    if "/" in name or "\\" in name or ".." in name or name in _RESERVED or not _NAME_RE.match(name):
        raise ConfigError(
            f"`{key}` must be a folder name of letters, digits and _ . = + - (no path separator, no "
            f"'..', not {' / '.join(sorted(_RESERVED))}); got {name!r}")
    return name


def cv_name(tune_name: str, index: int) -> str:
    """``{tune_name}-cv{index}``."""
    return f"{tune_name}-cv{index}"


def run_name(cv: str, fold: int, seed: int) -> str:
    """``{cv_name}-run-f{fold}s{seed}``."""
    return f"{cv}-run-f{fold}s{seed}"


def retrain_name(tune_name: str) -> str:
    """``{tune_name}-retrain``: the run that retrains the best parameters."""
    return f"{tune_name}-retrain"


def run_dir(parent: str | Path, name: str, run_id: str) -> Path:
    """``{parent}/{run_name}-{run_id}``."""
    return Path(parent) / f"{name}-{run_id}"


def standalone_runs_parent(artifact_dir: str | Path) -> Path:
    """Where ``tunecv train`` alone puts its runs."""
    return Path(artifact_dir) / RUNS_DIR


def cv_dir(artifact_dir: str | Path, name: str) -> Path:
    """Where ``tunecv cv`` alone puts a cross-validation."""
    return Path(artifact_dir) / CVS_DIR / name


def tune_dir(artifact_dir: str | Path, name: str) -> Path:
    """Where ``tunecv tune`` puts a sweep."""
    return Path(artifact_dir) / name


def split_run_dir_name(folder: str) -> tuple[str, str] | None:
    """``("name", "id")`` for a folder named ``{name}-{id}``, else ``None``."""
    name, sep, rid = folder.rpartition("-")
    if sep and name and is_run_id(rid):
        return name, rid
    return None


def find_run_dirs(parent: str | Path, name: str) -> list[Path]:
    """Existing run folders ``{parent}/{name}-{id}`` (newest last)."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    found = []
    for child in parent.iterdir():
        parts = split_run_dir_name(child.name)
        if child.is_dir() and parts and parts[0] == name:
            found.append(child)
    return sorted(found, key=lambda p: p.stat().st_mtime)


# -- one command per name at a time ---------------------------------------------------------------------

LOCK_PREFIX = "."
LOCK_SUFFIX = ".lock"
# The top-level name the current command works on (the CLI names it in "finish with ... --resume").
current: dict[str, Optional[str]] = {"kind": None, "name": None}


def lock_path(parent: str | Path, name: str) -> Path:
    """``{parent}/.{name}.lock``: the file whose lock says that a command is working on ``name``."""
    return Path(parent) / f"{LOCK_PREFIX}{name}{LOCK_SUFFIX}"


class NameClaim:
    """An exclusive claim of one name (a cv, a tune, a run called alone) by this process.

    The claim is an ``flock`` on ``{parent}/.{name}.lock``, which holds the host, pid and command of its
    owner. The kernel drops the lock when the owner ends, however it ends (also ``kill -9``), so a lock
    left by a dead process is never in the way; :meth:`release` (or leaving the ``with`` block) deletes
    the file. Locks work across hosts where the shared filesystem supports them (NFSv4, Lustre with
    ``flock``); the file names the owner's host either way.
    """

    def __init__(self, parent: str | Path, name: str, kind: str) -> None:
        self.path = lock_path(parent, name)
        self.name, self.kind = name, kind
        self._fd: Optional[int] = None

    def acquire(self) -> NameClaim:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise ResumeError(self._held_message()) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:  # the previous owner deleted the file between our open and our lock: again
                os.close(fd)
                continue
            owner = {"host": socket.gethostname(), "pid": os.getpid(), "kind": self.kind, "name": self.name}
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(owner).encode())
            self._fd = fd
            return self
        raise ResumeError(f"could not lock {self.path}")  # pragma: no cover - 100 lost races

    def _owner(self, wait: float = 2.0) -> dict[str, Any]:
        """The owner the lock file names. Its owner writes it just after taking the lock, so a racing
        command can find the file still empty (or half-written): it reads again for up to ``wait`` s."""
        deadline = time.monotonic() + wait
        while True:
            owner: dict[str, Any] = {}
            with contextlib.suppress(OSError, ValueError):
                owner = json.loads(self.path.read_text() or "{}")
            if owner.get("pid") or time.monotonic() >= deadline:
                return owner
            time.sleep(0.01)

    def _held_message(self) -> str:
        owner = self._owner()
        who = (f"pid {owner.get('pid')} on {owner.get('host')}" if owner.get("pid") else "another process")
        return (f"a {self.kind} named {self.name!r} is being run by {who} (lock {self.path}); wait for it to end, "
                f"or use another --name")

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()  # before unlocking: a waiting process then finds a fresh file
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> NameClaim:
        return self if self.held else self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def claim_name(parent: str | Path, name: str, kind: str) -> NameClaim:
    """Claim ``name`` in ``parent`` for this process (see :class:`NameClaim`).

    Raises:
        ResumeError: another live process holds the name ("a cv named 'x' is being run by pid N on HOST").
    """
    return NameClaim(parent, name, kind).acquire()


def announce(kind: str, name: str) -> None:
    """Record the top-level name this process works on (the CLI's "finish with --resume" line names it)."""
    current["kind"], current["name"] = kind, name
