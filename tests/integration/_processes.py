"""Helpers for tests that kill a tunecv process at some moment and resume it."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path


def kill_during(cmd: list[str], cwd: Path, watch: Path, delay: float) -> None:
    """Start ``cmd``, wait until ``watch`` exists, then ``delay`` seconds, then SIGKILL it (if still running)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    deadline = time.time() + 120
    while not watch.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
