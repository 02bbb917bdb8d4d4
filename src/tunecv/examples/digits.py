"""A classifier of scikit-learn's bundled 8x8 digits, as a LightningModule and a SplitDataModule."""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tunecv.data import SplitDataModule
from tunecv.examples._steps import ClassificationSteps

__all__ = ["DigitsClassifier", "DigitsConvNet", "DigitsDataModule"]


class DigitsDataModule(SplitDataModule):
    """The 1,797 digits that ship with scikit-learn; metadata has ``label`` and a pseudo-``region``.

    Args:
        batch_size: samples per batch.
        num_workers: dataloader workers.
        n_regions: the digits carry no natural groups; samples are dealt into this many pseudo-regions
            (by sample order) so that region folds can be tried on them too.
        limit: use only the first ``limit`` samples (for quick tests).
    """

    def __init__(self, batch_size: int = 64, num_workers: int = 0, n_regions: int = 10,
                 limit: int | None = None) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        self.n_regions = n_regions
        self.limit = limit

    def load(self) -> tuple[TensorDataset, pd.DataFrame]:
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        if self.limit is not None:
            x, y = x[: self.limit], y[: self.limit]
        features = torch.tensor(x / 16.0, dtype=torch.float32)
        labels = torch.tensor(y, dtype=torch.long)
        metadata = pd.DataFrame({"label": y, "region": [f"r{i % self.n_regions}" for i in range(len(y))]},
                                index=pd.RangeIndex(len(y), name="sample_id"))
        return TensorDataset(features, labels), metadata


class DigitsClassifier(ClassificationSteps):
    """A small MLP; logs ``train/loss``, ``val/loss``, ``val/acc`` (and ``test/...``).

    Args:
        hidden_dim: width of the hidden layer.
        lr: Adam learning rate (used unless an ``optimizer:`` section is configured).
        dropout: dropout after the hidden layer.
        weight_decay: Adam weight decay.
    """

    log_train_steps = True

    def __init__(self, hidden_dim: int = 64, lr: float = 1e-2, dropout: float = 0.1,
                 weight_decay: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(64, hidden_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_dim, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)




class DigitsConvNet(ClassificationSteps):
    """A small convolutional net of the 8x8 digits (a second model class to choose from in a tune);
    logs what :class:`DigitsClassifier` logs, and ``params/count``, its number of weights.

    Args:
        channels: feature maps of the convolution.
        kernel_size: its kernel size (odd; the 8x8 size is kept).

    It has no optimizer arguments: give it an ``optimizer:`` section (Adam with lr 0.01 otherwise).
    """

    def __init__(self, channels: int = 8, kernel_size: int = 3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, channels, kernel_size, padding=kernel_size // 2), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(channels * 16, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def on_validation_epoch_end(self) -> None:
        self.log("params/count", float(sum(p.numel() for p in self.parameters())))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)
