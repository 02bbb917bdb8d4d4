"""The folder of one run: its name and id (alone, or one run over the processes of a multi-process launch), the
claim of its name, ``--resume`` / ``--reset``, the process ranks, and the checkpoint a resumed run continues from."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

from tunecv import naming
from tunecv.artifacts import workspace
from tunecv.artifacts.files import CHECKPOINT_DIR, LAST_CHECKPOINT
from tunecv.config import Config
from tunecv.errors import ConfigError, TunecvError

log = logging.getLogger("tunecv.train")  # the run's own log lines, under the run's logger as before the split


# -- the run folder -----------------------------------------------------------------------------------------

def resolve_run_folder(cfg: Config, name: Optional[str], run_dir: Optional[Union[str, os.PathLike]], *, resume: bool,
                       reset: bool) -> tuple[str, str, Path, bool, list[Path]]:
    """``(run_name, run_id, folder, existed, stale folders to delete)``: the caller's folder, or one of its own."""
    if run_dir is None:
        run_name, folder, existed, stale = resolve_standalone_dir(cfg, name, resume, reset)
    else:
        if not name:
            raise ConfigError("`train(run_dir=...)` needs the run `name` too")
        workspace.check_flags(resume, reset, "run")
        run_name, folder = naming.validate_name(name), Path(run_dir)
        existed = folder.exists()
        stale = [folder] if reset and existed else []
    parts = naming.split_run_dir_name(folder.name)
    if parts is None or parts[0] != run_name:
        raise ConfigError(f"the run folder must be named {{run_name}}-{{run_id}}; got {folder.name!r}")
    return run_name, parts[1], folder, existed, stale


def claim(cfg: Config, run_name: str, folder: Path, *, resume: bool,
          reset: bool) -> contextlib.AbstractContextManager[Any]:
    """One command per run name at a time; then check again what ``resolve_standalone_dir`` saw."""
    parent = naming.standalone_runs_parent(cfg.artifact_dir)

    def another_run() -> Optional[Path]:
        others = [p for p in naming.find_run_dirs(parent, run_name) if p != folder]
        return others[-1] if others else None

    return workspace.claimed("run", run_name, parent, found=another_run, resume=resume, reset=reset)


def resolve_standalone_dir(cfg: Config, name: Optional[str], resume: bool,
                           reset: bool) -> tuple[str, Path, bool, list[Path]]:
    """Name and folder of a run called alone; checks ``--resume`` / ``--reset``.

    Returns:
        ``(run_name, run_dir, existed, folders_to_delete)``.
    """
    workspace.check_flags(resume, reset, "run")
    given = naming.validate_name(name or cfg.name) if (name or cfg.name) else None
    parent = naming.standalone_runs_parent(cfg.artifact_dir)
    job = distributed_job_key()
    if job is not None:
        return _distributed_run_dir(parent, given, job, resume=resume, reset=reset)
    run_name = workspace.choose_name("run", given, resume=resume, free=lambda: _free_run_name(parent))
    existing = naming.find_run_dirs(parent, run_name)
    workspace.check_on_disk("run", run_name, existing[-1] if existing else None, parent, resume=resume, reset=reset)
    if resume:
        return run_name, existing[-1], True, []
    return run_name, naming.run_dir(parent, run_name, naming.new_run_id()), False, existing if reset else []


def _distributed_run_dir(parent: Path, given: Optional[str], job: str, *, resume: bool,
                         reset: bool) -> tuple[str, Path, bool, list[Path]]:
    """One run over several processes (torchrun, srun): every rank derives the same name and id; a folder
    of the same job (a requeued job) is its own, not another run of the name."""
    run_name = given or os.environ.get("TUNECV_RUN_NAME") or naming.derived_name(job)
    run_id = job if naming.is_run_id(job) else naming.derived_run_id(f"{job}/{run_name}")
    folder = naming.run_dir(parent, run_name, run_id)
    if global_rank() > 0:
        return run_name, folder, folder.exists(), []
    others = [p for p in naming.find_run_dirs(parent, run_name) if p != folder]
    workspace.check_on_disk("run", run_name, others[-1] if others else None, parent, resume=resume, reset=reset,
                            resumable=folder.exists() or bool(others))
    if resume:
        return run_name, folder if folder.exists() else others[-1], True, []
    return run_name, folder, folder.exists(), others + ([folder] if reset and folder.exists() else [])


