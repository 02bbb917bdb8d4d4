"""Atomic file writes: a temp file in the same folder, fsync, ``os.replace``, fsync of the folder.

The rename alone is what keeps a killed process from leaving a torn file (the page cache outlives the
process); the two fsyncs are for an OS crash or a power loss. Records something else is rebuilt from keep
them: a run's ``run_info.json`` (a finished run is kept on ``--resume``), a cv's last ``run_infos.parquet``
(a tune's table part and a lost study are rebuilt from it), config snapshots, the tune's parts. A cv's
``run_infos.parquet`` rewritten after each run is written with ``durable=False``, the rename without the
fsyncs (~10 ms less a write on this project's VM): ``--resume`` rebuilds its rows from the runs'
``run_info.json``, and the cv's last write is durable again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text", "fsync_dir", "read_json"]


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename inside it) to disk; a no-op where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], *, durable: bool = True) -> None:
    """Call ``write(file)`` on a temp file next to ``path``, then move it into place atomically; with
    ``durable``, flushed to disk (the file, then the folder's entry) before this returns."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # ``path`` keeps its old content whole
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC and not exc.filename:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc  # say which file could not be written
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text atomically."""
    atomic_write(path, lambda fh: fh.write(text.encode()))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (datetimes and paths as strings)."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=str, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read JSON, or ``None`` when the file is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
