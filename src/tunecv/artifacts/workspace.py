"""One workspace lifecycle for every level (run, cv, tune, nested): name → folder → resume / reset →
claim → config snapshot.

A level asks, in this order:

1. :func:`choose_name`: the given name (checked as a folder name), else a generated one; ``--resume``
   without a name is an error.
2. :func:`check_on_disk`: what ``--resume`` / ``--reset`` / neither mean for what the folder holds.
3. :func:`claimed` (a ``with`` block): one command per name at a time (:class:`tunecv.naming.NameClaim`);
   under the claim the folder is checked again (a racing command may have made it in between), and the
   name is announced (the "finish with ... --resume" line of an interrupt names it).
4. :func:`discard` on ``--reset``, then :func:`snapshot`: the resolved ``config.yaml`` of the level.

Every :class:`~tunecv.errors.ResumeError` of this lifecycle comes from one message family
(:func:`needs_name`, :func:`exists_error`, :func:`nothing_to_resume`): each names the level and the
name, the folder, why, and the ``--resume`` / ``--reset`` hint.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Optional

from tunecv import naming
from tunecv._io import atomic_write_text
from tunecv.artifacts.files import CONFIG_FILE
from tunecv.errors import ResumeError, check_resume_reset

__all__ = [
    "LEVELS",
    "check_flags",
    "check_on_disk",
    "choose_name",
    "claimed",
    "config_path",
    "discard",
    "exists_error",
    "needs_name",
    "nothing_to_resume",
    "read_snapshot",
    "snapshot",
]

# a level's kind -> how its messages call it
LEVELS = {"run": "run", "cv": "cv", "tune": "tune", "nested": "nested cv"}


def _label(kind: str) -> str:
    return LEVELS[kind]


def _verb(kind: str) -> str:
    """What ``--resume`` does to the level: a run is continued (from its checkpoint), the others finished."""
    return "continue" if kind == "run" else "finish"


# -- the message family ---------------------------------------------------------------------------------

def needs_name(kind: str) -> ResumeError:
    """``--resume`` without a name."""
    return ResumeError(f"--resume needs the `name` of the {_label(kind)} to {_verb(kind)} (--name NAME)")


def exists_error(kind: str, name: str, where: Path) -> ResumeError:
    """The name is taken by ``where`` and neither ``--resume`` nor ``--reset`` was given."""
    return ResumeError(f"a {_label(kind)} named {name!r} exists in {where}; pass --resume to {_verb(kind)} it "
                       f"or --reset to delete it and start over")


def nothing_to_resume(kind: str, name: str, parent: Path, why: str = "") -> ResumeError:
    """``--resume`` of a name that has no folder (``why``: a folder exists but is not of this level)."""
    return ResumeError(f"nothing to resume: no {_label(kind)} named {name!r} in {parent}"
                       + (f" ({why})" if why else ""))


# -- the steps --------------------------------------------------------------------------------------------

def check_flags(resume: bool, reset: bool, kind: str) -> None:
    """Refuse ``--resume`` with ``--reset`` (:func:`tunecv.errors.check_resume_reset`)."""
    check_resume_reset(resume, reset, kind)


def choose_name(kind: str, given: Optional[str], *, resume: bool, free: Callable[[], str]) -> str:
    """``given`` checked as a folder name, else ``free()`` (a generated name no folder uses yet).

    Raises:
        ResumeError: ``resume`` without a name.
        ConfigError: ``given`` is not a safe folder name.
    """
    if given:
        return naming.validate_name(given)
    if resume:
        raise needs_name(kind)
    return free()


def check_on_disk(kind: str, name: str, found: Optional[Path], parent: Path, *, resume: bool, reset: bool,
                  resumable: Optional[bool] = None, why: str = "") -> None:
    """What the flags mean for what is on disk.

    Args:
        kind: ``run``, ``cv``, ``tune`` or ``nested``.
        name: the level's name.
        found: the folder that already holds the name, or ``None``.
        parent: where the name lives (named by "nothing to resume").
        resumable: whether ``--resume`` finds something to continue (default: ``found`` is not ``None``).
        why: said after "nothing to resume" when a folder exists that cannot be resumed.

    Raises:
        ResumeError: the name exists and neither flag was given; ``--resume`` finds nothing.
    """
    if found is not None and not (resume or reset):
        raise exists_error(kind, name, found)
    if resume and not (found is not None if resumable is None else resumable):
        raise nothing_to_resume(kind, name, parent, why)


@contextlib.contextmanager
def claimed(kind: str, name: str, parent: Path, *, found: Callable[[], Optional[Path]], resume: bool,
            reset: bool) -> Iterator[naming.NameClaim]:
    """Hold the name for this process (``{parent}/.{name}.lock``), check again under the claim what
    :func:`check_on_disk` saw, and announce the name.

    Args:
        found: the folder that holds the name now, or ``None`` (called once the claim is held).

    Raises:
        ResumeError: another live process holds the name; or the name appeared meanwhile.
    """
    with naming.claim_name(parent, name, kind) as claim:
        where = found()
        if where is not None and not (resume or reset):
            raise exists_error(kind, name, where)
        naming.announce(kind, name)
        yield claim


def discard(folders: Iterable[Path]) -> None:
    """``--reset``: delete these folders (those that exist)."""
    for folder in folders:
        if Path(folder).exists():
            shutil.rmtree(folder)


def config_path(folder: Path) -> Path:
    """``{folder}/config.yaml``: the resolved config a level ran with."""
    return Path(folder) / CONFIG_FILE


def snapshot(folder: Path, text: str) -> Path:
    """Write the level's resolved config (``text``: the YAML) atomically; the folder is made if missing."""
    path = config_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path


def read_snapshot(folder: Path) -> dict[str, Any]:
    """The config a level's folder recorded (``{}`` for an empty file)."""
    import yaml

    return yaml.safe_load(config_path(folder).read_text()) or {}
