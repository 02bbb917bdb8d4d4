# Source: github.com/kouyk/pytorch-lightning-slurm, models/resnet18.py (commit c4308f9).
# Trimmed: the pretrained torchvision resnet18 backbone replaced by a tiny frozen conv feature extractor
# (no weights download); `batch_size` added to the init arguments because main.py links
# data.init_args.batch_size -> model.init_args.batch_size (the repository's link target).
import torch
from pytorch_lightning import LightningModule
from torch import nn
from torch.nn.functional import cross_entropy
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy


class ResNet18(LightningModule):
    def __init__(self, num_classes: int, lr: float = 1e-3, batch_size: int = 32):
        super().__init__()
        self.save_hyperparameters()

        self.model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(8, self.hparams.num_classes)
        self.model.requires_grad_(False)

        metrics = MetricCollection({"accuracy": MulticlassAccuracy(num_classes=num_classes, average="micro")})
        self.metrics = nn.ModuleDict({
            "Train": metrics.clone(prefix="train_"),
            "val": metrics.clone(prefix="val_"),
            "test": metrics.clone(prefix="test_"),
        })

    def forward(self, x):
        self.model.eval()
        with torch.no_grad():
            x = self.model(x)
        return self.fc(x)

    def _step(self, batch, stage: str):
        x, y = batch
        logits = self(x)
        loss = cross_entropy(logits, y)
        pred = torch.argmax(logits, dim=1)
        self.log(f"{stage.lower()}_loss", loss)
        self.log_dict(self.metrics[stage](pred, y), prog_bar=True)
        return {"loss": loss, "predictions": pred, "targets": y}

    def training_step(self, batch, batch_idx):
        return self._step(batch, "Train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        return self._step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
