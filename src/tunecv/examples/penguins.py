"""Species of the Palmer penguins (shipped by the ``palmerpenguins`` package), with natural groups.

Each penguin was measured on one island in one year. The metadata column ``region`` is that sampling
campaign (``Biscoe-2007``, ... 9 groups) and ``island`` the island alone (3 groups), so region folds
validate on campaigns (or islands) never seen in training, and ``region-stratified`` also balances
``species`` across folds.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tunecv.examples._data import SmallTableDataModule
from tunecv.examples._steps import ClassificationSteps

__all__ = ["FEATURES", "SPECIES", "PenguinClassifier", "PenguinsDataModule"]

FEATURES = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
SPECIES = ("Adelie", "Chinstrap", "Gentoo")


class PenguinsDataModule(SmallTableDataModule):
    """333 penguins with complete measurements; features standardised; label = species.

    Takes ``batch_size`` (32) and ``num_workers`` (0), as every small table of the examples.
    """

    def load(self) -> tuple[TensorDataset, pd.DataFrame]:
        from palmerpenguins import load_penguins

        df = load_penguins().dropna(subset=[*FEATURES, "sex"]).reset_index(drop=True)
        x = df[list(FEATURES)].to_numpy(dtype="float32")
        x = (x - x.mean(axis=0)) / x.std(axis=0)
        y = df["species"].map({s: i for i, s in enumerate(SPECIES)}).to_numpy()
        metadata = pd.DataFrame({
            "species": df["species"],
            "island": df["island"],
            "year": df["year"],
            "region": df["island"] + "-" + df["year"].astype(str),
        })
        return TensorDataset(torch.tensor(x), torch.tensor(y, dtype=torch.long)), metadata


class PenguinClassifier(ClassificationSteps):
    """A small MLP over 4 measurements; logs ``{stage}/loss``, ``{stage}/acc``.

    Args:
        hidden_dim: width of the hidden layer.
        lr: Adam learning rate.
    """

    def __init__(self, hidden_dim: int = 16, lr: float = 0.02) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(len(FEATURES), hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, len(SPECIES)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
