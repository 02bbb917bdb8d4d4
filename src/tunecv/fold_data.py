"""Folds of any LightningDataModule: pool its train and validation data, cut folds, keep its loader settings.

A project's own data module (``train_dataloader`` / ``val_dataloader``, its own ``collate_fn``, samplers
and loader settings) is cross-validated without an adapter: :func:`for_run` wraps it in a
:class:`FoldedDataModule` that

1. sets the module up for fit (``prepare_data()``, then ``setup("fit")``, once);
2. pools the datasets of its train loaders, then of its val loaders (each dataset once; a module without
   ``val_dataloader`` pools its train data alone) into one index space (a ``ConcatDataset``);
3. cuts the pool into folds with ``split.fold_method`` / ``split.total_folds`` and the run's seed, by the
   same scikit-learn splitters as :mod:`tunecv.splits`; labels (``split.labels``) and groups
   (``split.groups``) for stratified and region folds are read from the module, its datasets or a
   function;
4. serves the fold's train loader with the settings of the project's train loader (``shuffle=True``) and
   the fold's val loader with the settings of its val loader (``shuffle=False``): ``collate_fn``,
   ``batch_size``, ``num_workers``, ``pin_memory``, ``drop_last``, ``persistent_workers``,
   ``worker_init_fn``, ``generator``, ``timeout``, ``prefetch_factor``, ``multiprocessing_context``, ...

The project's test and predict loaders, its batch-transfer hooks, ``state_dict`` and ``hparams`` stay the
module's own. A ``pytorch_lightning`` data module gets a ``pytorch_lightning`` wrapper.

Labels and groups (``split.labels``, ``split.groups``), looked up in this order:

- a method or attribute of the data module (a method is called without arguments): one value per pooled
  sample, in pool order, or a dict ``{"train": [...], "val": [...]}`` of the train and val parts;
- an attribute of each pooled dataset (``targets``, ``labels``; a method is called without arguments),
  one value per sample of that dataset; a ``Subset`` without it takes its dataset's values at its indices;
- a dotted path ``pkg.mod.fn``: ``fn(dataset)`` is called on each pooled dataset.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional

import lightning as L
import pandas as pd
from torch.utils.data import Subset

from tunecv import splits
from tunecv._fold_labels import LABELS_HELP, import_function, sample_values
from tunecv._fold_pool import Pool, fold_loader, overrides, pooled
from tunecv.config import SplitConfig
from tunecv.data import SplitDataModule
from tunecv.errors import ConfigError, DataError
from tunecv.folds import fold_method

__all__ = ["FoldedBase", "FoldedDataModule", "check", "for_run", "pool_metadata", "pooled", "wrap"]

# Hooks the model may define instead of the data module: the wrapper has them only where the inner has them,
# so that Lightning still picks the model's own when the data module does not override them.
BATCH_HOOKS = ("on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer")


def _needs(method: Any) -> tuple[str, ...]:
    """The ``split`` keys a fold method needs on a plain LightningDataModule: ``labels`` and / or ``groups``."""
    return (("labels",) if method.stratify == "required" else ()) + (("groups",) if method.uses_groups else ())


# -- the calls tunecv makes -------------------------------------------------------------------------------

def for_run(data: Any, split: SplitConfig, fold: int = 0, seed: int = 42) -> Any:
    """The data module of one run: ``data`` itself, or ``data`` wrapped to serve fold ``fold``.

    Args:
        data: the project's data module (``lightning`` or ``pytorch_lightning``).
        split: the ``split:`` section of the config.
        fold: the run's fold, in ``[0, total_folds - 1]``.
        seed: the run's seed: the folds depend on it.

    Returns:
        ``data`` unchanged when it is a :class:`~tunecv.data.SplitDataModule` (it folds itself) or when
        ``split.fold_method`` is ``none`` with no test split (its own train and val sets); else a
        :class:`FoldedBase` around it (also with ``fold_method: none`` when pool positions are held out as
        the test set, ``split.test_split: sample``: the retrain of an outer tune of ``tunecv nested``).

    Raises:
        DataError: see :func:`check`.
    """
    if isinstance(data, SplitDataModule) or (split.fold_method == "none" and split.test_split == "none"):
        return data
    check(data, split)
    return wrap(data, split, fold, seed)


def check(data: Any, split: SplitConfig) -> None:
    """Refuse a split that ``data`` (a data module, or its class) cannot be cut by, loading no data (cheap).

    Checks, for a plain data module: no ``split.test_split`` (its test set is its own), no
    ``split.stratify_column`` (it has no metadata), ``split.labels`` / ``split.groups`` set where the fold
    method needs them, and dotted function paths importable. For a SplitDataModule: no ``split.labels`` /
    ``split.groups`` (its metadata columns say that). What needs the data (iterable datasets, label counts,
    enough groups) is checked by :meth:`FoldedBase.prepare_fold`.

    Raises:
        DataError: one line naming the config key, the constraint, the value and the valid options.
    """
    cls = data if isinstance(data, type) else type(data)
    name = cls.__name__
    if issubclass(cls, SplitDataModule):
        for key, column in (("labels", "stratify_column"), ("groups", "group_column")):
            if getattr(split, key) is not None:
                raise DataError(f"`split.{key}` is for a plain LightningDataModule; {name} is a SplitDataModule, "
                                f"whose metadata columns give it: use `split.{column}`; got {getattr(split, key)!r}")
        return
    _base_class(cls)
    if split.test_split not in ("none", "sample"):
        raise DataError(f"`split.test_split` must be none for a plain LightningDataModule ({name}): its test set "
                        f"is its own test_dataloader (test_split random and region are for a SplitDataModule; "
                        f"sample holds out positions of its pooled train and val data, as tunecv nested does); "
                        f"got {split.test_split!r}")
    try:
        method = fold_method(split)
    except ConfigError as exc:
        raise DataError(str(exc)) from None
    if not method.makes_folds:
        return
    if split.stratify_column is not None:
        raise DataError(f"`split.stratify_column` names a metadata column of a SplitDataModule; {name} is a plain "
                        f"LightningDataModule: set `split.labels` to "
                        f"{LABELS_HELP.format(cls=name, what='label')}; got {split.stratify_column!r}")
    for key in _needs(method):
        if getattr(split, key) is None:
            what = key[:-1]
            raise DataError(f"`split.{key}` must be set for fold_method {split.fold_method}: "
                            f"{LABELS_HELP.format(cls=name, what=what)}; got None")
    for key in ("labels", "groups"):
        spec = getattr(split, key)
        if spec is not None and "." in spec:
            import_function(spec, key)


def pool_metadata(data: Any, split: SplitConfig) -> tuple[pd.DataFrame, SplitConfig]:
    """One row per sample of ``data``'s pooled train and val data (its position in the pool is its sample id)
    with the labels and groups that ``split`` needs, and the split that reads them (``tunecv nested`` cuts its
    outer folds from it). Sets ``data`` up for fit.

    Raises:
        DataError: see :func:`check` and :meth:`FoldedBase.prepare_fold`.
    """
    check(data, split)
    return _metadata(data, wrap(data, split).pooled(), split)


def wrap(inner: Any, split: SplitConfig, fold: int = 0, seed: int = 42) -> FoldedBase:
    """``inner`` wrapped to serve fold ``fold``: a :class:`FoldedDataModule`, or its ``pytorch_lightning`` twin
    when ``inner`` is a ``pytorch_lightning.LightningDataModule`` (so that a ``pytorch_lightning.Trainer``
    accepts it). No data is loaded until :meth:`FoldedBase.prepare_fold` or ``setup``."""
    return _base_class(inner)(inner, split, fold, seed)


# -- the wrapper ----------------------------------------------------------------------------------------

def _delegated(name: str) -> property:
    """A property that reads and writes the inner module's attribute ``name``."""

    def get(self: FoldedBase) -> Any:
        return getattr(self._inner, name)

    def put(self: FoldedBase, value: Any) -> None:
        if self.__dict__.get("_ready"):  # LightningDataModule.__init__'s defaults must not reach the inner
            setattr(self._inner, name, value)

    return property(get, put, doc=f"The inner module's ``{name}``.")


