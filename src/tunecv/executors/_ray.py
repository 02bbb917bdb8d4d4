"""The Ray executor: each job is one Ray task on a Ray cluster, with the CPUs and GPUs it asks for.

Ray schedules the tasks over the cluster's nodes and sets ``CUDA_VISIBLE_DEVICES`` for a task that asks
for GPUs (a fractional ``num_gpus`` packs several tasks on one GPU). tunecv keeps no state of its own
here: a task that dies with its node is run once more by Ray (``max_retries``), and the job that runs in
it finds its folder as the first attempt left it (a training run continues from its ``last``
checkpoint). The tasks of a driver that dies are ended by Ray (their owner is gone); what they finished
is in the artifact folder, which every node must see on a shared filesystem.

``ray`` is imported only when a :class:`RayExecutor` is made (``pip install -e ".[ray]"``).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from tunecv.errors import ConfigError
from tunecv.executors._base import (
    Executor,
    Job,
    RemoteError,
    WorkerDiedError,
    _RemoteTraceback,
    function_name,
    job_overrides,
)

__all__ = ["RayConfig", "RayExecutor", "check_config", "check_shared_dir", "from_config", "section"]

log = logging.getLogger(__name__)

LOCAL = "local"
# After shutdown(kill=True) cancelled the tasks, how long to wait for Ray to report them ended.
KILL_GRACE = 30.0
PROBE_TIMEOUT = 120.0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("`executor` ray needs the ray package: pip install 'tunecv[ray]' (or pip install ray)"
                          ) from None
    return ray


def _number(key: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 or (
        positive and value == 0
    ):
        constraint = "a number > 0" if positive else "a number >= 0"
        raise ConfigError(f"`{key}` must be {constraint}; got {value!r}")
    return float(value)


# -- what runs in a Ray worker ------------------------------------------------------------------------------

def _run_job(fn: Callable[..., Any], args: tuple, kwargs: dict, threads: Optional[int]) -> Any:
    """Body of one Ray task: limit CPU threads to the task's CPUs, then call ``fn``."""
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(threads)
        if "torch" in sys.modules:  # a reused worker: torch's thread pool was sized by an earlier task
            sys.modules["torch"].set_num_threads(threads)
    try:
        return fn(*args, **kwargs)
    except (SystemExit, KeyboardInterrupt) as exc:  # the driver decides when to stop, not a job
        raise RemoteError(f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins."),
                          str(exc), traceback.format_exc()) from None


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _probe(path: str, token: str) -> bool:
    try:
        return Path(path).read_text() == token
    except OSError:
        return False


# -- the executor -------------------------------------------------------------------------------------------

def _job_resources(num_cpus: Any, num_gpus: Any, runs_per_device: Any) -> tuple[float, float]:
    """``(cpus, gpus)`` one job asks Ray for (``runs_per_device`` jobs share a GPU), the options checked."""
    cpus = _number("ray.num_cpus", num_cpus)
    gpus = _number("ray.num_gpus", num_gpus)
    if isinstance(runs_per_device, bool) or not isinstance(runs_per_device, int) or runs_per_device < 1:
        raise ConfigError(f"`runs_per_device` must be an integer >= 1; got {runs_per_device!r}")
    if runs_per_device > 1 and gpus > 1:
        raise ConfigError(f"`runs_per_device` {runs_per_device} packs several runs on one GPU: `ray.num_gpus` "
                          f"must then be at most 1; got {num_gpus!r}")
    if cpus == 0 and gpus / runs_per_device == 0:
        raise ConfigError("`ray.num_cpus` and `ray.num_gpus` cannot both be 0: a run must ask Ray for "
                          "something, or Ray would start every run at once")
    return cpus, gpus / runs_per_device


