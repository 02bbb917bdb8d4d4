"""Fold methods: the values of ``split.fold_method`` (and ``nested.fold_method``).

A fold method cuts the samples left after the test split into ``(train, val)`` folds. It is a subclass
of :class:`FoldMethod`; the built-ins (one module each, on scikit-learn splitters) are ``none``,
``kfold``, ``shuffle``, ``stratified``, ``region`` and ``region-stratified``. A user's own is registered
with one line, ``tunecv.register_fold_method("name", MyFolds)``, or named by its dotted path in the config
(``split: {fold_method: my_pkg.folds.MyFolds}``). See docs/extending.md.

Importing this package is light: a built-in's module (and scikit-learn) is imported when it is used.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

from tunecv.registry import Registry

__all__ = ["FOLD_METHODS", "FoldMethod", "fold_method", "folds_run", "register_fold_method"]


class FoldMethod:
    """One way of cutting samples into folds; built for one ``split:`` section (``self.split``).

    Class attributes say what the method reads, so that tunecv checks the config and the metadata for it:

    - ``makes_folds``: False for a method that trains and validates on the same samples (``none``).
    - ``uses_groups``: it reads ``split.group_column`` (a ``random`` test split then holds out groups).
    - ``stratify``: ``"required"`` (``split.stratify_column`` must be set), ``"optional"`` (used when
      set) or ``"never"``.
    """

    makes_folds: bool = True
    uses_groups: bool = False
    stratify: str = "never"

    def __init__(self, split: Any) -> None:
        self.split = split

    def fold_count(self) -> int:
        """How many folds it makes: ``split.total_folds`` (1 for a method that makes none)."""
        return int(self.split.total_folds) if self.makes_folds else 1

    def split_positions(self, n: int, y: Optional[Any], groups: Optional[Any],
                        seed: int) -> Iterable[tuple[Any, Any]]:
        """The folds of ``n`` samples: ``(train, val)`` position arrays into ``range(n)``, one per fold.

        ``y`` (class codes of ``stratify_column``) is given when the method stratifies, ``groups`` (group
        codes of ``group_column``) when it uses groups; ``seed`` is the run's seed.
        """
        raise NotImplementedError

    def check(self, metadata: Any, rest: Any, after: str) -> None:
        """Raise :class:`~tunecv.errors.DataError` when the samples ``rest`` of ``metadata`` cannot be cut
        (called before any run starts; ``after`` is " after the test split" or ""). Optional."""


FOLD_METHODS = Registry("split.fold_method", "a fold method", {
    "none": "tunecv.folds.none:NoFolds",
    "kfold": "tunecv.folds.kfold:KFoldMethod",
    "shuffle": "tunecv.folds.shuffle:ShuffleMethod",
    "stratified": "tunecv.folds.stratified:StratifiedMethod",
    "region": "tunecv.folds.region:RegionMethod",
    "region-stratified": "tunecv.folds.region_stratified:RegionStratifiedMethod",
})


def register_fold_method(name: str, cls: Any) -> None:
    """Register a :class:`FoldMethod` subclass (or ``"module:Class"``) as ``split.fold_method: name``."""
    FOLD_METHODS.register(name, cls)


def fold_method(split: Any, key: str = "split.fold_method") -> FoldMethod:
    """The fold method of a ``split:`` section, built for it."""
    return FOLD_METHODS.load_class(split.fold_method, FoldMethod, key)(split)


def folds_run(split: Any, n_folds: Optional[int] = None) -> int:
    """How many folds a cross-validation runs: the first ``n_folds`` (``cv.n_folds``, ``nested.n_folds``) when
    set, else every fold of ``split`` (:meth:`FoldMethod.fold_count`). The one definition of the fold count."""
    return int(n_folds) if n_folds else fold_method(split).fold_count()
