"""The ``slurm`` executor's registry entry: its ``slurm:`` config section and checks, without submitit.

The executor itself (:mod:`tunecv.executors._slurm`) imports submitit when it is chosen; this module stays
light, so that every command can read and check a ``slurm:`` section, also where submitit is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from tunecv.errors import ConfigError

__all__ = ["SlurmConfig", "check_config", "from_config", "job_states", "section"]


@dataclass(frozen=True)
class SlurmConfig:
    """Options of ``executor: slurm``: the resources and sbatch options of each job (see docs/scaling-out.md)."""

    partition: Optional[str] = None
    time: int = 60
    gpus_per_job: int = 0
    cpus_per_job: int = 1
    mem: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    max_jobs: int = 32
    max_num_timeout: int = 3
    signal_delay_s: int = 90
    setup: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    python: Optional[str] = None
    poll_interval: float = 1.0


section = SlurmConfig  # the ``slurm:`` config section


def check_config(cfg: Any) -> None:
    """What the types of the ``slurm:`` section cannot say."""
    sl = cfg.slurm
    for key in ("time", "cpus_per_job", "max_jobs"):
        if getattr(sl, key) < 1:
            raise ConfigError(f"`slurm.{key}` must be >= 1; got {getattr(sl, key)}")
    for key in ("gpus_per_job", "max_num_timeout", "signal_delay_s"):
        if getattr(sl, key) < 0:
            raise ConfigError(f"`slurm.{key}` must be >= 0; got {getattr(sl, key)}")
    if not sl.poll_interval > 0:
        raise ConfigError(f"`slurm.poll_interval` must be > 0 seconds; got {sl.poll_interval}")


def from_config(cfg: Any, *, parallel: bool, accelerator: str) -> Any:
    """The ``slurm`` executor (:func:`tunecv.executors._slurm.from_config`; submitit is imported now)."""
    from tunecv.executors import _slurm  # lazy: submitit, only for the people who use SLURM

    return _slurm.from_config(cfg, parallel=parallel, accelerator=accelerator)


def job_states(folders: Any) -> dict:
    """The SLURM states of the jobs recorded in these run folders (:func:`tunecv.executors._slurm.job_states`)."""
    from tunecv.executors import _slurm  # lazy: submitit

    return _slurm.job_states(folders)
