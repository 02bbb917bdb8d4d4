# Source: github.com/shamisen00/my-pytorch-lightning, src/models/picture_module.py (commit cff224e).
# Adapted: imports `lightning` (the repository's CLI is lightning.pytorch.cli; this file still imported
# pytorch_lightning at that commit, which jsonargparse rejects as "not a subclass"); `step_size` added
# (the config passes it); validation_step also returns y_hat (SaveImages reads it); docstrings trimmed.
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torchmetrics import MeanMetric


class PictureModule(LightningModule):
    def __init__(self, net: torch.nn.Module, scheduler, lr: float = 1e-1, step_size: int = 1):
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.net = net
        self.criterion = torch.nn.MSELoss()
        self.train_loss = MeanMetric()
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()

    def forward(self, x: torch.Tensor):
        return self.net(x)

    def on_train_start(self):
        self.val_loss.reset()

    def model_step(self, batch: Any):
        x, y = batch
        y_hat = self.forward(x)
        return self.criterion(y_hat, y), y_hat, y

    def training_step(self, batch: Any, batch_idx: int):
        loss, _, targets = self.model_step(batch)
        self.train_loss(loss)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        return {"loss": loss, "targets": targets}

    def validation_step(self, batch: Any, batch_idx: int):
        loss, y_hat, targets = self.model_step(batch)
        self.val_loss(loss)
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)
        return {"loss": loss, "y_hat": y_hat, "targets": targets}

    def test_step(self, batch: Any, batch_idx: int):
        loss, _, targets = self.model_step(batch)
        self.test_loss(loss)
        self.log("test/loss", self.test_loss, on_step=False, on_epoch=True, prog_bar=True)
        return {"loss": loss, "targets": targets}

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(params=self.parameters(), lr=self.hparams.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
        return ([optimizer], [scheduler])
