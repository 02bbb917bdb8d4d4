"""The process-wide safety net of device pools: atexit and SIGTERM end their workers, fork server and tracker."""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
import time
import weakref
from typing import Any, Optional

from tunecv.executors._base import Executor

__all__ = ["hook_atexit", "register", "stop_servers", "unregister"]

_LIVE: weakref.WeakSet[Executor] = weakref.WeakSet()
_HOOKS_LOCK = threading.Lock()
_hooks = {"atexit": False, "sigterm": False}


def _kill_live_pools() -> None:
    """atexit: no worker outlives the driver, nor the fork server and resource tracker it started."""
    for pool in list(_LIVE):
        pool.shutdown(cancel_pending=True, kill=True)
    stop_servers()


def _end_helper(pid: Optional[int], alive_fd: Optional[int], grace: float = 1.0) -> None:
    """End a helper process of :mod:`multiprocessing`: close its "alive" pipe, let it go, else SIGKILL it."""
    if pid is None:
        return
    if alive_fd is not None:
        with contextlib.suppress(OSError):
            os.close(alive_fd)
    deadline = time.monotonic() + grace
    try:
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() >= deadline:  # e.g. still importing its preload: nothing to lose
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(0.01)
    except (ChildProcessError, ProcessLookupError):  # already reaped
        pass


def hook_atexit() -> None:
    """Register, once, the atexit hook that kills the workers of every live pool and ends the helper processes."""
    with _HOOKS_LOCK:
        if not _hooks["atexit"]:
            atexit.register(_kill_live_pools)
            _hooks["atexit"] = True


def stop_servers() -> None:
    """End the fork server and the resource tracker now, instead of a moment after this process exits.

    Both would end by themselves once this process is gone (they wait for their pipe to close), which
    leaves them alive for a second or more after the command returned. A later pool starts them again.
    """
    import multiprocessing.resource_tracker as resource_tracker

    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    if server is not None and getattr(server, "_forkserver_pid", None) is not None:
        with server._lock:
            # The server holds no state; its own exit (tearing down torch and lightning) can take a
            # second or more, so it is killed rather than waited for.
            _end_helper(server._forkserver_pid, server._forkserver_alive_fd, grace=0.0)
            server._forkserver_pid = server._forkserver_alive_fd = server._forkserver_address = None  # upstream: python/cpython#81688 ForkServer.stop() was proposed and rejected
    tracker = getattr(resource_tracker, "_resource_tracker", None)
    if tracker is not None and getattr(tracker, "_pid", None) is not None:
        with tracker._lock:
            _end_helper(tracker._pid, tracker._fd)
            tracker._pid = tracker._fd = None  # upstream: python/cpython#88887 nothing public ends or reaps the tracker


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def register(pool: Executor) -> None:
    """``pool`` is alive: atexit kills its workers, and SIGTERM in the main thread raises ``SystemExit(143)``."""
    with _HOOKS_LOCK:
        _LIVE.add(pool)
        if not _hooks["atexit"]:
            atexit.register(_kill_live_pools)
            _hooks["atexit"] = True
        if (not _hooks["sigterm"] and threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
            # Turn SIGTERM into SystemExit so that with-blocks, finally clauses and atexit kill the workers.
            signal.signal(signal.SIGTERM, _raise_on_sigterm)
            _hooks["sigterm"] = True


def unregister(pool: Executor) -> None:
    """``pool`` was shut down: SIGTERM gets its default handler back once no pool is alive."""
    with _HOOKS_LOCK:
        _LIVE.discard(pool)
        if (_hooks["sigterm"] and not _LIVE and threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) is _raise_on_sigterm):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _hooks["sigterm"] = False