def _free_run_name(parent: Path) -> str:
    """A generated run name that no run folder in ``parent`` uses yet."""
    for _ in range(100):
        candidate = naming.generate_name()
        if not naming.find_run_dirs(parent, candidate):
            return candidate
    raise TunecvError("could not generate a free run name")  # pragma: no cover - 100 collisions of a 2-word slug


# -- ranks of a multi-process launch ------------------------------------------------------------------------

_RANK_VARS = ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
_WORLD_VARS = ("WORLD_SIZE", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


def global_rank() -> int:
    """This process's rank in a multi-process launch (torchrun, srun, mpirun); 0 otherwise."""
    for var in _RANK_VARS:
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return int(os.environ.get("NODE_RANK", "0") or 0) * 1000 + int(os.environ.get("LOCAL_RANK", "0") or 0)


def distributed_job_key() -> Optional[str]:
    """A key shared by every process of one multi-process launch, or ``None`` for a single process.

    ``TUNECV_RUN_ID`` wins; else SLURM's job and step, torchrun's run id, or the rendezvous address.
    """
    env = os.environ
    world = next((int(env[v]) for v in _WORLD_VARS if env.get(v, "").isdigit()), 1)
    if env.get("TUNECV_RUN_ID"):
        return env["TUNECV_RUN_ID"]
    if world <= 1:
        return None
    if env.get("SLURM_JOB_ID"):
        return f"slurm-{env['SLURM_JOB_ID']}-{env.get('SLURM_STEP_ID', '0')}"
    if env.get("TORCHELASTIC_RUN_ID") and env["TORCHELASTIC_RUN_ID"] != "none":
        return f"torchrun-{env['TORCHELASTIC_RUN_ID']}"
    if env.get("MASTER_ADDR") and env.get("MASTER_PORT"):
        return f"rdzv-{env['MASTER_ADDR']}-{env['MASTER_PORT']}"
    return None


def is_rank_zero() -> bool:
    return global_rank() == 0


# -- checkpoints --------------------------------------------------------------------------------------------

def last_checkpoint(run_dir: Path) -> Optional[Path]:
    last = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    return last if last.is_file() else None


def checkpoint_problem(path: Path) -> Optional[str]:
    """Why a checkpoint cannot resume a run (unreadable, truncated, weights only), or ``None``."""
    import torch  # lazy: torch is heavy, and only a resumed run reads a checkpoint

    try:
        try:
            data = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        except RuntimeError as exc:  # an old, non-zip checkpoint cannot be memory-mapped
            if "mmap" not in str(exc):
                raise
            data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()[:300]
    if not isinstance(data, Mapping) or "state_dict" not in data or "optimizer_states" not in data:
        return "not a full training checkpoint (no state_dict / optimizer_states)"
    return None


def resumable_checkpoint(run_dir: Path) -> Optional[Path]:
    """The newest checkpoint of a run that loads: ``last.ckpt``, else the newest other one.

    A checkpoint that fails to load (a crash mid-write, a truncated copy) is renamed
    ``{name}.damaged-{time}`` with a warning, so that no later resume trips over it again; ``None`` when
    no checkpoint is left (the run starts from scratch).
    """
    ckpt_dir = Path(run_dir) / CHECKPOINT_DIR
    if not ckpt_dir.is_dir():
        return None
    last = ckpt_dir / LAST_CHECKPOINT
    others = sorted((p for p in ckpt_dir.glob("*.ckpt") if p.is_file() and p != last),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    for path in ([last] if last.is_file() else []) + others:
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        aside = path.with_name(f"{path.name}.damaged-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}")
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        log.warning("checkpoint %s cannot be loaded (%s); set aside as %s", path, problem, aside.name)
    return None
