"""The pool of a plain LightningDataModule: its train and val datasets end to end, and a fold's loaders cut from it."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Optional

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

from tunecv.errors import DataError
from tunecv.folds import FOLD_METHODS

__all__ = ["CARRIED", "Pool", "fold_loader", "overrides", "pooled"]

# DataLoader arguments carried from a project's loader (those this torch has); sampling is handled apart.
CARRIED = ("num_workers", "collate_fn", "pin_memory", "timeout", "worker_init_fn", "multiprocessing_context",
           "generator", "prefetch_factor", "persistent_workers", "pin_memory_device", "in_order")


def overrides(obj: Any, name: str) -> bool:
    """Whether ``type(obj)`` defines ``name`` itself rather than taking Lightning's default."""
    fn = getattr(type(obj), name, None)
    if fn is None:
        return False
    module = getattr(getattr(fn, "__func__", fn), "__module__", None) or ""
    return not module.startswith(("lightning.pytorch.", "pytorch_lightning."))



@dataclasses.dataclass
class Pool:
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


def pooled(inner: Any, fold_method: str = "kfold") -> Pool:
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
    val = _loaders(inner.val_dataloader(), f"{name}.val_dataloader()") if overrides(inner, "val_dataloader") else []
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
    pool = Pool(parts, n_train, train[0], val[0] if val else None)
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


def fold_loader(subset: Subset, like: DataLoader, train: bool, where: str, keep_drop_last: bool = True) -> DataLoader:
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

