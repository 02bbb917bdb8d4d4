"""The fork server of a device pool: started early (a new interpreter, or a fork of this process) with its preload."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import signal
import sys
import threading
from collections.abc import Sequence

from tunecv.executors._pool_exit import hook_atexit

__all__ = ["PRELOAD_ENV", "can_fork_server_here", "forkserver_running", "prestart_forkserver", "start_forkserver"]

# The modules a pool's fork server imports (read by tunecv.executors._warm, in the server only).
PRELOAD_ENV = "TUNECV_PRELOAD"


def prestart_forkserver(preload: Sequence[str], *, from_this_process: bool = False) -> bool:
    """Start the fork server (and its imports of ``preload``) now, before any pool needs it.

    By default the server is a new interpreter that imports ``preload`` in the background. With
    ``from_this_process``, this process imports what it lacks of ``preload`` and the server is a fork of
    it, made now: it starts with every module imported (the command line calls this right after
    parsing, which imported torch and lightning), so a cv-parallel command pays the interpreter start
    and the imports once, as a serial one does, instead of twice (on a busy machine the second import
    competes with the driver's for the same cores). That is done only where it is safe (see
    :func:`can_fork_server_here`); elsewhere the new interpreter is started as by default. This process
    must not have run a multi-threaded (OpenMP) torch operation yet: a copy of a started OpenMP runtime
    hangs at its next parallel region (parsing runs none; a new interpreter has the same rule for the
    modules it preloads).

    A pool created later uses the running server; atexit ends it with the command, also when no pool
    was created.

    Returns:
        Whether a server was started (``False`` where forkserver is unavailable or one is running).
    """
    if "forkserver" not in multiprocessing.get_all_start_methods() or forkserver_running():
        return False
    hook_atexit()
    if from_this_process and can_fork_server_here() and _fork_server_here(preload):
        return True
    os.environ[PRELOAD_ENV] = ",".join(preload)
    multiprocessing.get_context("forkserver").set_forkserver_preload(["tunecv.executors._warm"])
    threading.Thread(target=start_forkserver, name="tunecv-forkserver", daemon=True).start()
    return True


# The signature of multiprocessing.forkserver.main that _fork_server_here drives (CPython 3.9-3.13; later
# versions add an authentication key, and then the server is a new interpreter as before).
_SERVER_MAIN_PARAMETERS = ["listener_fd", "alive_r", "preload", "main_path", "sys_path"]


def can_fork_server_here() -> bool:
    """Whether this process may become a pool's fork server by forking itself (``from_this_process``).

    Linux only; called from the main thread while no other Python thread runs (a lock held by another
    thread would stay locked forever in the copy); CUDA not initialised (a forked CUDA context is
    unusable); and the standard library's fork server takes the arguments this module gives it.
    """
    import inspect

    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return False
    if threading.active_count() != 1:
        return False
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is not None and cuda.is_initialized():
        return False
    try:
        parameters = list(inspect.signature(multiprocessing.forkserver.main).parameters)
    except (TypeError, ValueError):  # pragma: no cover
        return False
    return parameters == _SERVER_MAIN_PARAMETERS


# long: one fork under the server's lock, whose two halves share the socket and pipes made just before it
def _fork_server_here(preload: Sequence[str]) -> bool:
    """Fork this process into the fork server of :mod:`multiprocessing` (what ``ensure_running`` spawns).

    This process first imports the modules of ``preload`` it has not imported yet. The copy then serves
    fork requests until the last process holding the "alive" pipe is gone (or stop_servers kills it).
    It never returns into this process's code: it ends with ``os._exit``.
    """
    import gc
    import socket

    # lazy: importing _warm runs its preload of what TUNECV_PRELOAD names (it is the fork server's preload module)
    from tunecv.executors._warm import preload as import_all

    # Imported here, not in the copy: this process needs most of them too (the serial path imports them
    # all in its first run), and one import of each is all a busy machine should pay.
    import_all(",".join(m for m in preload if m not in sys.modules))
    if not can_fork_server_here():  # an import started a thread (or touched CUDA)
        return False
    server = multiprocessing.forkserver._forkserver
    with server._lock:
        if server._forkserver_pid is not None:
            return False
        listener = socket.socket(socket.AF_UNIX)
        try:
            address = multiprocessing.connection.arbitrary_address("AF_UNIX")
            listener.bind(address)
            os.chmod(address, 0o600)
            listener.listen()
            alive_r, alive_w = os.pipe()
        except OSError:
            listener.close()
            return False
        for stream in (sys.stdout, sys.stderr):  # or the copy would write their buffers out a second time
            with contextlib.suppress(Exception):
                stream.flush()
        try:
            pid = os.fork()
        except OSError:
            listener.close()
            os.close(alive_r)
            os.close(alive_w)
            return False
        if pid == 0:  # the server: never back into the caller's code
            code = 1
            try:
                server._lock.release()  # held by the caller's thread, gone in this copy  # upstream: python/cpython#86354 (as below)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as in a new interpreter
                signal.signal(signal.SIGINT, signal.default_int_handler)
                os.close(alive_w)
                listener_fd = listener.detach()
                gc.freeze()  # the workers' garbage collector then leaves the shared pages alone
                multiprocessing.forkserver.main(listener_fd, alive_r, [])
                code = 0
            except SystemExit:  # the alive pipe closed: every client is gone
                code = 0
            except BaseException:
                with contextlib.suppress(Exception):
                    import traceback

                    traceback.print_exc()
            finally:
                os._exit(code)
        listener.close()
        os.close(alive_r)
        # The server is registered as ensure_running registers the one it spawns; ForkServer takes no server
        # started elsewhere (not even its parent's, the upstream issue), so its three fields are set here.
        server._forkserver_address, server._forkserver_alive_fd, server._forkserver_pid = address, alive_w, pid  # upstream: python/cpython#86354 no public way to hand ForkServer a running server
    return True


def start_forkserver() -> None:
    try:
        multiprocessing.forkserver.ensure_running()
    finally:  # the server has the list in its environment; nothing else needs it
        os.environ.pop(PRELOAD_ENV, None)


def forkserver_running() -> bool:
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    return getattr(server, "_forkserver_pid", None) is not None

