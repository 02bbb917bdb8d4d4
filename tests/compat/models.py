"""Ordinary LightningModules and a data module, written as a LightningCLI user writes them.

They log ``val_loss`` (the name Lightning's docs use), have no ``test_step``, leave the optimizer to
the config, or take a nested module: the habits the compatibility corpus covers.
"""

from __future__ import annotations

import lightning as L
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tunecv.data import SplitDataModule


class RandomRegression(L.LightningDataModule):
    """32 random features, one target; a test loader only when ``with_test``."""

    def __init__(self, n: int = 96, batch_size: int = 16, with_test: bool = True) -> None:
        super().__init__()
        self.n = n
        self.batch_size = batch_size
        self.with_test = with_test
        gen = torch.Generator().manual_seed(0)  # the data never depends on the run's seed
        x = torch.randn(n, 32, generator=gen)
        self.dataset = TensorDataset(x, x[:, :1] * 2.0)

    def _loader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def test_dataloader(self) -> DataLoader:
        if not self.with_test:
            raise RuntimeError("no test set")
        return self._loader()


class ValLossModel(L.LightningModule):
    """Logs ``val_loss`` (no ``test_step``); Adam unless the config has an ``optimizer:`` section."""

    def __init__(self, hidden: int = 8, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.hidden = hidden
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(32, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class TestedModel(ValLossModel):
    """:class:`ValLossModel` with a ``test_step`` that logs ``test_loss``."""

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.log("test_loss", self._loss(batch))


class NetModel(L.LightningModule):
    """Takes its network as a nested ``{class_path, init_args}`` spec; no ``configure_optimizers``."""

    def __init__(self, net: nn.Module, scale: float = 1.0) -> None:
        super().__init__()
        self.net = net
        self.scale = scale

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self.net(x)[:, :1] * self.scale, y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x)[:, :1] * self.scale, y))


class RegressionSplitData(SplitDataModule):
    """The data of :class:`RandomRegression` as a tunecv ``SplitDataModule`` (folds and a test split)."""

    def __init__(self, n: int = 96, batch_size: int = 16, num_workers: int = 0) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        self.n = n

    def load(self) -> tuple[TensorDataset, pd.DataFrame]:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(self.n, 32, generator=gen)
        return TensorDataset(x, x[:, :1] * 2.0), pd.DataFrame({"region": [f"r{i % 4}" for i in range(self.n)]})
