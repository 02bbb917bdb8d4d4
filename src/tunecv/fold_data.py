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
import inspect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import lightning as L
import numpy as np
import pandas as pd
from torch.utils.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
)

from tunecv import splits
from tunecv.config import SplitConfig
from tunecv.errors import ConfigError, DataError
from tunecv.folds import FOLD_METHODS, fold_method

__all__ = ["FoldedBase", "FoldedDataModule", "check", "for_run", "pool_metadata", "pooled", "wrap"]

# Hooks the model may define instead of the data module: the wrapper has them only where the inner has them,
# so that Lightning still picks the model's own when the data module does not override them.
BATCH_HOOKS = ("on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer")
# DataLoader arguments carried from a project's loader (those this torch has); sampling is handled apart.
CARRIED = ("num_workers", "collate_fn", "pin_memory", "timeout", "worker_init_fn", "multiprocessing_context",
           "generator", "prefetch_factor", "persistent_workers", "pin_memory_device", "in_order")
LABELS_HELP = ("a method or attribute of {cls} or of its datasets giving one {what} per sample, or a dotted "
               "function path pkg.mod.fn(dataset) -> {what}s")
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
    from tunecv.data import SplitDataModule

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
    from tunecv.data import SplitDataModule

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
            _import_function(spec, key)


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
        self._pool: Optional[_Pool] = None
        self._indices: Optional[splits.SplitIndices] = None
        for hook in BATCH_HOOKS:
            if _overrides(inner, hook):
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

    def pooled(self) -> _Pool:
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
        return self.holds_out or _overrides(self._inner, "test_dataloader")

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
        return _fold_loader(Subset(pool.dataset, idx.train.tolist()), pool.train_loader, train=True,
                            where=f"{type(self._inner).__name__}.train_dataloader()")

    def val_dataloader(self) -> Any:
        if self.split.fold_method == "none" and not self.holds_out:
            return self._inner.val_dataloader()
        pool, idx = self.pooled(), self.prepare_fold()
        settings = pool.val_loader if pool.val_loader is not None else pool.train_loader
        return _fold_loader(Subset(pool.dataset, idx.val.tolist()), settings, train=False,
                            where=f"{type(self._inner).__name__}.val_dataloader()",
                            keep_drop_last=pool.val_loader is not None)

    def test_dataloader(self) -> Any:
        if not self.holds_out:
            return self._inner.test_dataloader()
        pool, idx = self.pooled(), self.prepare_fold()
        settings = pool.val_loader if pool.val_loader is not None else pool.train_loader
        return _fold_loader(Subset(pool.dataset, idx.test.tolist()), settings, train=False,
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
    _log_hyperparams = _delegated("_log_hyperparams")
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


def _overrides(obj: Any, name: str) -> bool:
    """Whether ``type(obj)`` defines ``name`` itself rather than taking Lightning's default."""
    fn = getattr(type(obj), name, None)
    if fn is None:
        return False
    module = getattr(getattr(fn, "__func__", fn), "__module__", None) or ""
    return not module.startswith(("lightning.pytorch.", "pytorch_lightning."))


# -- the pool ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Pool:
    """The datasets a module gives for fit, end to end, and the loaders whose settings the folds keep."""

    parts: list[Dataset]
    n_train_parts: int
    train_loader: DataLoader
    val_loader: Optional[DataLoader]

    @functools.cached_property
    def dataset(self) -> ConcatDataset:
        return ConcatDataset(self.parts)

    @property
    def sizes(self) -> list[int]:
        return [len(p) for p in self.parts]  # type: ignore[arg-type]


def pooled(inner: Any, fold_method: str = "kfold") -> _Pool:
    """The datasets of ``inner``'s train loaders, then of its val loaders, each once (``inner`` set up).

    A loader sampling its dataset by a ``SubsetRandomSampler`` gives ``Subset(dataset, sampler.indices)``.

    Raises:
        DataError: a loader is not a DataLoader (or list / dict of them), reads an IterableDataset or a
            dataset without a length, or the pool is empty.
    """
    name = type(inner).__name__
    train = _loaders(inner.train_dataloader(), f"{name}.train_dataloader()")
    if not train:
        raise DataError(f"`data` must give training data to cut folds from: {name}.train_dataloader() returned "
                        f"no loader; got fold_method {fold_method!r}")
    val = _loaders(inner.val_dataloader(), f"{name}.val_dataloader()") if _overrides(inner, "val_dataloader") else []
    for stage, loaders in (("train", train), ("val", val)):
        if len(loaders) > 1:
            warnings.warn(f"{name} gives {len(loaders)} {stage} loaders: their datasets are pooled and the fold's "
                          f"one {stage} loader keeps the settings of the first", stacklevel=3)
    parts: list[Dataset] = []
    seen: set[int] = set()
    n_train = 0
    for i, loader in enumerate([*train, *val]):
        part = _samples_of(loader, name, fold_method)
        if id(part) not in seen:
            seen.add(id(part))
            parts.append(part)
        if i == len(train) - 1:
            n_train = len(parts)
    pool = _Pool(parts, n_train, train[0], val[0] if val else None)
    if sum(pool.sizes) == 0:
        raise DataError(f"`data` must give samples to cut folds from: the train and val loaders of {name} are "
                        f"empty; got fold_method {fold_method!r}")
    return pool


def _loaders(obj: Any, where: str) -> list[DataLoader]:
    """The DataLoaders of what a ``*_dataloader()`` hook returned (one, a list, a dict, a CombinedLoader)."""
    if obj is None:
        return []
    if isinstance(obj, DataLoader):
        return [obj]
    if hasattr(obj, "flattened") and not isinstance(obj, (Mapping, Sequence)):  # Lightning's CombinedLoader
        obj = obj.flattened
    if isinstance(obj, Mapping):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [loader for item in obj for loader in _loaders(item, where)]
    raise DataError(f"`data` must return a torch DataLoader, or a list or dict of them, from {where} to be "
                    f"cross-validated; got {type(obj).__name__}")


def _samples_of(loader: DataLoader, name: str, fold_method: str) -> Dataset:
    dataset = loader.dataset
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
        kind = "an IterableDataset" if isinstance(dataset, IterableDataset) else "a dataset without __len__"
        raise DataError(f"`split.fold_method` must be none for {name}: a loader of it reads {kind} "
                        f"({type(dataset).__name__}), which has no indices to cut folds from (fold methods "
                        f"need a map-style Dataset: {', '.join(m for m in FOLD_METHODS.names() if m != 'none')}); "
                        f"got {fold_method!r}")
    sampler = _sampler_of(loader)
    if type(sampler) is SubsetRandomSampler:
        return Subset(dataset, [int(i) for i in sampler.indices])
    return dataset


def _sampler_of(loader: DataLoader) -> Any:
    """The per-sample sampler of a loader (the one inside a plain BatchSampler), or its custom batch sampler."""
    batch_sampler = loader.batch_sampler
    if batch_sampler is not None and type(batch_sampler) is not BatchSampler:
        return batch_sampler
    return loader.sampler


# -- the fold's loaders ------------------------------------------------------------------------------------

@functools.cache
def _loader_parameters() -> frozenset[str]:
    return frozenset(inspect.signature(DataLoader.__init__).parameters)


def _fold_loader(subset: Subset, like: DataLoader, train: bool, where: str, keep_drop_last: bool = True) -> DataLoader:
    """A DataLoader over ``subset`` with the settings of the project's loader ``like``."""
    kwargs = {k: getattr(like, k) for k in CARRIED if k in _loader_parameters() and hasattr(like, k)}
    if not kwargs.get("num_workers"):
        kwargs.pop("prefetch_factor", None)  # torch refuses it without workers
    kwargs.update(_sampling(like, train, where))
    if not keep_drop_last:
        kwargs["drop_last"] = False  # the train loader's drop_last would drop validation samples
    sampler_cls = kwargs.pop("sampler_cls", None)
    if sampler_cls is not None:
        kwargs["sampler"] = sampler_cls(subset)
    return DataLoader(subset, **kwargs)


def _sampling(like: DataLoader, train: bool, where: str) -> dict[str, Any]:
    """batch_size, drop_last and shuffle (or a sampler) of the fold's loader, from the project's loader."""
    sampler = _sampler_of(like)
    batch_sampler = like.batch_sampler
    if batch_sampler is not None and type(batch_sampler) is not BatchSampler:  # the project's own batching
        size = getattr(batch_sampler, "batch_size", None)
        _warn_custom(where, batch_sampler, train, f"batch_size {size if isinstance(size, int) else 1}")
        return {"batch_size": size if isinstance(size, int) else 1, "drop_last": bool(getattr(
            batch_sampler, "drop_last", False)), "shuffle": train}
    size, drop_last = like.batch_size, like.drop_last
    if batch_sampler is not None and like.batch_size is None:  # given as batch_sampler=BatchSampler(...)
        size, drop_last = batch_sampler.batch_size, batch_sampler.drop_last
    out: dict[str, Any] = {"batch_size": size, "drop_last": drop_last, "shuffle": train}
    if type(sampler) not in (SequentialSampler, RandomSampler, SubsetRandomSampler):
        _warn_custom(where, sampler, train, "")
    elif train and type(sampler) is RandomSampler:
        if sampler.replacement:  # sampling with replacement carries over; num_samples (of the whole set) does not
            out.pop("shuffle")
            out["sampler_cls"] = functools.partial(RandomSampler, replacement=True, generator=sampler.generator)
        elif like.generator is None and sampler.generator is not None:
            out["generator"] = sampler.generator
    return out


def _warn_custom(where: str, sampler: Any, train: bool, extra: str) -> None:
    instead = "shuffles" if train else "reads in order"
    more = f" with {extra}" if extra else ""
    warnings.warn(f"the {type(sampler).__name__} of {where} samples the project's dataset by its own indices "
                  f"and cannot be re-indexed for a fold: the fold's loader {instead} instead{more}", stacklevel=4)


# -- labels and groups -------------------------------------------------------------------------------------

def _metadata(inner: Any, pool: _Pool, split: SplitConfig) -> tuple[pd.DataFrame, SplitConfig]:
    """One row per pooled sample (its position is its sample id) with the label and group columns the fold
    method uses, and the split that reads them (no test split, the module's test set is its own, unless
    positions are held out: ``split.test_split: sample``)."""
    check(inner, split)
    method, n = fold_method(split), sum(pool.sizes)
    columns: dict[str, Any] = {}
    uses_labels = method.stratify == "required" or (method.stratify == "optional" and bool(split.labels))
    if uses_labels:
        columns[split.labels] = _values(inner, pool, split.labels, "labels")
    if method.uses_groups:
        columns[split.groups] = _values(inner, pool, split.groups, "groups")
    meta = pd.DataFrame(columns, index=pd.RangeIndex(n))
    held_out = split.test_split == "sample"  # positions of the pool (tunecv nested's outer fold)
    inner_split = dataclasses.replace(split, test_split="sample" if held_out else "none",
                                      test_split_by=split.test_split_by if held_out else None,
                                      stratify_column=split.labels if uses_labels else None,
                                      group_column=split.groups or "")
    return meta, inner_split


def _values(inner: Any, pool: _Pool, spec: str, key: str) -> np.ndarray:
    """One label (or group) per pooled sample, from ``spec`` (see the module doc)."""
    n, name = sum(pool.sizes), type(inner).__name__
    if "." in spec:
        fn = _import_function(spec, key)
        got = _concat([_one_per_sample(fn(p), len(p), key, f"{spec}({type(p).__name__})") for p in pool.parts])
        return _one_per_sample(got, n, key, spec)
    found = getattr(inner, spec, _MISSING)
    if found is not _MISSING:
        value = found() if callable(found) else found
        if isinstance(value, Mapping):
            value = _from_stages(value, pool, key, f"{name}.{spec}")
        return _one_per_sample(value, n, key, f"{name}.{spec}")
    got = [_attribute_of(p, spec) for p in pool.parts]
    missing = [type(p).__name__ for p, v in zip(pool.parts, got, strict=True) if v is _MISSING]
    if missing:
        what = key[:-1]
        raise DataError(f"`split.{key}` must be {LABELS_HELP.format(cls=name, what=what)}: neither {name} nor its "
                        f"dataset{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                        f"ha{'ve' if len(missing) > 1 else 's'} it; got {spec!r}")
    parts = [_one_per_sample(v, len(p), key, f"{type(p).__name__}.{spec}") for p, v in zip(pool.parts, got, strict=True)]
    return _concat(parts)


_MISSING = object()


def _attribute_of(dataset: Any, spec: str) -> Any:
    found = getattr(dataset, spec, _MISSING)
    if found is not _MISSING:
        return found() if callable(found) else found
    if isinstance(dataset, Subset):  # e.g. random_split: the parent dataset's values at the subset's indices
        parent = _attribute_of(dataset.dataset, spec)
        if parent is not _MISSING:
            return _one_per_sample(parent, len(dataset.dataset), "", spec, check=False)[list(dataset.indices)]
    return _MISSING


def _from_stages(value: Mapping, pool: _Pool, key: str, where: str) -> Any:
    stages = ["train", "val"] if pool.n_train_parts < len(pool.parts) else ["train"]
    if sorted(value) != sorted(stages):
        raise DataError(f"`split.{key}` must give one value per pooled sample, or a dict with keys "
                        f"{' and '.join(repr(s) for s in stages)}; {where} gave keys {sorted(map(str, value))}")
    return _concat([_one_per_sample(value[s], None, key, f"{where}[{s!r}]") for s in stages])


def _one_per_sample(value: Any, n: Optional[int], key: str, where: str, check: bool = True) -> np.ndarray:
    """``value`` as a 1-D array of ``n`` values (tensors and lists of 0-d tensors become plain values)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise DataError(f"`split.{key}` must give one value per sample ({n} samples) from {where}; got "
                        f"{type(value).__name__} {value!r:.40}")
    items = list(value) if not isinstance(value, np.ndarray) else value
    if not isinstance(items, np.ndarray):
        items = [v.item() if getattr(v, "ndim", None) == 0 and hasattr(v, "item") else v for v in items]
        try:
            array = np.asarray(items)
        except ValueError:  # ragged
            array = np.asarray(items, dtype=object)
    else:
        array = items
    if check and (array.ndim != 1 or (n is not None and len(array) != n)):
        shape = f"shape {array.shape}" if array.ndim != 1 else f"{len(array)} values"
        raise DataError(f"`split.{key}` must give one value per sample ({n} samples) from {where}; got {shape}")
    return array


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    if len(arrays) == 1:
        return arrays[0]
    return np.concatenate([a.astype(object) for a in arrays]) if len({a.dtype for a in arrays}) > 1 \
        else np.concatenate(arrays)


def _import_function(spec: str, key: str) -> Any:
    from tunecv.config import import_class

    try:
        fn = import_class(spec, f"split.{key}")
    except ConfigError as exc:
        raise DataError(str(exc)) from None
    if not callable(fn):
        raise DataError(f"`split.{key}` must be a function pkg.mod.fn(dataset) -> one value per sample; got {spec!r}, "
                        f"a {type(fn).__name__}")
    return fn


def _plain_keys(message: str) -> str:
    """A message of :mod:`tunecv.splits` in the words of a plain module's config (labels and groups keys)."""
    for old, new in (("`split.stratify_column`", "`split.labels`"), ("stratify_column", "split.labels"),
                     ("`split.group_column`", "`split.groups`"), ("group_column", "split.groups")):
        message = message.replace(old, new)
    return message
