"""A small regression: scikit-learn's diabetes data (442 patients, 10 features, disease progression).

The target is standardised, so ``val/loss`` (mean squared error) is in units of its variance: 1.0 is
what predicting the mean gives. Used by ``benchmarks/bench_tune_efficiency.py`` as its regression problem.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tunecv.examples._data import SmallTableDataModule
from tunecv.examples._steps import StageSteps

__all__ = ["DiabetesDataModule", "DiabetesRegressor"]


class DiabetesDataModule(SmallTableDataModule):
    """442 samples; features and target standardised; metadata column ``sex`` (2 groups).

    Takes ``batch_size`` (32) and ``num_workers`` (0), as every small table of the examples.
    """

    def load(self) -> tuple[TensorDataset, pd.DataFrame]:
        from sklearn.datasets import load_diabetes

        x, y = load_diabetes(return_X_y=True)
        x = (x - x.mean(axis=0)) / x.std(axis=0)
        y = (y - y.mean()) / y.std()
        metadata = pd.DataFrame({"sex": (x[:, 1] > 0).astype(int)})
        return (TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)),
                metadata)


class DiabetesRegressor(StageSteps):
    """An MLP regressor; logs ``{stage}/loss`` (mean squared error) and ``{stage}/mae``.

    Args:
        hidden_dim: width of the hidden layer.
        lr: Adam learning rate.
        dropout: dropout after the hidden layer.
        weight_decay: Adam weight decay.
    """

    def __init__(self, hidden_dim: int = 32, lr: float = 1e-2, dropout: float = 0.1,
                 weight_decay: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(10, hidden_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        pred = self(x)
        loss = nn.functional.mse_loss(pred, y)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        self.log(f"{stage}/mae", (pred - y).abs().mean(), on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
