"""A plain LightningDataModule (not a SplitDataModule) and a model with dropout, for test_resume_exact."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class PlainData(L.LightningDataModule):
    """Shuffled train batches from a loader without a generator (its order comes from torch's generator), or
    with a seeded generator of its own (``own_generator``)."""

    def __init__(self, own_generator: bool = False, n: int = 160) -> None:
        super().__init__()
        self.own_generator, self.n = own_generator, n

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(self.n, 8, generator=g)
        y = (x[:, 0] + x[:, 1] > 0).long()
        self.train_dataset = TensorDataset(x[: self.n * 3 // 4], y[: self.n * 3 // 4])
        self.val_dataset = TensorDataset(x[self.n * 3 // 4:], y[self.n * 3 // 4:])

    def train_dataloader(self):
        generator = torch.Generator().manual_seed(7) if self.own_generator else None
        return DataLoader(self.train_dataset, batch_size=16, shuffle=True, generator=generator)

    def val_dataloader(self):
        return DataLoader(self.val_dataset, batch_size=16)


class DropoutNet(L.LightningModule):
    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train/loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)
