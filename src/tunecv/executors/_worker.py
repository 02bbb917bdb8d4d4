"""What runs inside a worker process, and the messages it sends back.

The worker pins itself to its device, runs its job and sends one message through its pipe:
``("ok", pickled value)`` or ``("error", pickled exception or None, type name, message, traceback)``.
The outer tuple holds only builtins, so the parent can always read it, even when the inner pickle
cannot be loaded there. A reused worker (CPU) then waits for its slot's next job and answers
:data:`ACK` the moment it has received it, before it runs any of it: a job the driver hands to an idle
worker belongs to that worker only once the driver has read the acknowledgement.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Mapping
from typing import Any, Optional

from tunecv.errors import ConfigError
from tunecv.executors import _base
from tunecv.executors._base import Device, RemoteError, _RemoteTraceback

__all__ = ["ACK", "pack_exception", "pack_value", "pin_environment", "unpack_reply", "worker_main"]

CUDA_ACCELERATORS = ("gpu", "cuda")
# A reused worker's first message for each job after its first: "received, starting". Not a pickle of
# a reply (those start with the pickle protocol's b"\x80"), so the driver tells them apart.
ACK = b"tunecv-ack"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pins_cuda(device: Device, accelerator: str) -> bool:
    """Whether a worker on ``device`` gets ``CUDA_VISIBLE_DEVICES``."""
    if accelerator in CUDA_ACCELERATORS:
        return True
    return accelerator == "auto" and (isinstance(device, int) or str(device).isdigit())


def cuda_visible(device: Device, parent_value: Optional[str]) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` of a worker on ``device``.

    Device indices count within the devices the parent sees: with ``CUDA_VISIBLE_DEVICES=2,3`` in the
    parent, device 1 is physical GPU 3, as it would be for Lightning in the parent.
    """
    if isinstance(device, str) and device.lower().startswith("cuda:"):
        device = device[len("cuda:"):]
    if parent_value is None or not (isinstance(device, int) or str(device).isdigit()):
        return str(device)
    visible = [v.strip() for v in parent_value.split(",") if v.strip()]
    index = int(device)
    if index >= len(visible):
        raise ConfigError(
            f"`devices` entry {device!r} is not visible: CUDA_VISIBLE_DEVICES={parent_value!r} "
            f"makes {len(visible)} GPU(s) visible, indices 0 to {len(visible) - 1}"
        )
    return visible[index]


def pin_environment(
    device: Device, accelerator: str, threads: Optional[int], base: Mapping[str, str]
) -> dict[str, str]:
    """The full environment of a worker on ``device``: ``base`` plus the pinning variables."""
    env = dict(base)
    env["TUNECV_DEVICE"] = str(device)
    if pins_cuda(device, accelerator):
        env["CUDA_VISIBLE_DEVICES"] = cuda_visible(device, base.get("CUDA_VISIBLE_DEVICES"))
    if threads is not None:
        for name in THREAD_VARIABLES:
            env[name] = str(threads)
    return env


# -- messages ---------------------------------------------------------------------------------------------

def pack_value(value: Any, name: str) -> bytes:
    """The message for a job that returned ``value``."""
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        error = RemoteError(
            type(exc).__qualname__,
            f"the value returned by {name} cannot be pickled to send it from the worker: {exc}",
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        )
        return pack_exception(error)
    return pickle.dumps(("ok", data), protocol=pickle.HIGHEST_PROTOCOL)


def pack_exception(exc: BaseException) -> bytes:
    """The message for a job that raised ``exc``; the exception itself goes along when it round-trips."""
    tb_text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    type_name = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not lose the error
        message = repr(exc)
    data: Optional[bytes] = None
    if isinstance(exc, Exception):  # SystemExit / KeyboardInterrupt are never re-raised in the driver
        try:
            data = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.loads(data)  # catches exceptions whose __init__ does not accept their own args
        except Exception:
            data = None
    return pickle.dumps(("error", data, type_name, message, tb_text), protocol=pickle.HIGHEST_PROTOCOL)


