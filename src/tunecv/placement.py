"""Placement: where the runs of a command execute and on which devices, resolved once per command.

The one owner of what ``accelerator``, ``strategy``, ``devices``, ``num_nodes`` and ``runs_per_device``
mean (the config only types them):

- :func:`resolve` turns a config into a :class:`Placement`: the parallel mode (``cv-parallel``,
  ``tune-parallel`` or none), the accelerator (``auto`` decided for a parallel mode, without touching
  CUDA) and the device slots.
- :meth:`Placement.make_executor` builds the executor that ``executor:`` names for a level (``cv`` or
  ``tune``), and :meth:`Placement.drive_options` says how many runs of a session and how many sessions
  take its slots at once.
- :func:`many_runs_config` is a run's config under a cv or tune (plain ``ddp`` becomes ``ddp_fork``);
  :func:`trainer_device_kwargs` the Trainer's device arguments of one run. A run inside a pinned job
  takes the executor's :meth:`~tunecv.executors.Executor.run_overrides` instead (given by the scheduler).
- :func:`check_devices`, :func:`check_cv` and :func:`check_tune` are the one-line errors of a placement.

Levels (``train``, ``cv``, ``tune``, ``nested`` through ``tune``, ``cli``) ask this module and nothing else;
executors report what they can do through the :class:`~tunecv.executors.Executor` contract.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Literal, Optional

from tunecv import executors
from tunecv.config import PARALLEL_STRATEGIES, Config
from tunecv.errors import ConfigError
from tunecv.executors import Executor

__all__ = [
    "DEVICE_KEYS",
    "Placement",
    "check_cv",
    "check_devices",
    "check_tune",
    "lightning_devices",
    "many_runs_config",
    "prestart_pool",
    "resolve",
    "resolve_mode",
    "trainer_device_kwargs",
]

log = logging.getLogger(__name__)

Level = Literal["cv", "tune", "nested"]

# The config keys that place one run (top level, or under ``trainer:`` for LightningCLI configs).
DEVICE_KEYS = ("accelerator", "strategy", "devices", "num_nodes")


@dataclass(frozen=True)
class Placement:
    """Where the runs of one command execute.

    Attributes:
        strategy: the ``strategy`` setting as given (top level or ``trainer.strategy``).
        mode: ``"cv-parallel"``, ``"tune-parallel"``, or ``None`` (each run alone, one after the other).
        accelerator: the accelerator; with a parallel mode ``auto`` is decided (``gpu`` if this machine
            shows one, else ``cpu``).
        devices: the ``devices`` setting as a list.
        runs_per_device: with a parallel mode, how many runs share one device.
    """

    strategy: Any
    mode: Optional[str]
    accelerator: str
    devices: list[Any]
    runs_per_device: int

    @property
    def parallel(self) -> bool:
        """Runs share the devices (``cv-parallel`` or ``tune-parallel``)."""
        return self.mode is not None

    def runs_several_at_once(self, level: Level) -> bool:
        """Whether the executor of ``level`` runs several jobs at once: a tune's under either parallel mode,
        a cv's only under ``cv-parallel`` (a cv's runs are in series under ``tune-parallel``)."""
        return self.parallel if level == "tune" else self.mode == "cv-parallel"

    def make_executor(self, cfg: Config, level: Level) -> Executor:
        """The executor that ``cfg.executor`` names, for the runs of ``level`` (see :mod:`tunecv.executors`).

        An executor that can give a session's runs to one job (``groups_sessions``: SLURM's) does so under
        ``tune-parallel``: one job per trial's cv, its runs one after the other (one Python start, one
        ``import torch, lightning`` per cv).
        """
        several = self.runs_several_at_once(level)
        if level == "nested":  # the outer tunes side by side: a cluster's executor has its slots whatever the
            several = self.parallel or cfg.executor != "local"  # strategy; a local one only as a device pool
        executor = executors.make_executor_from_config(cfg, parallel=several, accelerator=self.accelerator)
        executor.session_per_job = bool(executor.groups_sessions and self.mode == "tune-parallel")
        return executor

    def drive_options(self, executor: Executor, level: Level) -> dict[str, Any]:
        """How :func:`tunecv.scheduler.drive` fills ``executor``'s slots: runs per session, sessions at once,
        and whether each job runs on the devices the executor pinned it to."""
        if level == "cv":
            return {"per_session": executor.n_slots, "pinned": bool(executor.pinned)}
        return {"per_session": executor.n_slots if self.mode == "cv-parallel" else 1,
                "max_sessions": executor.n_slots if self.mode == "tune-parallel" else 1,
                "pinned": bool(executor.pinned)}

    def planned_devices(self, n_runs: int) -> list[Any]:
        """The device each of ``n_runs`` runs is shown on in a dry run's plan (all of them, in series)."""
        if not self.parallel:
            return [self.devices] * n_runs
        slots = [d for d in self.devices for _ in range(self.runs_per_device)]
        return [slots[i % len(slots)] for i in range(n_runs)]


def resolve(cfg: Config) -> Placement:
    """The placement of ``cfg``'s runs (once per command; CUDA is never initialised here)."""
    mode = resolve_mode(cfg)
    accelerator = str(cfg.device_setting("accelerator"))
    if mode is not None and accelerator == "auto":
        accelerator = "gpu" if executors.gpu_count() > 0 else "cpu"
    devices = cfg.device_setting("devices")
    return Placement(strategy=cfg.device_setting("strategy"), mode=mode, accelerator=accelerator,
                     devices=devices if isinstance(devices, list) else [devices],
                     runs_per_device=cfg.runs_per_device)


