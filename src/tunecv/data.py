"""``SplitDataModule``: write ``load()``, get test split, folds and dataloaders.

A subclass returns the full dataset and one metadata row per sample; the base class applies the
``split:`` config (test split, then the fold of what remains, via :mod:`tunecv.splits`) and serves the
train / val / test dataloaders.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

import lightning as L
from torch.utils.data import DataLoader, Dataset, Subset

from tunecv import splits
from tunecv.config import SplitConfig
from tunecv.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SplitDataModule"]


class SplitDataModule(L.LightningDataModule):
    """A LightningDataModule whose splits come from the ``split:`` config.

    Subclasses implement :meth:`load` and pass ``batch_size`` / ``num_workers`` on to this ``__init__``.
    tunecv calls :meth:`configure_split` with the run's split, fold and seed before fitting.

    Args:
        batch_size: samples per batch in every dataloader.
        num_workers: dataloader worker processes.
        pin_memory: forwarded to the dataloaders.
        val_batch_size: batch size of the validation and test loaders (default: ``batch_size``).
        collate_fn: merges a list of samples into a batch in every loader (default: torch's
            ``default_collate``). A subclass may define a ``collate_fn(self, samples)`` method instead;
            this argument, when given, wins over it.
    """

    def __init__(
        self,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool = False,
        val_batch_size: Optional[int] = None,
        collate_fn: Optional[Callable[[list[Any]], Any]] = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise DataError(f"`data.init_args.batch_size` must be >= 1; got {batch_size}")
        if num_workers < 0:
            raise DataError(f"`data.init_args.num_workers` must be >= 0; got {num_workers}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.val_batch_size = val_batch_size or batch_size
        if collate_fn is not None:
            if not callable(collate_fn):
                raise DataError(f"`data.init_args.collate_fn` must be a function (samples) -> batch; got {collate_fn!r}")
            self.collate_fn = collate_fn  # an instance attribute: wins over a subclass's collate_fn method
        self.split = SplitConfig()
        self.fold = 0
        self.seed = 42
        self._dataset: Optional[Dataset] = None
        self._metadata: Optional[pd.DataFrame] = None
        self._indices: Optional[splits.SplitIndices] = None

    # -- the one method a user writes -------------------------------------------------------------------
    def load(self) -> tuple[Dataset, pd.DataFrame]:
        """The full dataset, and one metadata row per sample in the same order."""
        raise NotImplementedError(f"{type(self).__name__} must implement load() -> (dataset, metadata)")

    # -- called by tunecv ---------------------------------------------------------------------------------
    def configure_split(self, split: SplitConfig, fold: int = 0, seed: int = 42) -> None:
        """Choose the split, fold and seed of this run (resets computed indices)."""
        self.split = split
        self.fold = fold
        self.seed = seed
        self._indices = None

    def prepare_split(self) -> splits.SplitIndices:
        """Load the data (once) and compute this run's indices; raises :class:`DataError` on bad input."""
        if self._dataset is None:
            dataset, metadata = self.load()
            if len(metadata) != len(dataset):  # type: ignore[arg-type]
                raise DataError(f"{type(self).__name__}.load() must return one metadata row per sample; "
                                f"got {len(metadata)} rows for {len(dataset)} samples")  # type: ignore[arg-type]
            self._dataset, self._metadata = dataset, metadata
        if self._indices is None:
            assert self._metadata is not None
            splits.check_split(self._metadata, self.split)
            self._indices = splits.split_indices(self._metadata, self.split, self.fold, self.seed)
        return self._indices

    @property
    def metadata(self) -> pd.DataFrame:
        """The metadata returned by :meth:`load` (loads on first use)."""
        self.prepare_split()
        assert self._metadata is not None
        return self._metadata

    @property
    def indices(self) -> splits.SplitIndices:
        """Positional indices of this run's train / val / test samples."""
        return self.prepare_split()

    @property
    def has_test(self) -> bool:
        """Whether the split holds out a test set."""
        return len(self.prepare_split().test) > 0

    # -- LightningDataModule -------------------------------------------------------------------------------
    def setup(self, stage: Optional[str] = None) -> None:
        idx = self.prepare_split()
        assert self._dataset is not None
        self.train_set = Subset(self._dataset, idx.train.tolist())
        self.val_set = Subset(self._dataset, idx.val.tolist())
        self.test_set = Subset(self._dataset, idx.test.tolist())

    def _loader(self, dataset: Dataset, shuffle: bool, batch_size: int) -> DataLoader:
        import torch

        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            generator=generator,
            collate_fn=getattr(self, "collate_fn", None),
        )

    def train_dataloader(self) -> Any:
        return self._loader(self.train_set, True, self.batch_size)

    def val_dataloader(self) -> Any:
        return self._loader(self.val_set, False, self.val_batch_size)

    def test_dataloader(self) -> Any:
        if len(self.test_set) == 0:
            raise DataError("the split has no test set (`split.test_split` is 'none')")
        return self._loader(self.test_set, False, self.val_batch_size)
