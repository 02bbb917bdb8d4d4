"""Datasets from config: any ``torch.utils.data.Dataset`` by ``class_path``, with optional metadata.

:class:`DatasetDataModule` is a :class:`~tunecv.data.SplitDataModule` whose ``load()`` builds a dataset
from its ``{class_path, init_args}`` spec and reads one metadata row per sample from a parquet or CSV
file (for region and stratified folds). :class:`DigitsDataset` is a small dataset to try it with.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import torch
from torch.utils.data import Dataset

from tunecv.build import instantiate
from tunecv.data import SplitDataModule
from tunecv.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DatasetDataModule", "DigitsDataset", "read_metadata"]

KEY = "data.init_args"


def read_metadata(path: Union[str, os.PathLike]) -> pd.DataFrame:
    """Read a metadata table from a parquet or CSV file.

    Args:
        path: a ``.parquet`` / ``.pq`` or ``.csv`` / ``.tsv`` file, one row per sample in dataset order.

    Returns:
        The metadata; a ``sample_id`` column, when present, gives the sample ids of ``test_split: sample``.

    Raises:
        DataError: the file is missing or of an unknown kind.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"`{KEY}.metadata` must name an existing parquet or CSV file; got {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".csv", ".tsv"):
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    raise DataError(f"`{KEY}.metadata` must be a .parquet, .pq, .csv or .tsv file; got {str(path)!r}")


class DatasetDataModule(SplitDataModule):
    """A SplitDataModule for any ``Dataset``, given by ``class_path`` in the config.

    In a config:

    ```yaml
    data:
      class_path: tunecv.datasets.DatasetDataModule
      init_args:
        dataset: {class_path: my_pkg.MyDataset, init_args: {root: /data/x}}
        metadata: /data/x/metadata.parquet    # optional: columns for region / stratified folds
        batch_size: 64
    ```

    The metadata comes from, in this order: the ``metadata`` file; the dataset's own ``metadata``
    attribute (a DataFrame, one row per sample); else a frame of sample ids ``0..n-1`` only, which is
    enough for ``kfold`` / ``random`` splits.

    Args:
        dataset: the dataset, as ``{class_path, init_args}`` (or a dotted path); from Python a
            ``Dataset`` instance also works. It is built once, on first use.
        metadata: a parquet or CSV file with one row per sample, in dataset order.
        batch_size: samples per batch.
        num_workers: dataloader workers.
        pin_memory: forwarded to the dataloaders.
        val_batch_size: batch size of the validation and test loaders (default: ``batch_size``).
    """

    def __init__(
        self,
        dataset: Union[Dataset, str, dict[str, Any]],
        metadata: Optional[str] = None,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool = False,
        val_batch_size: Optional[int] = None,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory,
                         val_batch_size=val_batch_size)
        if not isinstance(dataset, (str, Mapping, Dataset)) and not hasattr(dataset, "__getitem__"):
            raise DataError(f"`{KEY}.dataset` must be {{class_path: ..., init_args: {{...}}}}; got {dataset!r}")
        self.dataset_spec = dataset
        self.metadata_path = metadata

    def build_dataset(self) -> Any:
        """The dataset of the spec (a new instance each call)."""
        spec = self.dataset_spec
        if isinstance(spec, (str, Mapping)):
            return instantiate({"class_path": spec} if isinstance(spec, str) else spec, object, f"{KEY}.dataset")
        return spec

    def load(self) -> tuple[Any, pd.DataFrame]:
        """The dataset and its metadata (file, else the dataset's ``metadata``, else sample ids)."""
        import pandas as pd

        dataset = self.build_dataset()
        try:
            n = len(dataset)
        except TypeError:
            raise DataError(f"`{KEY}.dataset` must have a length (a map-style Dataset); "
                            f"{type(dataset).__name__} has none") from None
        if self.metadata_path is not None:
            metadata = read_metadata(self.metadata_path)
            source = repr(str(self.metadata_path))
        elif isinstance(getattr(dataset, "metadata", None), pd.DataFrame):
            metadata, source = dataset.metadata, f"{type(dataset).__name__}.metadata"
        else:
            return dataset, pd.DataFrame(index=pd.RangeIndex(n, name="sample_id"))
        if len(metadata) != n:
            raise DataError(f"`{KEY}.metadata` must have one row per sample: {source} has {len(metadata)} rows "
                            f"for {n} samples")
        return dataset, metadata


class DigitsDataset(Dataset):
    """scikit-learn's 8x8 digits as a ``Dataset`` usable from YAML (offline, 1,797 samples).

    An item is ``(x, targets)`` with ``x`` the 64 pixels scaled to ``[0, 1]``. The targets are, by name:
    ``digit``, the class (int64), and ``ink``, the standardized mean pixel value (float32), a regression
    target for two-headed examples.

    Args:
        targets: the targets each item carries, in order.
        as_dict: targets as a dict by name (default); else a tuple in order, or the bare tensor when
            there is one target.
        limit: keep only the first ``limit`` samples (quick tests).
        n_regions: samples are dealt into this many pseudo-regions (by order) for region folds.

    Attributes:
        metadata: one row per sample: ``label`` (the digit) and ``region``.
    """

    TARGETS = ("digit", "ink")

    def __init__(self, targets: Union[str, list[str]] = "digit", as_dict: bool = True, limit: Optional[int] = None,
                 n_regions: int = 10) -> None:
        import pandas as pd
        from sklearn.datasets import load_digits

        names = [targets] if isinstance(targets, str) else list(targets)
        bad = [t for t in names if t not in self.TARGETS]
        if bad or not names:
            raise DataError(f"`{KEY}.dataset.init_args.targets` must list some of {', '.join(self.TARGETS)}; "
                            f"got {targets!r}")
        x, y = load_digits(return_X_y=True)
        if limit is not None:
            x, y = x[:limit], y[:limit]
        self.x = torch.tensor(x / 16.0, dtype=torch.float32)
        ink = self.x.mean(dim=1)
        columns = {"digit": torch.tensor(y, dtype=torch.long), "ink": (ink - ink.mean()) / ink.std()}
        self.targets = {name: columns[name] for name in names}
        self.as_dict = as_dict
        self.metadata = pd.DataFrame({"label": y, "region": [f"r{i % n_regions}" for i in range(len(y))]},
                                     index=pd.RangeIndex(len(y), name="sample_id"))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any]:
        values = {name: t[i] for name, t in self.targets.items()}
        if self.as_dict:
            return self.x[i], values
        if len(values) == 1:
            return self.x[i], next(iter(values.values()))
        return self.x[i], tuple(values.values())
