"""A throwaway PostgreSQL server for tests: initdb into a temp folder, start on a free port, stop after."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unavailable_reason() -> str | None:
    """Why no server can start here, or ``None``."""
    if not (_binary("initdb") and _binary("pg_ctl")):
        return "no PostgreSQL server binaries (initdb, pg_ctl); .ci/run installs Debian's postgresql package"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'tunecv[postgres]')"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    return None


@contextmanager
def postgres_server(root: Path) -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh server whose files live in ``root``."""
    data, sock = root / "data", root / "sock"
    data.mkdir(parents=True)
    sock.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for p in (root, data, sock):
            os.chown(p, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run([*prefix, _binary("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=100 -c fsync=off"
    start = [*prefix, _binary("pg_ctl"), "-D", str(data), "-o", opts, "-w", "-l", str(root / "log"), "start"]
    (root / "start.json").write_text(json.dumps(start))
    subprocess.run(start, check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, _binary("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)


def stop_server(root: Path, mode: str = "fast") -> None:
    """Stop the server of :func:`postgres_server` (``fast``: clients are disconnected, as in a restart)."""
    start = json.loads((root / "start.json").read_text())
    subprocess.run([*start[:start.index(_binary("pg_ctl")) + 1], "-D", str(root / "data"), "-m", mode, "-w", "stop"],
                   check=True, capture_output=True)


def start_server(root: Path) -> None:
    """Start the server of :func:`postgres_server` again, on the same port and files."""
    subprocess.run(json.loads((root / "start.json").read_text()), check=True, capture_output=True)
