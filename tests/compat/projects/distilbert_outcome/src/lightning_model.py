# Source: github.com/MohiniSingh02/EncoderOutcomePredictionDistilbert, src/lightning_model.py.
# Trimmed: the DistilBERT encoder is replaced by an EmbeddingBag; kept: the init arguments of the config
# (lr, warmup_steps, decay_steps, weight_decay) and num_classes (linked from data.num_labels), AdamW with
# a per-step warmup/decay LambdaLR, multilabel AUROC logged as Val/AUROC.
import torch
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics.classification import MultilabelAUROC


class ClassificationModel(LightningModule):
    def __init__(self, num_classes: int, warmup_steps: int = 0, decay_steps: int = 50000,
                 weight_decay: float = 0.01, lr: float = 2e-5):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.EmbeddingBag(100, 16)
        self.head = nn.Linear(16, num_classes)
        self.val_auroc = MultilabelAUROC(num_labels=num_classes)

    def forward(self, ids):
        return self.head(self.encoder(ids))

    def training_step(self, batch, batch_idx):
        ids, labels = batch
        loss = nn.functional.binary_cross_entropy_with_logits(self(ids), labels.float())
        self.log("Train/Loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        ids, labels = batch
        logits = self(ids)
        self.log("Val/Loss", nn.functional.binary_cross_entropy_with_logits(logits, labels.float()))
        self.val_auroc.update(logits, labels)
        self.log("Val/AUROC", self.val_auroc, on_epoch=True)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

        def schedule(step):
            if step < self.hparams.warmup_steps:
                return (step + 1) / self.hparams.warmup_steps
            return max(0.0, 1 - (step - self.hparams.warmup_steps) / self.hparams.decay_steps)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return [optimizer], [{"scheduler": scheduler, "interval": "step"}]