class FoldedBase:
    """The folding part of the wrapper; :class:`FoldedDataModule` adds ``lightning.LightningDataModule``.

    Attributes not found on the wrapper are looked up on the inner module (``trainer.datamodule.num_classes``
    still works in a model).

    Args:
        inner: the project's data module, already built.
        split: the ``split:`` section of the config.
        fold: which fold this run trains on.
        seed: the run seed (the folds depend on it).
    """

    def __init__(self, inner: Any, split: SplitConfig, fold: int = 0, seed: int = 42) -> None:
        self._ready = False
        self._inner = inner
        super().__init__()  # LightningDataModule's: its attribute writes go nowhere until _ready
        self.split, self.fold, self.seed = split, fold, seed
        self._prepared = False
        self._pool: Optional[Pool] = None
        self._indices: Optional[splits.SplitIndices] = None
        for hook in BATCH_HOOKS:
            if overrides(inner, hook):
                setattr(self, hook, getattr(inner, hook))  # Lightning then calls the inner module's own
        self._ready = True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_inner", "_ready"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    @property
    def inner(self) -> Any:
        """The project's data module."""
        return self._inner

    # -- folds -------------------------------------------------------------------------------------------
    def prepare_fold(self) -> splits.SplitIndices:
        """Set the inner module up for fit (once), pool its data and compute this fold's indices into the pool.

        Raises:
            DataError: the data cannot be folded (an IterableDataset, labels or groups missing or of the
                wrong length, too few samples, classes or groups for ``total_folds``).
        """
        if self._indices is None:
            pool = self.pooled()
            meta, inner_split = _metadata(self._inner, pool, self.split)
            try:
                self._indices = splits.split_indices(meta, inner_split, self.fold, self.seed)
            except DataError as exc:
                raise DataError(_plain_keys(str(exc))) from None
        return self._indices

    def pooled(self) -> Pool:
        """The pooled train and val data of the inner module (sets it up for fit on first use)."""
        if self._pool is None:
            self._set_up_for_fit()
            self._pool = pooled(self._inner, self.split.fold_method)
        return self._pool

    def _set_up_for_fit(self) -> None:
        if self.trainer is None:  # outside a Trainer; in one, Lightning calls prepare_data on the right ranks
            self.prepare_data()
        if not self._fit_set_up:
            self._inner.setup("fit")
            self._fit_set_up = True

    _fit_set_up = False

    @property
    def indices(self) -> splits.SplitIndices:
        """Positions of this fold's train and val samples in the pool (``test`` is empty)."""
        return self.prepare_fold()

    @property
    def has_test(self) -> bool:
        """Whether the run has a test set: samples of the pool held out (``split.test_split: sample``), else the
        inner module's own (it overrides ``test_dataloader``)."""
        return self.holds_out or overrides(self._inner, "test_dataloader")

    @property
    def holds_out(self) -> bool:
        """Whether positions of the pool are held out as the test set (``split.test_split: sample``, given by
        ``tunecv nested``): the folds, and with ``fold_method: none`` the training data, are cut from the rest."""
        return self.split.test_split == "sample"

    # -- LightningDataModule ---------------------------------------------------------------------------
    def prepare_data(self) -> None:
        if not self._prepared:
            self._inner.prepare_data()
            self._prepared = True

    def setup(self, stage: Optional[str] = None) -> None:
        if stage == "test" and self.holds_out:
            self.prepare_fold()
        elif stage not in (None, "fit", "validate"):
            self._inner.setup(stage)
        elif self.split.fold_method == "none" and not self.holds_out:
            self._set_up_for_fit()
        else:
            self.prepare_fold()

    def train_dataloader(self) -> Any:
        if self.split.fold_method == "none" and not self.holds_out:
            return self._inner.train_dataloader()
        pool, idx = self.pooled(), self.prepare_fold()
        return fold_loader(Subset(pool.dataset, idx.train.tolist()), pool.train_loader, train=True,
                            where=f"{type(self._inner).__name__}.train_dataloader()")

    def val_dataloader(self) -> Any:
        if self.split.fold_method == "none" and not self.holds_out:
            return self._inner.val_dataloader()
        pool, idx = self.pooled(), self.prepare_fold()
        settings = pool.val_loader if pool.val_loader is not None else pool.train_loader
        return fold_loader(Subset(pool.dataset, idx.val.tolist()), settings, train=False,
                            where=f"{type(self._inner).__name__}.val_dataloader()",
                            keep_drop_last=pool.val_loader is not None)

    def test_dataloader(self) -> Any:
        if not self.holds_out:
            return self._inner.test_dataloader()
        pool, idx = self.pooled(), self.prepare_fold()
        settings = pool.val_loader if pool.val_loader is not None else pool.train_loader
        return fold_loader(Subset(pool.dataset, idx.test.tolist()), settings, train=False,
                            where=f"{type(self._inner).__name__}.val_dataloader()", keep_drop_last=False)

    def predict_dataloader(self) -> Any:
        return self._inner.predict_dataloader()

    def teardown(self, stage: Optional[str] = None) -> None:
        self._inner.teardown(stage)

    def on_exception(self, exception: BaseException) -> None:
        self._inner.on_exception(exception)

    def state_dict(self) -> dict[str, Any]:
        return self._inner.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._inner.load_state_dict(state_dict)

    # -- attributes that are the inner module's ------------------------------------------------------------
    trainer = _delegated("trainer")
    prepare_data_per_node = _delegated("prepare_data_per_node")
    # Whether Lightning logs the data's hparams is the inner module's (its own save_hyperparameters sets it); the
    # only write here, LightningDataModule.__init__'s default, is not passed on to the inner module.
    _log_hyperparams = property(lambda self: self._inner._log_hyperparams, lambda self, value: None)
    hparams = property(lambda self: self._inner.hparams, doc="The inner module's ``hparams``.")
    hparams_initial = property(lambda self: self._inner.hparams_initial, doc="The inner module's initial hparams.")
    _hparams_name = property(lambda self: self._inner._hparams_name)


