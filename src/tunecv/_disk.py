"""A full disk stops a cv or a tune: every further run would fail the same way.

A run that fails because its disk is full (``OSError`` errno 28, ``ENOSPC``; torch's "file write failed"
on a disk with next to nothing left; SQLite's "database or disk is full"), or a write of the command itself
that hits a full disk, ends the command: no new run starts, the runs in flight are stopped (``--resume``
continues them), finished runs are kept (every table is written atomically, so the old file stays
whole), and one line names the path, the free space and the command that finishes once space is freed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shlex
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Optional

from tunecv.artifacts.files import CONFIG_FILE
from tunecv.errors import RunFailedError

__all__ = ["DiskFullError", "check_run", "stop_on_full_disk"]

_FULL_TEXT = ("No space left on device", "[Errno 28]", "database or disk is full", "Disk quota exceeded")
# torch.save says only this when its writer hits a full disk; taken as one where (next to) nothing is left
_WRITE_FAILED_TEXT = ("file write failed", "failed writing file")
NEARLY_FULL = 16 * 2**20  # bytes


class DiskFullError(RunFailedError):
    """The disk under the artifacts is full: the cv or tune stopped starting runs (exit code 1).

    Attributes:
        path: what could not be written (a file or the folder of the run).
        free: free bytes on that filesystem when the command stopped.
    """

    def __init__(self, message: str, path: str = "", free: Optional[int] = None, final: bool = False) -> None:
        super().__init__(message)
        self.path, self.free, self.final = path, free, final


def free_bytes(path: str | os.PathLike) -> Optional[int]:
    """Free bytes on the filesystem of ``path`` (its nearest existing folder), or ``None``."""
    p = Path(path)
    for candidate in (p, *p.parents):
        if candidate.exists():
            with contextlib.suppress(OSError):
                return shutil.disk_usage(candidate).free
            return None
    return None


def human(n: Optional[int]) -> str:
    if n is None:
        return "unknown"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def text_says_full(text: str, where: Optional[str | os.PathLike] = None) -> bool:
    """Whether an error text says the disk is full (for torch's bare "file write failed": and ``where`` has
    next to nothing free)."""
    if any(s in text for s in _FULL_TEXT):
        return True
    if where is not None and any(s in text for s in _WRITE_FAILED_TEXT):
        free = free_bytes(where)
        return free is not None and free < NEARLY_FULL
    return False


def _path_in(text: str) -> Optional[str]:
    match = re.search(r"(?:No space left on device|Disk quota exceeded): '([^']+)'", text)
    return match.group(1) if match else None


def full_disk_in(exc: BaseException, where: str | os.PathLike) -> Optional[DiskFullError]:
    """The full disk behind ``exc`` (through its causes), or ``None`` when it is not about a full disk."""
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFullError):
            return current
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            path = str(current.filename) if current.filename else str(where)
            return DiskFullError(str(current), path, free_bytes(path))
        if text_says_full(str(current), where):
            path = _path_in(str(current)) or str(where)
            return DiskFullError(str(current).splitlines()[0] if str(current) else "", path, free_bytes(path))
        current = current.__cause__ or current.__context__
    return None


def check_run(row: Mapping[str, Any], run_dir: str | os.PathLike) -> None:
    """Raise :class:`DiskFullError` when a just-recorded run failed because its disk is full."""
    error = row.get("error")
    if row.get("status") != "failed" or not isinstance(error, str) or not text_says_full(error, run_dir):
        return
    path = _path_in(error) or str(run_dir)
    raise DiskFullError(error.splitlines()[0], path, free_bytes(path))


def resume_hint(level: str, name: str, folder: Path) -> str:
    """The command that finishes this ``level``: this command line again with ``--resume`` when it is
    ``tunecv LEVEL ...``, else one from the folder's resolved config."""
    argv = sys.argv[1:]
    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    if argv and argv[0] == level and (program in ("tunecv", "__main__.py") or program.startswith("tunecv")):
        words = [w for w in argv[1:] if w not in ("--reset", "--resume", "--dry_run")]
        if not any(w == "--name" or w.startswith("--name=") for w in words):
            words += ["--name", name]
        return shlex.join(["tunecv", level, *words, "--resume"])
    return shlex.join(["tunecv", level, "--config", str(folder / CONFIG_FILE), "--name", name, "--resume"])


@contextlib.contextmanager
def stop_on_full_disk(level: str, name: str, folder: Path) -> Iterator[None]:
    """Turn a full disk met by the ``level`` named ``name`` (its folder ``folder``) into one
    :class:`DiskFullError` line: the path, the free space, the command that finishes."""
    try:
        yield
    except BaseException as exc:
        full = full_disk_in(exc, folder) if isinstance(exc, Exception) else None
        if full is None or full.final:
            raise
        free = free_bytes(full.path)
        line = (f"the disk is full: no space left on device writing {full.path} ({human(free)} free there); the "
                f"{level} stopped starting runs, each would fail the same way; finished runs are kept; free some "
                f"space, then finish with: {resume_hint(level, name, folder)}")
        raise DiskFullError(line, full.path, free, final=True) from exc
