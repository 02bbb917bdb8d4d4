"""Registries by name: the one shape of every extension point (executors, fold methods, scoring
aggregations, trackers).

A config value of an extension point is either a **registered name** (``kfold``, ``harmonic``, ``csv``,
``slurm``) or the **dotted import path** of a user's own class (``my_pkg.folds.EveryOther``): a value with
a dot that is not a registered name is imported. A name is registered with one line::

    tunecv.register_fold_method("every-other", EveryOther)        # or "my_pkg.folds:EveryOther"

Built-ins are registered as ``"module:attribute"`` strings, so that a module (and its own dependencies:
scikit-learn, wandb, submitit, ray) is imported only when its entry is used.

An unknown value is a :class:`~tunecv.errors.ConfigError` of one line that names the full dotted key, the
value and the registered names; never a fallback. A leaf module: it imports only :mod:`tunecv.errors`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, Optional, Union

from tunecv.errors import ConfigError

__all__ = ["Registry"]

Entry = Union[str, Any]


class Registry:
    """Names of one extension point mapped to their implementations.

    Args:
        key: the full dotted config key whose values it holds (``split.fold_method``), for errors.
        what: what an entry is, in words (``a fold method``), for errors.
        entries: the built-ins, ``name -> "module:attribute"`` (imported when first used).
    """

    def __init__(self, key: str, what: str, entries: Optional[Mapping[str, Entry]] = None) -> None:
        self.key = key
        self.what = what
        self._entries: dict[str, Entry] = dict(entries or {})
        self._listeners: list[Callable[[], None]] = []
        self.version = 0  # bumped by every registration (caches keyed on it are rebuilt)

    def names(self) -> tuple[str, ...]:
        """The registered names, built-ins first."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def register(self, name: str, obj: Entry) -> None:
        """Register ``obj`` (a class, a module, or ``"module:attribute"``) as ``name``; a name taken
        already is replaced (a user's own ``kfold`` wins over the built-in)."""
        if not isinstance(name, str) or not name or "." in name:
            raise ConfigError(f"`{self.key}`: a registered name must be a non-empty string without a dot "
                              f"(dots mark class paths); got {name!r}")
        self._entries[name] = obj
        self.version += 1
        for listener in list(self._listeners):
            listener()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after each registration."""
        self._listeners.append(listener)

    def check(self, value: Any, key: Optional[str] = None) -> str:
        """``value`` when it is a registered name or an importable dotted path, else a one-line error."""
        self.load(value, key)
        return value

    def load(self, value: Any, key: Optional[str] = None) -> Any:
        """The implementation that ``value`` names (its module is imported now).

        Raises:
            ConfigError: ``value`` is neither a registered name nor an importable dotted path, or a
                registered entry's module needs a package that is not installed.
        """
        key = key or self.key
        if isinstance(value, str) and value in self._entries:
            entry = self._entries[value]
            return _resolve(entry, key, value) if isinstance(entry, str) else entry
        if isinstance(value, str) and "." in value.strip(".") and " " not in value:
            return _import_path(value, key, self.what)
        raise ConfigError(f"`{key}` must be one of {', '.join(self._entries)}; got {value!r} (or the dotted "
                          f"path of {self.what} class: my_pkg.module.MyClass)")

    def load_class(self, value: Any, base: type, key: Optional[str] = None) -> type:
        """:meth:`load`, checked to be a subclass of ``base`` (the extension point's base class)."""
        key = key or self.key
        cls = self.load(value, key)
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise ConfigError(f"`{key}` must name a subclass of {base.__module__}.{base.__qualname__}; got "
                              f"{value!r} ({cls!r})")
        return cls


def _resolve(entry: str, key: str, name: str) -> Any:
    """A built-in ``"module:attribute"`` (or ``"module"``) entry, imported."""
    module_name, _, attr = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"`{key}` {name!r} needs a package that is not installed: {exc}") from None
    return getattr(module, attr) if attr else module


def _import_path(path: str, key: str, what: str) -> Any:
    """``my_pkg.module.MyClass`` (or ``my_pkg.module:MyClass``), imported."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"`{key}` must be a registered name or the importable path of {what} class; got "
                          f"{path!r}: {type(exc).__name__}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"`{key}` must be a registered name or the importable path of {what} class; got "
                          f"{path!r}: module {module_name!r} has no attribute {attr!r}") from None