# -- one run --------------------------------------------------------------------------------------------

def many_runs_config(cfg: Config) -> Config:
    """``cfg`` for one of many runs started by one driver: plain ``ddp`` / ``ddp_spawn`` become ``ddp_fork``.

    Plain ddp re-runs the whole script once per process, the driver included (a warning says so).
    """
    strategy = cfg.device_setting("strategy")
    if isinstance(strategy, str) and strategy in ("ddp", "ddp_spawn"):
        warnings.warn(f"strategy {strategy!r} under cv/tune becomes 'ddp_fork' (plain ddp re-runs the whole "
                      f"script once per process)", stacklevel=3)
        log.warning("strategy %r under cv/tune becomes 'ddp_fork'", strategy)
        return cfg.replace(strategy="ddp_fork", trainer={k: v for k, v in cfg.trainer.items() if k != "strategy"})
    return cfg


def lightning_devices(devices: Any, accelerator: str) -> Any:
    """Translate tunecv's ``devices`` list into what ``lightning.Trainer(devices=...)`` expects.

    ``[auto]`` → ``"auto"``; on CPU a list means that many processes; otherwise a list of device indices.
    A non-list (from a LightningCLI ``trainer.devices``) is passed through unchanged.
    """
    if not isinstance(devices, (list, tuple)):
        return devices
    if list(devices) == ["auto"]:
        return "auto"
    if any(isinstance(d, str) for d in devices):
        if len(devices) == 1 and str(devices[0]).lstrip("-").isdigit():
            devices = [int(devices[0])]
        else:
            raise ConfigError(f"`devices` must be [auto] or a list of device indices such as [0, 2]; got {devices!r}")
    if accelerator == "cpu":
        return len(devices)
    if list(devices) == [-1]:
        return -1
    return [int(d) for d in devices]


def trainer_device_kwargs(cfg: Config) -> dict[str, Any]:
    """``accelerator``, ``strategy``, ``devices`` and ``num_nodes`` for one run's Trainer."""
    accelerator = cfg.device_setting("accelerator")
    strategy = cfg.device_setting("strategy")
    if isinstance(strategy, str) and strategy in PARALLEL_STRATEGIES:
        strategy = "auto"  # how a cv/tune shares devices; one run alone uses Lightning's default
    return {
        "accelerator": accelerator,
        "strategy": strategy,
        "devices": lightning_devices(cfg.device_setting("devices"), str(accelerator)),
        "num_nodes": cfg.device_setting("num_nodes"),
    }


# -- checks -----------------------------------------------------------------------------------------------

def check_devices(cfg: Config) -> None:
    """A GPU accelerator needs GPUs: checked without touching CUDA (``CUDA_VISIBLE_DEVICES`` / ``nvidia-smi``)."""
    accelerator = str(cfg.device_setting("accelerator"))
    if accelerator not in ("gpu", "cuda"):
        return
    count = executors.gpu_count()
    if count == 0:
        raise ConfigError(f"`accelerator` is {accelerator!r} but this machine has no GPU (none in "
                          "CUDA_VISIBLE_DEVICES or nvidia-smi); use accelerator cpu or auto")
    devices = cfg.device_setting("devices")
    ids = [d for d in devices if isinstance(d, int)] if isinstance(devices, list) else []
    bad = [d for d in ids if d >= count]
    if bad:
        raise ConfigError(f"`devices` must be GPU ids below {count} (this machine has {count} GPUs); "
                          f"got {devices!r}")
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > count:
        raise ConfigError(f"`devices` must be at most {count} (this machine has {count} GPUs); got {devices}")


def check_cv(cfg: Config) -> None:
    """A cv on its own cannot use ``tune-parallel`` (it runs the cvs of a tune side by side)."""
    if cfg.device_setting("strategy") == "tune-parallel":
        raise ConfigError("`strategy` tune-parallel runs the cvs of a tune in parallel; for one cv use "
                          "cv-parallel")


def check_tune(cfg: Config) -> None:
    """``strategy`` and ``trainer.strategy`` may not name both parallel modes."""
    strategies = {cfg.strategy, (cfg.trainer or {}).get("strategy")}
    if set(PARALLEL_STRATEGIES) <= strategies:
        raise ConfigError("`strategy` tune-parallel and cv-parallel exclude each other: tune-parallel runs several "
                          "cvs at once (runs in series), cv-parallel the runs of one cv at once; pick one")


# -- the command line -----------------------------------------------------------------------------------

def prestart_pool(cfg: Config) -> bool:
    """Start the fork server of the local pool the command will use, as a fork of this process.

    Only where the runs go to a local device pool whose workers start from a fork server; returns
    whether a server was started (see :func:`tunecv.executors.prestart_forkserver`).
    """
    local = getattr(cfg, "local", None)
    if (resolve_mode(cfg) is None or cfg.executor != "local"
            or getattr(local, "start_method", "forkserver") != "forkserver"):
        return False
    return executors.prestart_forkserver(executors.run_modules(cfg), from_this_process=True)


def resolve_mode(cfg: Config) -> Optional[str]:
    """The parallel mode alone (``cv-parallel`` / ``tune-parallel`` / ``None``), without looking for GPUs."""
    strategy = cfg.device_setting("strategy")
    return strategy if isinstance(strategy, str) and strategy in PARALLEL_STRATEGIES else None