def unpack_reply(message: bytes) -> tuple[bool, Any]:
    """Read a worker's message: ``(True, value)`` or ``(False, exception)``."""
    reply = pickle.loads(message)
    if reply[0] == "ok":
        try:
            return True, pickle.loads(reply[1])
        except Exception as exc:
            return False, RemoteError(
                type(exc).__qualname__, f"the job's return value cannot be unpickled in the parent: {exc}"
            )
    _, data, type_name, text, tb_text = reply
    exc: Optional[BaseException] = None
    if data is not None:
        try:
            exc = pickle.loads(data)
        except Exception:
            exc = None
    if exc is None:
        exc = RemoteError(type_name, text, tb_text)
    exc.__cause__ = _RemoteTraceback(tb_text)
    return False, exc


# -- the worker process -----------------------------------------------------------------------------------

def _die_with_driver() -> None:
    """End this worker (SIGKILL) as soon as the driver process is gone, even if it was SIGKILLed.

    A daemon thread waits on :func:`multiprocessing.parent_process`'s sentinel, the pipe whose other
    end only the driver holds (under forkserver too, where the OS parent is the fork server, which
    itself stays up while any worker holds its "alive" pipe). On Linux the kernel also SIGKILLs the
    worker when its OS parent ends (``PR_SET_PDEATHSIG``).
    """
    parent = multiprocessing.parent_process()
    sentinel = getattr(parent, "sentinel", None)
    if sentinel is not None:

        def watch() -> None:
            multiprocessing.connection.wait([sentinel])
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watch, name="tunecv-driver-watchdog", daemon=True).start()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        except Exception:  # pragma: no cover - no libc / no prctl
            pass


def worker_main(conn: Any, payload: bytes, device: Device, environ: dict[str, str],
                threads: Optional[int], name: str, reuse: bool = False) -> None:
    """Body of a worker process: pin to ``device``, run the job, send its outcome, exit.

    With ``reuse``, the worker then waits on ``conn`` for its slot's next job (``(payload, environ,
    name)``, pickled), sends :data:`ACK` as soon as it has it (before any of the job's code runs), and
    runs it the same way; it exits when the driver closes the pipe. A worker that dies before its
    acknowledgement left the pipe has run nothing of that job: the driver gives it to a new worker.
    """
    # The driver decides when to stop: a Ctrl-C in the terminal reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_driver()
    try:
        while True:
            message = _run_job(payload, device, environ, threads, name)
            try:
                conn.send_bytes(message)
            except OSError:  # the driver is gone
                return
            if not reuse:
                return
            del message, payload
            try:
                job = conn.recv_bytes()
            except (EOFError, OSError):  # the driver closed the pipe: no more jobs
                return
            try:
                conn.send_bytes(ACK)  # from here on the job is this worker's: the driver never hands it on
            except OSError:  # the driver is gone
                return
            payload, environ, name = pickle.loads(job)  # builtins only: the job's own pickle loads later
            del job
    finally:
        conn.close()


def _run_job(payload: bytes, device: Device, environ: dict[str, str], threads: Optional[int], name: str) -> bytes:
    """Run one job in this worker; return the message for the driver (its value or its exception)."""
    os.environ.clear()
    os.environ.update(environ)
    _base.pin_device(device)
    if threads is not None and "torch" in sys.modules:
        # torch was preloaded (forkserver): its thread pool size is already fixed, set it here.
        # Otherwise OMP_NUM_THREADS / MKL_NUM_THREADS set above apply when the job imports torch.
        sys.modules["torch"].set_num_threads(threads)
    try:
        fn, args, kwargs = pickle.loads(payload)
        return pack_value(fn(*args, **kwargs), name)
    except BaseException as exc:
        return pack_exception(exc)
