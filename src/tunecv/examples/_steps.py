"""The training, validation and test steps shared by the bundled models."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn


class StageSteps(L.LightningModule):
    """Training, validation and test steps that each call ``_step(batch, stage)`` (``train``, ``val``, ``test``).

    A subclass writes ``_step`` (returning the loss), ``__init__``, ``forward`` and ``configure_optimizers``.
    """

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        raise NotImplementedError

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")


class ClassificationSteps(StageSteps):
    """Cross-entropy steps that log ``{stage}/loss`` and ``{stage}/acc`` (``stage``: train, val, test).

    A subclass writes ``__init__``, ``forward`` and ``configure_optimizers``. ``log_train_steps`` adds the
    per-step training loss to the epoch mean.
    """

    log_train_steps = False

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        acc = (logits.argmax(dim=1) == y).float().mean()
        on_step = stage == "train" and self.log_train_steps
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, prog_bar=stage != "train",
                 batch_size=len(y))
        return loss
