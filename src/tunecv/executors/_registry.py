"""The executors by name: the values of the ``executor:`` config key.

Each entry maps a name to an **executor entry**: a module or a class (or ``"module"`` /
``"module:attribute"`` naming one, imported when first needed) with

- ``from_config(cfg, *, parallel, accelerator) -> Executor``, which builds the executor from a
  :class:`~tunecv.config.Config`; ``parallel`` says that the strategy shares devices between runs
  (``cv-parallel`` / ``tune-parallel``) and ``accelerator`` is the resolved accelerator;
- ``section`` (optional): the frozen dataclass of its config section, the key named after the executor
  (``slurm:``); the config layer adds it to the parser, types and checks every key of it, and
  ``cfg.<name>`` reads it;
- ``check_config(cfg)`` (optional): what the section's types cannot say, raising a one-line
  :class:`~tunecv.errors.ConfigError` that names the full dotted key;
- ``job_states(folders)`` (optional): the states of the jobs it recorded in run folders (``tunecv report``).

A plain ``"module:function"`` entry is a ``from_config`` function alone (no section). An entry's module
must be light to import (its heavy dependencies imported inside functions), since every command reads the
sections; the ``slurm`` entry is :mod:`tunecv.executors._slurm_config` for that reason (submitit).

How to add an executor (say ``myqueue``): one module with its :class:`~tunecv.executors.Executor` subclass
(``submit``, ``shutdown``; ``name = "myqueue"``; ``n_slots``; ``pinned`` and ``run_overrides()`` if each
job gets devices of its own; ``submit_run`` and ``reattach`` if its jobs outlive the driver), its
``section`` dataclass, ``check_config`` and ``from_config``; and one line: in :data:`EXECUTORS` below for a
built-in (``"myqueue": "tunecv.executors._myqueue",``), or ``tunecv.register_executor("myqueue", MyQueue)``
for a user's own. The contract tests in ``tests/unit/test_executors.py`` run over every entry.
"""

from __future__ import annotations

import importlib
from typing import Any

from tunecv.artifacts.run_info import executor_record
from tunecv.errors import ConfigError, one_of

__all__ = ["EXECUTORS", "check_executor_config", "executor_entry", "executor_factory", "executor_names",
           "executor_sections", "job_states", "make_executor_from_config", "register_executor"]

EXECUTORS: dict[str, Any] = {
    "local": "tunecv.executors._local",
    "slurm": "tunecv.executors._slurm_config",
    "ray": "tunecv.executors._ray",
}

_loaded: dict[tuple[str, int], Any] = {}  # (name, id(entry)) -> the imported entry


def register_executor(name: str, entry: Any) -> None:
    """Register an executor entry (a class or module with ``from_config``, optional ``section`` and
    ``check_config``; or ``"module[:attribute]"``) as ``executor: name``, its options the ``name:`` section."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"`executor`: a registered name must be an identifier (it is also its section's key); "
                          f"got {name!r}")
    EXECUTORS[name] = entry


def executor_entry(name: str) -> Any:
    """The entry registered as ``name``, imported (a module, a class or a ``from_config`` function)."""
    entry = EXECUTORS[check_executor_name(name)]
    key = (name, id(entry))
    if key not in _loaded:
        if isinstance(entry, str):
            module_name, _, attr = entry.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise ConfigError(f"`executor` {name!r} needs a package that is not installed: {exc}") from None
            entry = getattr(module, attr) if attr else module
        _loaded[key] = entry
    return _loaded[key]


def executor_sections() -> dict[str, type]:
    """``name -> section dataclass`` of every registered executor that has a section, in registry order."""
    out: dict[str, type] = {}
    for name in EXECUTORS:
        try:
            section = getattr(executor_entry(name), "section", None)
        except ConfigError:  # its module cannot be imported here: no section to read
            continue
        if section is not None:
            out[name] = section
    return out


def check_executor_config(cfg: Any) -> None:
    """``cfg.executor`` is registered, and every registered executor's section passes its ``check_config``."""
    check_executor_name(getattr(cfg, "executor", "local"))
    for name in EXECUTORS:
        try:
            check = getattr(executor_entry(name), "check_config", None)
        except ConfigError:
            continue
        if check is not None:
            check(cfg)


def executor_names() -> tuple[str, ...]:
    """The valid values of ``executor:``."""
    return tuple(EXECUTORS)


def check_executor_name(name: Any, key: str = "executor") -> str:
    """``name`` when it is a registered executor, else a :class:`ConfigError` listing the valid ones."""
    if not isinstance(name, str) or name not in EXECUTORS:
        raise one_of(key, name, executor_names())
    return name


def executor_factory(name: str) -> Any:
    """The ``from_config`` function of the executor called ``name`` (its module is imported now)."""
    entry = executor_entry(name)
    return getattr(entry, "from_config", entry)


def make_executor_from_config(cfg: Any, *, parallel: bool, accelerator: str) -> Any:
    """Build the executor that ``cfg.executor`` names."""
    return executor_factory(getattr(cfg, "executor", "local"))(cfg, parallel=parallel, accelerator=accelerator)


def job_states(folders: Any) -> dict[Any, str]:
    """``queued`` / ``running`` / ``finished`` (or the scheduler's final state) of the jobs that executors
    recorded in these run folders (the ``executor`` entry of ``run_info.json``).

    Each executor named in a record is asked through the optional ``job_states(folders)`` function of
    its module; folders without a record, or whose executor cannot say, are left out.
    """
    from pathlib import Path

    by_executor: dict[str, list[Path]] = {}
    for folder in folders:
        entry = executor_record(folder)
        if entry.get("name") in EXECUTORS:
            by_executor.setdefault(entry["name"], []).append(Path(folder))
    states: dict[Any, str] = {}
    for name, group in by_executor.items():
        try:
            entry = executor_entry(name)
        except ConfigError:
            continue
        if hasattr(entry, "job_states"):
            states.update(entry.job_states(group))
    return states
