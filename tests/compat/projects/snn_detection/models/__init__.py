# Source: github.com/KirillHit/snn_for_object_detection, models/ (SODa base module, TinyYolo, Yolo).
# Trimmed: the spiking (norse) backbones, SSD/YOLO heads, box losses and mAP evaluation are replaced by a
# tiny conv over the time-binned event frames that classifies each sample; kept: the SODa base class with
# the init arguments of config/base.yaml (plotter included), two subclasses picked by class_path, and the
# logged metric `map` the callbacks monitor (here: accuracy).
import lightning as L
import torch
from torch import nn


class SODa(L.LightningModule):
    def __init__(self, num_classes: int, loss_ratio: float = 0.04, time_window: int = 0, iou_threshold: float = 0.4,
                 learning_rate: float = 0.001, state_storage: bool = False, init_weights: bool = True,
                 plotter=None):
        super().__init__()
        self.save_hyperparameters(ignore=["plotter"])
        self.plotter = plotter
        self.net = self.build(num_classes)

    def build(self, num_classes):
        raise NotImplementedError

    def forward(self, x):  # x: (time, batch, channels, h, w)
        return self.net(x.mean(0))

    def _step(self, batch, stage):
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        self.log(f"{stage}_loss", loss)
        if stage == "val":
            self.log("map", (logits.argmax(-1) == y).float().mean())
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate)


class TinyYolo(SODa):
    def build(self, num_classes):
        return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(4, num_classes))


class Yolo(SODa):
    def build(self, num_classes):
        return nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))
