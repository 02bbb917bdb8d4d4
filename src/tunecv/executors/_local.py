"""The ``local`` executor: runs in this process, or in a device pool of worker processes on this machine.

``executor: local`` (the default) gives a :class:`SerialExecutor` unless the strategy is ``cv-parallel``
or ``tune-parallel``, then a :class:`DevicePoolExecutor` over ``devices`` (``runs_per_device`` runs per
device). Its ``local:`` section holds the pool's options. Devices are found without touching CUDA in
the driver.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from tunecv.errors import ConfigError
from tunecv.executors._base import Device, Executor
from tunecv.executors._pool import DevicePoolExecutor
from tunecv.executors._serial import SerialExecutor
from tunecv.executors._threads import available_cpus
from tunecv.executors._worker import CUDA_ACCELERATORS

__all__ = ["LocalConfig", "check_config", "from_config", "gpu_count", "make_executor", "section"]


@dataclass(frozen=True)
class LocalConfig:
    """Options of ``executor: local``: in this process, or the device pool of cv-parallel / tune-parallel.

    ``threads_per_worker``: CPU threads of each run (serial or in a pool worker); null lets tunecv choose
    the cores free for it when it starts (at least one). ``reuse_workers``: whether a pool's CPU worker
    runs its slot's next run too (null: yes on CPU; GPU runs always get a new worker).
    """

    start_method: Literal["forkserver", "spawn", "fork"] = "forkserver"
    threads_per_worker: Optional[int] = None
    reuse_workers: Optional[bool] = None


section = LocalConfig  # the ``local:`` config section


def check_config(cfg: Any) -> None:
    """What the types of the ``local:`` section cannot say."""
    threads = cfg.local.threads_per_worker
    if threads is not None and threads < 1:
        raise ConfigError(f"`local.threads_per_worker` must be >= 1 or null; got {threads}")

AUTO_DEVICES = ("auto", -1, "-1")


def gpu_count() -> int:
    """How many GPUs this process may use, found without initialising CUDA.

    ``CUDA_VISIBLE_DEVICES`` when it is set (its entries up to the first invalid one, as CUDA reads
    it), else the ``GPU`` lines of ``nvidia-smi -L``; 0 when neither says there is a GPU.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        count = 0
        for entry in visible.split(","):
            entry = entry.strip()
            if not entry or entry.startswith("-"):
                break
            count += 1
        return count
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return 0
    if out.returncode != 0:
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def _resolve_devices(devices: Union[Sequence[Device], Device], accelerator: str) -> tuple[list[Device], str]:
    """Concrete device slots (and the accelerator) for a device pool."""
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > 0:
        as_list: list[Any] = list(range(devices))  # Lightning's devices=N: N devices
    elif isinstance(devices, (str, int)):
        as_list = [devices]
    else:
        as_list = list(devices)
    if not (len(as_list) == 1 and as_list[0] in AUTO_DEVICES):
        return as_list, accelerator
    if accelerator == "cpu":
        return list(range(available_cpus())), accelerator
    if accelerator == "mps":
        return [0], accelerator
    if accelerator in (*CUDA_ACCELERATORS, "auto"):
        count = gpu_count()
        if count > 0:
            return list(range(count)), accelerator
        if accelerator == "auto":
            return list(range(available_cpus())), "cpu"
    raise ConfigError(
        f"`devices` must list GPU indices for cv-parallel/tune-parallel, e.g. [0, 1]; got {as_list!r}"
        if accelerator in CUDA_ACCELERATORS else
        f"`devices` must list device indices for cv-parallel/tune-parallel with accelerator "
        f"{accelerator!r}, e.g. [0, 1]; got {as_list!r}"
    )


def from_config(cfg: Any, *, parallel: bool, accelerator: str) -> Executor:
    """The ``local`` executor for a :class:`~tunecv.config.Config` (the registry's entry point).

    Args:
        cfg: the config: ``devices``, ``runs_per_device`` and the ``local:`` section are read.
        parallel: the strategy shares devices between runs (cv-parallel / tune-parallel): a device pool.
        accelerator: the resolved accelerator (``auto`` already decided for a pool).
    """
    devices = cfg.device_setting("devices")
    if not isinstance(devices, list):
        devices = [devices]
    options = getattr(cfg, "local", None)
    return make_executor(devices, accelerator, parallel, runs_per_device=cfg.runs_per_device,
                         start_method=getattr(options, "start_method", "forkserver"),
                         threads_per_worker=getattr(options, "threads_per_worker", None),
                         preload=run_modules(cfg), reuse_workers=getattr(options, "reuse_workers", None))


# What every training run imports: a pool's fork server imports it once, so that no worker pays it.
RUN_MODULES = (
    "torch", "lightning", "lightning.pytorch.callbacks", "lightning.pytorch.loggers", "pandas", "pyarrow.parquet",
    "sklearn.model_selection", "jsonargparse", "omegaconf", "tunecv.cv", "tunecv.train", "tunecv.data",
    "tunecv.splits", "tunecv.results", "tunecv.scoring", "tunecv.tracking", "tunecv._callbacks",
)


def run_modules(cfg: Any) -> list[str]:
    """:data:`RUN_MODULES` and the modules of the config's model and data classes."""
    modules = list(RUN_MODULES)
    for section in (getattr(cfg, "model", None), getattr(cfg, "data", None)):
        path = section.get("class_path") if isinstance(section, dict) else None
        if isinstance(path, str) and "." in path:
            modules.append(path.rpartition(".")[0])
    return modules


def make_executor(
    devices: Union[Sequence[Device], Device],
    accelerator: Any,
    parallel: bool,
    runs_per_device: int = 1,
    start_method: str = "forkserver",
    threads_per_worker: Optional[int] = None,
    preload: Sequence[str] = ("torch", "lightning"),
    reuse_workers: Optional[bool] = None,
) -> Executor:
    """The executor for these device settings.

    Args:
        devices: the ``devices`` setting, e.g. ``[0, 1]`` or ``["auto"]``. With ``parallel`` and
            ``["auto"]``: one slot per CPU for accelerator cpu; for gpu, the GPUs that
            ``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi -L`` show (CUDA is never initialised here); for
            auto, GPUs if there are any, else CPU slots.
        accelerator: the ``accelerator`` setting (``"cpu"``, ``"gpu"``, ``"auto"``, ...).
        parallel: ``True`` for a :class:`DevicePoolExecutor` (cv-parallel / tune-parallel), ``False``
            for a :class:`SerialExecutor`.
        runs_per_device: how many runs share one device at once.
        start_method: how a pool starts its workers (see :class:`DevicePoolExecutor`).
        threads_per_worker: CPU threads per pool worker (default: the CPUs shared out).
        preload: modules the pool's fork server imports once, before it starts workers.
        reuse_workers: whether a CPU worker runs its slot's next run too (default: yes on CPU).

    Raises:
        ConfigError: ``devices`` is ``["auto"]`` with a GPU accelerator and no GPU can be found, or a
            setting is out of range.
    """
    if not parallel:
        return SerialExecutor()
    accel = accelerator.lower() if isinstance(accelerator, str) else "auto"
    slots, accel = _resolve_devices(devices, accel)
    return DevicePoolExecutor(slots, accelerator=accel, runs_per_device=runs_per_device, start_method=start_method,
                              threads_per_worker=threads_per_worker, preload=preload, reuse_workers=reuse_workers)
