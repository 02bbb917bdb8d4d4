"""A null model and data module that train in milliseconds: for measuring tunecv's own orchestration.

One run of :class:`NullModel` on :class:`NullDataModule` is one training batch and one validation batch
of a few scalars through a one-parameter model, so what a benchmark of a tune with thousands of trials
measures is tunecv (naming, folders, tables, the Optuna study), Lightning's loop and checkpointing, not
torch's arithmetic. ``val/loss`` is a smooth function of the hyperparameter ``x`` (least at
``x = 0.3``) plus a small deterministic per-fold noise, so samplers still have something to find.
See ``benchmarks/bench_tune_scale.py``.
"""

from __future__ import annotations

import lightning as L
import pandas as pd
import torch
from torch.utils.data import TensorDataset

from tunecv.data import SplitDataModule

__all__ = ["NullDataModule", "NullModel"]


class NullDataModule(SplitDataModule):
    """``n_samples`` scalars (one batch); metadata has ``label`` (alternating 0/1) and ``region``.

    Args:
        n_samples: samples in the whole dataset.
        batch_size: samples per batch (the default puts a whole split in one batch).
        num_workers: dataloader workers (0: in the training process).
    """

    def __init__(self, n_samples: int = 8, batch_size: int = 64, num_workers: int = 0) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        self.n_samples = n_samples

    def load(self) -> tuple[TensorDataset, pd.DataFrame]:
        values = torch.linspace(-1.0, 1.0, self.n_samples).unsqueeze(1)
        labels = [i % 2 for i in range(self.n_samples)]
        metadata = pd.DataFrame({"label": labels, "region": [f"r{i % 4}" for i in range(self.n_samples)]},
                                index=pd.RangeIndex(self.n_samples, name="sample_id"))
        return TensorDataset(values), metadata


class NullModel(L.LightningModule):
    """One parameter; logs ``train/loss``, ``val/loss`` and ``val/acc`` (and ``test/...``).

    Args:
        x: the hyperparameter to tune; ``val/loss`` is ``(x - 0.3)**2`` plus a small noise.
        noise: size of the deterministic noise added per fold and seed.
        lr: SGD learning rate of the one parameter.
    """

    def __init__(self, x: float = 0.0, noise: float = 0.01, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        (values,) = batch
        loss = ((values * self.w - values) ** 2).mean()
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(values))
        return loss

    def _evaluate(self, batch, stage: str) -> None:
        (values,) = batch
        # A deterministic function of the hyperparameter and the run (its seed and data), not of the fit.
        jitter = float(torch.sin(values.sum() * 7.0 + torch.initial_seed() % 1000)) * self.hparams.noise
        loss = (self.hparams.x - 0.3) ** 2 + jitter
        self.log(f"{stage}/loss", loss, batch_size=len(values))
        self.log(f"{stage}/acc", 1.0 / (1.0 + abs(loss)), batch_size=len(values))

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