class FoldedDataModule(FoldedBase, L.LightningDataModule):
    """One fold of a plain ``lightning.LightningDataModule`` (see :class:`FoldedBase` and the module doc)."""


@functools.cache
def _pl_folded_class() -> type:
    import pytorch_lightning as pl

    return type("PLFoldedDataModule", (FoldedBase, pl.LightningDataModule),
                {"__module__": __name__, "__qualname__": "PLFoldedDataModule",
                 "__doc__": "One fold of a ``pytorch_lightning.LightningDataModule`` (see :class:`FoldedBase`)."})


def __getattr__(name: str) -> Any:  # the pytorch_lightning twin, made on first use (pickle finds it here)
    if name == "PLFoldedDataModule":
        return _pl_folded_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _base_class(data: Any) -> type:
    """The wrapper class for ``data`` (a data module or its class) of the same Lightning package."""
    cls = data if isinstance(data, type) else type(data)
    if issubclass(cls, L.LightningDataModule):
        return FoldedDataModule
    try:
        import pytorch_lightning as pl
    except ImportError:
        pl = None
    if pl is not None and issubclass(cls, pl.LightningDataModule):
        return _pl_folded_class()
    raise DataError(f"`data` must be a LightningDataModule (of lightning or pytorch_lightning) to be "
                    f"cross-validated; got {cls.__module__}.{cls.__qualname__}")


