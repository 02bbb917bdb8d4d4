"""The executors by name: the values of the ``executor:`` config key.

Each entry maps a name to ``"module:function"``, a function with this signature that builds the
executor from a :class:`~tunecv.config.Config`::

    def from_config(cfg: Config, *, parallel: bool, accelerator: str) -> Executor: ...

``parallel`` says that the strategy shares devices between runs (``cv-parallel`` / ``tune-parallel``)
and ``accelerator`` is the resolved accelerator. The module is imported only when its executor is
chosen, so an executor's own dependencies (submitit, ray) are imported only by the people who use it.

How to add an executor (say ``myqueue``):

1. One module, ``src/tunecv/executors/_myqueue.py``, with a subclass of
   :class:`~tunecv.executors.Executor` (``submit``, ``shutdown``; ``name = "myqueue"``; ``n_slots``;
   ``pinned`` and ``run_overrides()`` if each job gets devices of its own; ``submit_run`` and
   ``reattach`` if its jobs outlive the driver) and its ``from_config`` function, which reads the
   executor's options from ``cfg.myqueue``.
2. One line in :data:`EXECUTORS` below: ``"myqueue": "tunecv.executors._myqueue:from_config",``.

Its options are the ``myqueue:`` section of the config: a frozen dataclass ``MyqueueConfig`` and a field
``myqueue: MyqueueConfig`` in :class:`~tunecv.config.Config` (the config layer types every key, so
that a wrong value is reported with its dotted key before anything runs). The contract tests in
``tests/unit/test_executors.py`` run over every entry of :data:`EXECUTORS`.
"""

from __future__ import annotations

import importlib
from typing import Any

from tunecv.errors import ConfigError, one_of

__all__ = ["EXECUTORS", "executor_factory", "executor_names", "job_states", "make_executor_from_config"]

EXECUTORS: dict[str, str] = {
    "local": "tunecv.executors._local:from_config",
    "slurm": "tunecv.executors._slurm:from_config",
    "ray": "tunecv.executors._ray:from_config",
}


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
    module_name, _, function = EXECUTORS[check_executor_name(name)].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"`executor` {name!r} needs a package that is not installed: {exc}") from None
    return getattr(module, function)


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

    from tunecv.artifacts.run_info import executor_record

    by_executor: dict[str, list[Path]] = {}
    for folder in folders:
        entry = executor_record(folder)
        if entry.get("name") in EXECUTORS:
            by_executor.setdefault(entry["name"], []).append(Path(folder))
    states: dict[Any, str] = {}
    for name, group in by_executor.items():
        module_name = EXECUTORS[name].partition(":")[0]
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, "job_states"):
            states.update(module.job_states(group))
    return states
