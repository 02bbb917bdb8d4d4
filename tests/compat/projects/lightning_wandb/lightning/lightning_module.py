# Source: github.com/SGpirr/lightning-wandb, lightning/lightning_module.py (commit 2ba5db1).
# Trimmed: torchvision's MNIST download replaced by a synthetic stand-in (192 random 1x28x28 images with
# labels 0-9, split 160/32); the W&B image logging in validation_step dropped; comments shortened.
import torch
from torch.nn import functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

import lightning.pytorch as pl

from torchmetrics.functional.classification import multiclass_accuracy as accuracy


class LitMNIST(pl.LightningModule):

    def __init__(self, n_classes=10, n_layer_1=128, n_layer_2=256, lr=1e-3):
        super().__init__()
        self.layer_1 = torch.nn.Linear(28 * 28, n_layer_1)
        self.layer_2 = torch.nn.Linear(n_layer_1, n_layer_2)
        self.layer_3 = torch.nn.Linear(n_layer_2, n_classes)
        self.n_classes = n_classes
        self.lr = lr
        self.loss = nn.CrossEntropyLoss()
        self.save_hyperparameters()

    def forward(self, x):
        batch_size, channels, width, height = x.size()
        x = x.view(batch_size, -1)
        x = F.relu(self.layer_1(x))
        x = F.relu(self.layer_2(x))
        return F.log_softmax(self.layer_3(x), dim=1)

    def training_step(self, batch, batch_idx):
        _, loss, acc = self._get_preds_loss_accuracy(batch)
        self.log('train_loss', loss)
        self.log('train_accuracy', acc)
        return loss

    def validation_step(self, batch, batch_idx):
        preds, loss, acc = self._get_preds_loss_accuracy(batch)
        self.log('val_loss', loss)
        self.log('val_accuracy', acc)
        return preds

    def test_step(self, batch, batch_idx):
        _, loss, acc = self._get_preds_loss_accuracy(batch)
        self.log('test_loss', loss)
        self.log('test_accuracy', acc)

    def configure_optimizers(self):
        # the repository's module has no configure_optimizers at this commit (Lightning then fails);
        # Adam with the model's lr, as its run.py does
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    def _get_preds_loss_accuracy(self, batch):
        x, y = batch
        logits = self(x)
        preds = torch.argmax(logits, dim=1)
        loss = self.loss(logits, y)
        acc = accuracy(preds, y, num_classes=self.n_classes)
        return preds, loss, acc


class MNISTDataModule(pl.LightningDataModule):

    def __init__(self, data_dir='./', batch_size=256, num_workers=0):
        super().__init__()
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.num_workers = num_workers

    def _mnist(self, n, seed):
        # synthetic stand-in for torchvision.datasets.MNIST (which downloads)
        g = torch.Generator().manual_seed(seed)
        return TensorDataset(torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g))

    def setup(self, stage=None):
        if stage == 'fit' or stage is None:
            self.mnist_train, self.mnist_val = random_split(self._mnist(192, 0), [160, 32])
        if stage == 'test' or stage is None:
            self.mnist_test = self._mnist(32, 1)

    def train_dataloader(self):
        return DataLoader(self.mnist_train, batch_size=self.batch_size, num_workers=self.num_workers)

    def val_dataloader(self):
        return DataLoader(self.mnist_val, batch_size=self.batch_size, num_workers=self.num_workers)

    def test_dataloader(self):
        return DataLoader(self.mnist_test, batch_size=self.batch_size, num_workers=self.num_workers)