def _check_options(max_concurrent_runs: Any, max_retries: Any, runtime_env: Any) -> None:
    if max_concurrent_runs is not None and (
        isinstance(max_concurrent_runs, bool) or not isinstance(max_concurrent_runs, int)
        or max_concurrent_runs < 1
    ):
        raise ConfigError(f"`ray.max_concurrent_runs` must be an integer >= 1 or null; got {max_concurrent_runs!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(f"`ray.max_retries` must be an integer >= 0; got {max_retries!r}")
    if runtime_env is not None and not isinstance(runtime_env, Mapping):
        raise ConfigError(f"`ray.runtime_env` must be a mapping (env_vars, working_dir, ...); got {runtime_env!r}")


class RayExecutor(Executor):
    """Runs each job as one Ray task on a Ray cluster.

    Each task asks Ray for ``num_cpus`` CPUs and ``num_gpus / runs_per_device`` GPUs: Ray places it on a
    node with room and sets ``CUDA_VISIBLE_DEVICES`` to the GPUs it got, so the job sees them as
    devices 0, 1, ... ``n_slots`` (how many jobs are in flight at once) is what the cluster's CPUs and
    GPUs hold when the executor starts, or ``max_concurrent_runs``.

    Faults:

    - a node (or the worker process) that dies while a task runs: Ray runs the task once more on a node
      that is alive (``max_retries``); if that attempt dies too, ``result()`` raises
      :class:`WorkerDiedError` with Ray's message (it names the node);
    - a job that raises: ``result()`` re-raises the job's own exception (its remote traceback is the
      ``__cause__``), as the other executors do; Ray does not retry it;
    - ``shutdown(kill=True)`` (Ctrl-C, an error in the driver) cancels every task and kills its worker;
      a driver that dies without it (SIGKILL) loses its tasks the same way: Ray ends the tasks of a
      driver that is gone.

    GPU tasks get a fresh worker process each (``max_calls=1``), so a finished run's GPU memory is
    released; CPU tasks reuse Ray's workers (torch and lightning are imported once per worker).

    Args:
        address: the Ray cluster: ``"local"`` (default) starts one on this machine for as long as the
            executor lives; ``"auto"`` joins the cluster this machine belongs to (``ray start``,
            ``RAY_ADDRESS``); ``"HOST:PORT"`` or ``"ray://HOST:PORT"`` joins that one. When this
            process is already connected (``ray.init`` was called), that connection is used as it is
            and left open.
        num_cpus: CPUs per job (a fraction is allowed).
        num_gpus: GPUs per job (a fraction packs several jobs on one GPU).
        runs_per_device: jobs that share one GPU: each asks for ``num_gpus / runs_per_device``.
        max_concurrent_runs: jobs in flight at once (default: what the cluster's resources hold now;
            set it for an autoscaling cluster that grows when asked).
        max_retries: attempts after the first when a task's node or worker dies.
        runtime_env: a Ray runtime environment for the tasks (``env_vars``, ``working_dir``, ``pip``, ...).
        shared_dir: a folder every node must see (the artifact folder): checked on every node that can
            run a job when the executor starts.
        parallel: run ``n_slots`` jobs at once (cv-parallel / tune-parallel); ``False``: one at a time.
    """

    name = "ray"
    pinned = True

    def __init__(
        self,
        address: Optional[str] = LOCAL,
        num_cpus: float = 1,
        num_gpus: float = 0,
        runs_per_device: int = 1,
        max_concurrent_runs: Optional[int] = None,
        max_retries: int = 1,
        runtime_env: Optional[Mapping[str, Any]] = None,
        shared_dir: Optional[Union[str, os.PathLike]] = None,
        parallel: bool = True,
    ) -> None:
        self.num_cpus, self.num_gpus = _job_resources(num_cpus, num_gpus, runs_per_device)
        _check_options(max_concurrent_runs, max_retries, runtime_env)
        self.address = LOCAL if address in (None, "") else str(address)
        self.max_retries = max_retries
        self.runtime_env = dict(runtime_env) if runtime_env else None

        ray = _import_ray()
        self._ray = ray
        # the SIGTERM handler before Ray's (ray.init installs one and leaves it after ray.shutdown)
        self._sigterm_before = signal.getsignal(signal.SIGTERM) if _in_main_thread() else None
        self._sigterm_taken = False
        self._owns_connection = not ray.is_initialized()
        if self._owns_connection:
            self._connect()
        try:
            self.n_slots = max_concurrent_runs or self._slots_that_fit()
            if not parallel:
                self.n_slots = 1
            if shared_dir is not None:
                check_shared_dir(shared_dir, self.num_cpus, self.num_gpus)
        except BaseException:
            self._disconnect()
            raise
        threads = max(1, math.floor(self.num_cpus)) if self.num_cpus else None
        options: dict[str, Any] = {
            "num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "max_retries": max_retries,
            "retry_exceptions": False, "name": "tunecv-job",
        }
        if self.runtime_env is not None and not self._owns_connection:
            options["runtime_env"] = self.runtime_env
        # A fresh worker per GPU job: a reused one would keep the CUDA memory of the run before.
        remote = ray.remote(max_calls=1)(_run_job) if self.num_gpus > 0 else ray.remote(_run_job)
        self._task = remote.options(**options)
        self._threads = threads
        self._lock = threading.Lock()
        self._refs: dict[Job, Any] = {}
        self._shut_down = False
        self._take_sigterm()

    # -- connection ---------------------------------------------------------------------------------------

    def _connect(self) -> None:
        _check_reachable(self.address)
        ray = self._ray
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
        if self.runtime_env is not None:
            kwargs["runtime_env"] = self.runtime_env
        if self.address == LOCAL:
            kwargs["include_dashboard"] = False
        try:
            ray.init(address=self.address, **kwargs)
        except ConnectionError as exc:
            raise ConfigError(f"`ray.address` {self.address!r}: no Ray cluster to join ({exc}); start one with "
                              f"`ray start --head`, or use `local` to start one here") from None
        except ValueError as exc:
            raise ConfigError(f"`ray.address` {self.address!r} is not a Ray address: {exc}; use local, auto, "
                              f"HOST:PORT or ray://HOST:PORT") from None

    def _disconnect(self) -> None:
        if self._owns_connection and self._ray.is_initialized():
            self._ray.shutdown()
            current = signal.getsignal(signal.SIGTERM)
            if _in_main_thread() and getattr(current, "__module__", "").startswith("ray"):
                signal.signal(signal.SIGTERM, self._sigterm_before or signal.SIG_DFL)

    def _take_sigterm(self) -> None:
        """SIGTERM raises ``SystemExit(143)`` while the executor lives (Ray's driver handler exits with 15).

        The exit then goes through ``shutdown(kill=True)``, which cancels the tasks. A handler the
        program set itself is left alone.
        """
        if not _in_main_thread():
            return
        current = signal.getsignal(signal.SIGTERM)
        if current in (signal.SIG_DFL, None) or getattr(current, "__module__", "").startswith("ray"):
            signal.signal(signal.SIGTERM, _raise_on_sigterm)
            self._sigterm_taken = True

    def _restore_sigterm(self) -> None:
        """Put back the handler from before this executor (and before Ray's, when it started Ray)."""
        if self._sigterm_taken and _in_main_thread() and signal.getsignal(signal.SIGTERM) is _raise_on_sigterm:
            signal.signal(signal.SIGTERM, self._sigterm_before if self._sigterm_before is not None else signal.SIG_DFL)
        self._sigterm_taken = False

    def _slots_that_fit(self) -> int:
        resources = self._ray.cluster_resources()
        cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
        fits = []
        if self.num_cpus > 0:
            fits.append(math.floor(cpus / self.num_cpus + 1e-9))
        if self.num_gpus > 0:
            fits.append(math.floor(gpus / self.num_gpus + 1e-9))
        n = min(fits)
        if n < 1:
            raise ConfigError(
                f"no run fits on the Ray cluster ({self.address}): it has {cpus:g} CPUs and {gpus:g} GPUs, a run "
                f"asks for `ray.num_cpus` {self.num_cpus:g} and `ray.num_gpus` {self.num_gpus:g}; lower them, "
                f"add nodes, or set `ray.max_concurrent_runs` for a cluster that scales up when asked")
        return n

    # -- the Executor API ---------------------------------------------------------------------------------

    def run_overrides(self) -> dict[str, Any]:
        """A run uses the GPUs Ray gave its task (devices 0..n-1 of ``CUDA_VISIBLE_DEVICES``), on one node."""
        if self.num_gpus >= 2:
            # Several whole GPUs: one DDP run over them, forked inside the task (plain ddp would re-run the
            # Ray worker's own command line; the task's fresh worker has not touched CUDA, so fork is safe).
            return job_overrides(math.floor(self.num_gpus + 1e-9), "ddp_fork")
        return job_overrides(1)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
        job = Job(function_name(fn))
        with self._lock:
            if self._shut_down:
                raise RuntimeError("cannot submit a job to an executor that was shut down")
            try:
                ref = self._task.remote(fn, args, kwargs, self._threads)
            except Exception as exc:
                raise TypeError(f"cannot send {job.name} and its arguments to Ray: {exc}. Define the function at "
                                f"module level and pass picklable arguments") from exc
            self._refs[job] = ref
        job.set_running_or_notify_cancel()  # queued or running in Ray: no longer ours to cancel
        ref.future().add_done_callback(lambda future: self._settle(job, future))
        return job

    def _settle(self, job: Job, future: Any) -> None:
        """Ray's future is done: hand its outcome to the job (runs in a Ray thread; must not block)."""
        with self._lock:
            self._refs.pop(job, None)
        if job.done():
            return
        try:
            value = future.result()
        except BaseException as exc:
            job.set_exception(self._translate(job, exc))
        else:
            job.set_result(value)

    def _translate(self, job: Job, exc: BaseException) -> BaseException:
        """The exception a job ends with, from what Ray raised."""
        exceptions = self._ray.exceptions
        if isinstance(exc, exceptions.RayTaskError):
            cause = getattr(exc, "cause", None)
            remote_tb = str(exc)
            if isinstance(cause, Exception) and not isinstance(cause, exceptions.RayError):
                cause.__cause__ = _RemoteTraceback(remote_tb)
                return cause
            return RemoteError(getattr(exc, "function_name", job.name), remote_tb, remote_tb)
        if isinstance(exc, exceptions.TaskCancelledError):
            return WorkerDiedError(f"Ray task of {job.name} was cancelled (shutdown(kill=True))")
        if isinstance(exc, exceptions.RayError):
            attempts = "" if self.max_retries == 0 else f" (after {self.max_retries} retry)" if \
                self.max_retries == 1 else f" (after {self.max_retries} retries)"
            return WorkerDiedError(f"Ray task of {job.name} died{attempts}: {type(exc).__name__}: "
                                   f"{str(exc).strip()}")
        return exc

    def shutdown(self, cancel_pending: bool = True, kill: bool = False) -> None:
        with self._lock:
            self._shut_down = True
            in_flight = dict(self._refs)
        if kill and in_flight:
            for ref in in_flight.values():
                try:
                    self._ray.cancel(ref, force=True)
                except Exception as exc:  # already finished, or the cluster is gone
                    log.debug("cancel of a Ray task failed: %s", exc)
            self.wait(list(in_flight), timeout=KILL_GRACE, return_when="ALL_COMPLETED")
        elif in_flight:
            self.wait(list(in_flight), return_when="ALL_COMPLETED")
        self._disconnect()
        self._restore_sigterm()

    def __repr__(self) -> str:
        return (f"RayExecutor(address={self.address!r}, num_cpus={self.num_cpus:g}, num_gpus={self.num_gpus:g}, "
                f"n_slots={self.n_slots})")


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail at once when nothing listens at a ``HOST:PORT`` address (Ray itself would retry for minutes)."""
    host_port = address.removeprefix("ray://")
    host, sep, port = host_port.rpartition(":")
    if not sep or not host or not port.isdigit():
        return  # local, auto, or a form Ray checks itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"`ray.address` {address!r}: no Ray cluster answers there ({exc}); start one with "
                          f"`ray start --head`, or use local to start one here, or auto to join this "
                          f"machine's") from None


def check_shared_dir(folder: Union[str, os.PathLike], num_cpus: float = 0, num_gpus: float = 0) -> None:
    """Check that every alive node that could run a job sees ``folder`` (a shared filesystem).

    The driver writes a probe file in ``folder``; a task pinned to each node reads it back.

    Raises:
        ConfigError: a node does not see the probe file (it names the nodes and the folder).
    """
    ray = _import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    probe = folder / f".tunecv-ray-probe-{token[:12]}"
    probe.write_text(token)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")
                 and n.get("Resources", {}).get("CPU", 0) >= num_cpus and n.get("Resources", {}).get("GPU", 0) >= num_gpus]
        task = ray.remote(_probe)
        refs = [task.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
                             ).remote(str(probe), token) for n in nodes]
        seen = ray.get(refs, timeout=PROBE_TIMEOUT)
    finally:
        probe.unlink(missing_ok=True)
    blind = [f"{n.get('NodeManagerAddress', '?')} (node {n['NodeID'][:12]})" for n, ok in zip(nodes, seen) if not ok]
    if blind:
        raise ConfigError(
            f"`artifact_dir` {str(folder)!r} is not visible on Ray node(s) {', '.join(blind)}: every node that runs "
            f"runs must see the artifact folder at the same path (a shared filesystem: NFS, a cluster volume); "
            f"nothing was run")


@dataclass(frozen=True)
class RayConfig:
    """Options of ``executor: ray``: the Ray cluster and the resources of each run (see docs/scaling-out.md)."""

    address: str = "local"
    num_cpus: float = 1
    num_gpus: float = 0
    max_concurrent_runs: Optional[int] = None
    max_retries: int = 1
    runtime_env: Optional[dict] = None


section = RayConfig  # the ``ray:`` config section


def check_config(cfg: Any) -> None:
    """What the types of the ``ray:`` section cannot say (and, under ``executor: ray``, its fit with the devices)."""
    ry = cfg.ray
    for key in ("num_cpus", "num_gpus"):
        value = getattr(ry, key)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"`ray.{key}` must be a number >= 0 (a fraction is allowed); got {value!r}")
    if ry.num_cpus == 0 and ry.num_gpus == 0:
        raise ConfigError("`ray.num_cpus` and `ray.num_gpus` must not both be 0: each run asks Ray for CPUs or GPUs; "
                          "got 0 and 0")
    if ry.max_retries < 0:
        raise ConfigError(f"`ray.max_retries` must be >= 0; got {ry.max_retries}")
    if ry.max_concurrent_runs is not None and ry.max_concurrent_runs < 1:
        raise ConfigError(f"`ray.max_concurrent_runs` must be >= 1 or null; got {ry.max_concurrent_runs}")
    if not ry.address.strip():
        raise ConfigError("`ray.address` must be local, auto, HOST:PORT or ray://HOST:PORT; got ''")
    if cfg.executor != "ray":
        return
    if cfg.runs_per_device > 1 and ry.num_gpus > 1:
        raise ConfigError(f"`ray.num_gpus` must be at most 1 when `runs_per_device` ({cfg.runs_per_device}) packs "
                          f"several runs on one GPU; got {ry.num_gpus}")
    accelerator = str(cfg.device_setting("accelerator")).lower()
    if accelerator in ("gpu", "cuda") and ry.num_gpus == 0:
        raise ConfigError(f"`ray.num_gpus` must be > 0 with accelerator {accelerator!r}: Ray gives a run only the GPUs "
                          f"it asks for; got 0")


def from_config(cfg: Any, *, parallel: bool, accelerator: str) -> RayExecutor:
    """The ``ray`` executor for a :class:`~tunecv.config.Config` (the registry's entry point).

    Args:
        cfg: the config: its ``ray:`` section, ``runs_per_device`` and ``artifact_dir`` (checked to be
            visible on every node) are read.
        parallel: the strategy runs several runs at once (cv-parallel / tune-parallel); otherwise one
            run at a time, each still a Ray task.
        accelerator: the resolved accelerator (unused: Ray's resources decide the devices).
    """
    options = cfg.ray
    return RayExecutor(address=options.address, num_cpus=options.num_cpus, num_gpus=options.num_gpus,
                       runs_per_device=cfg.runs_per_device, max_concurrent_runs=options.max_concurrent_runs,
                       max_retries=options.max_retries, runtime_env=options.runtime_env,
                       shared_dir=cfg.artifact_dir, parallel=parallel)
