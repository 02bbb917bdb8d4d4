"""Callbacks as users write them, for tests that name them by class path in ``trainer.callbacks``."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint


class TestsOnFitEnd(L.Callback):
    """Runs ``trainer.test`` when the fit ends (its metrics replace ``trainer.callback_metrics``)."""

    def on_fit_end(self, trainer, pl_module):
        trainer.test(pl_module, datamodule=trainer.datamodule, verbose=False)


class ValidatesOtherDataOnFitEnd(L.Callback):
    """Runs ``trainer.validate`` on other data (the training loader) when the fit ends."""

    def on_fit_end(self, trainer, pl_module):
        loader = trainer.datamodule.train_dataloader()
        trainer.validate(pl_module, dataloaders=loader, verbose=False)


class ValidatesInTeardown(L.Callback):
    """Runs ``trainer.validate`` on random inputs in ``teardown`` of the fit."""

    def teardown(self, trainer, pl_module, stage):
        if stage == "fit":
            x = torch.randn(32, 64)
            y = torch.randint(0, 10, (32,))
            trainer.validate(pl_module, dataloaders=torch.utils.data.DataLoader(list(zip(x, y)), batch_size=16),
                             verbose=False)


class MyCheckpoint(ModelCheckpoint):
    """A user's ModelCheckpoint subclass."""


class CountsCheckpoints(L.Callback):
    """Records how many checkpoint / early stopping callbacks the Trainer holds."""

    def __init__(self) -> None:
        self.counts = None

    def on_fit_start(self, trainer, pl_module):
        self.counts = (len(trainer.checkpoint_callbacks), len(trainer.early_stopping_callbacks),
                       [type(c).__name__ for c in trainer.checkpoint_callbacks])
