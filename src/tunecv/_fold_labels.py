"""Labels and groups of a plain LightningDataModule's pooled samples (``split.labels``, ``split.groups``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
from torch.utils.data import Subset

from tunecv._fold_pool import Pool
from tunecv.config import import_class
from tunecv.errors import ConfigError, DataError

__all__ = ["LABELS_HELP", "import_function", "sample_values"]

LABELS_HELP = ("a method or attribute of {cls} or of its datasets giving one {what} per sample, or a dotted "
               "function path pkg.mod.fn(dataset) -> {what}s")


def sample_values(inner: Any, pool: Pool, spec: str, key: str) -> np.ndarray:
    """One label (or group) per pooled sample, from ``spec`` (the lookup order is in :mod:`tunecv.fold_data`'s doc)."""
    n, name = sum(pool.sizes), type(inner).__name__
    if "." in spec:
        fn = import_function(spec, key)
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


def _from_stages(value: Mapping, pool: Pool, key: str, where: str) -> Any:
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


def import_function(spec: str, key: str) -> Any:
    try:
        fn = import_class(spec, f"split.{key}")
    except ConfigError as exc:
        raise DataError(str(exc)) from None
    if not callable(fn):
        raise DataError(f"`split.{key}` must be a function pkg.mod.fn(dataset) -> one value per sample; got {spec!r}, "
                        f"a {type(fn).__name__}")
    return fn

