# Source: github.com/rpatrik96/nl-causal-representations, care_nl_ica/data/datamodules.py (commit 89a0064).
# Trimmed: the SEM / mixing-network sampling is replaced by a small linear mixing of uniform latents
# (the repository also samples its data, nothing is downloaded); the init arguments the config and the
# CLI's links use are kept (latent_dim, box_min, box_max, sphere_r, normalize_latents, batch_size, ...).
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class ContrastiveDataModule(pl.LightningDataModule):
    def __init__(self, batch_size: int = 64, latent_dim: int = 3, box_min: float = 0.0, box_max: float = 1.0,
                 sphere_r: float = 1.0, normalize_latents: bool = True, use_sem: bool = True,
                 nonlin_sem: bool = False, permute: bool = False, n_mixing_layer: int = 1,
                 act_fct: str = "leaky_relu", space_type: str = "box", n_samples: int = 160):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(0)
        hp = self.hparams
        z = hp.box_min + (hp.box_max - hp.box_min) * torch.rand(hp.n_samples, hp.latent_dim, generator=g)
        x = z @ torch.randn(hp.latent_dim, hp.latent_dim, generator=g)
        n_train = int(0.8 * hp.n_samples)
        self.train_dataset = TensorDataset(x[:n_train], z[:n_train])
        self.val_dataset = TensorDataset(x[n_train:], z[n_train:])

    def train_dataloader(self):
        return DataLoader(self.train_dataset, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_dataset, batch_size=self.hparams.batch_size)