# -- the samples' labels and groups, as the folds of tunecv.splits read them ----------------------------------

def _metadata(inner: Any, pool: Pool, split: SplitConfig) -> tuple[pd.DataFrame, SplitConfig]:
    """One row per pooled sample (its position is its sample id) with the label and group columns the fold
    method uses, and the split that reads them (no test split, the module's test set is its own, unless
    positions are held out: ``split.test_split: sample``)."""
    check(inner, split)
    method, n = fold_method(split), sum(pool.sizes)
    columns: dict[str, Any] = {}
    uses_labels = method.stratify == "required" or (method.stratify == "optional" and bool(split.labels))
    if uses_labels:
        columns[split.labels] = sample_values(inner, pool, split.labels, "labels")
    if method.uses_groups:
        columns[split.groups] = sample_values(inner, pool, split.groups, "groups")
    meta = pd.DataFrame(columns, index=pd.RangeIndex(n))
    held_out = split.test_split == "sample"  # positions of the pool (tunecv nested's outer fold)
    inner_split = dataclasses.replace(split, test_split="sample" if held_out else "none",
                                      test_split_by=split.test_split_by if held_out else None,
                                      stratify_column=split.labels if uses_labels else None,
                                      group_column=split.groups or "")
    return meta, inner_split


def _plain_keys(message: str) -> str:
    """A message of :mod:`tunecv.splits` in the words of a plain module's config (labels and groups keys)."""
    for old, new in (("`split.stratify_column`", "`split.labels`"), ("stratify_column", "split.labels"),
                     ("`split.group_column`", "`split.groups`"), ("group_column", "split.groups")):
        message = message.replace(old, new)
    return message
