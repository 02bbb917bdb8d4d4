# Source: github.com/rpatrik96/nl-causal-representations, care_nl_ica/runner.py (commit a7a415d).
# Trimmed: the contrastive ICA model (AR bottleneck MLP, Sinkhorn, flows, dependency-matrix metrics) is
# replaced by a tiny MLP encoder trained to recover the latents; the init arguments the config sets and
# the links fill (latent_dim, box_min, box_max, sphere_r, normalize_latents) are kept, and `offline`,
# which MyLightningCLI.before_fit reads.
import pytorch_lightning as pl
import torch
from torch import nn


class ContrastiveICAModule(pl.LightningModule):
    def __init__(self, lr: float = 1e-4, latent_dim: int = 3, box_min: float = 0.0, box_max: float = 1.0,
                 sphere_r: float = 1.0, normalize_latents: bool = True, use_ar_mlp: bool = True, qr: float = 0.0,
                 l1: float = 0.0, entropy: float = 0.0, sinkhorn: bool = False, triangular: bool = False,
                 use_flows: bool = False, verbose: bool = False, offline: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(latent_dim, 16), nn.LeakyReLU(), nn.Linear(16, latent_dim))

    def _loss(self, batch):
        x, z = batch
        return nn.functional.mse_loss(self.encoder(x), z)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
