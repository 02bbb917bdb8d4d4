# Source: github.com/kouyk/pytorch-lightning-slurm, datamodule/cifar10.py (commit c4308f9).
# Trimmed: torchvision's CIFAR10 download and transforms replaced by a synthetic stand-in (160 random
# 3x8x8 images, 10 classes, same (image, label) pairs); crop/resize/normalisation arguments dropped.
# The init arguments the config and the CLI's links use (batch_size, seed, val_split, ...) are kept.
import os
from typing import Optional, Union

import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, TensorDataset, random_split


class CIFAR10DataModule(LightningDataModule):
    name: str = "cifar10"
    dims: tuple[int, ...] = (3, 8, 8)

    def __init__(
            self,
            data_dir: Optional[str] = None,
            val_split: Union[int, float] = 0.2,
            num_workers: int = 0,
            batch_size: int = 32,
            seed: int = 42,
            shuffle: bool = True,
            pin_memory: bool = True,
            drop_last: bool = False,
    ) -> None:
        super().__init__()
        self.data_dir = data_dir if data_dir is not None else os.getcwd()
        self.val_split = val_split
        self.num_workers = num_workers
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.pin_memory = pin_memory
        self.drop_last = drop_last

    def _dataset(self, n: int) -> Dataset:
        # synthetic stand-in for torchvision.datasets.CIFAR10 (which downloads)
        g = torch.Generator().manual_seed(0)
        return TensorDataset(torch.randn(n, *self.dims, generator=g), torch.randint(0, 10, (n,), generator=g))

    def setup(self, stage: Optional[str] = None) -> None:
        if stage == "fit" or stage is None:
            self.dataset_train, self.dataset_val = self._split_dataset(self._dataset(160))
        if stage == "test" or stage is None:
            self.dataset_test = self._dataset(64)

    @property
    def num_classes(self) -> int:
        return 10

    def _get_splits(self, len_dataset: int) -> list[int]:
        if isinstance(self.val_split, int):
            return [len_dataset - self.val_split, self.val_split]
        if isinstance(self.val_split, float):
            val_len = int(self.val_split * len_dataset)
            return [len_dataset - val_len, val_len]
        raise ValueError(f"Unsupported type {type(self.val_split)}")

    def _split_dataset(self, dataset: Dataset) -> tuple[Dataset, Dataset]:
        splits = self._get_splits(len(dataset))
        return tuple(random_split(dataset, splits, generator=torch.Generator().manual_seed(self.seed)))

    def train_dataloader(self) -> DataLoader:
        return self._data_loader(self.dataset_train, shuffle=self.shuffle)

    def val_dataloader(self) -> DataLoader:
        return self._data_loader(self.dataset_val)

    def test_dataloader(self) -> DataLoader:
        return self._data_loader(self.dataset_test)

    def _data_loader(self, dataset: Dataset, shuffle: bool = False) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          drop_last=self.drop_last, pin_memory=self.pin_memory)
