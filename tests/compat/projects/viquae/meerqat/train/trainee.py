# Source: github.com/PaulLerner/ViQuAE, meerqat/train/trainee.py (commit 0394998).
# Trimmed: the transformers models (MultiPassageBERT, DPR encoders) loaded from model_kwargs are replaced
# by tiny embedding models; kept: the Trainee base (lr, warmup_steps, weight_decay, its own
# configure_optimizers with a warmup schedule) and two of its subclasses, Reader and BiEncoder, which
# configs pick by class_path. The metric names follow the repository (eval/f1, test/f1).
from typing import Optional

import pytorch_lightning as pl
import torch
from torch import nn


class Trainee(pl.LightningModule):
    def __init__(self, model_kwargs: Optional[dict] = None, lr: float = 2e-5, warmup_steps: int = 0,
                 weight_decay: float = 0.0):
        super().__init__()
        self.save_hyperparameters()

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        warmup = max(1, self.hparams.warmup_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _f1(self, logits, labels):
        return (logits.argmax(-1) == labels).float().mean()

    def step(self, batch, stage):
        logits = self(batch)
        loss = nn.functional.cross_entropy(logits, batch["labels"])
        self.log(f"{stage}/loss", loss)
        self.log(f"{stage}/f1", self._f1(logits, batch["labels"]))
        return loss

    def training_step(self, batch, batch_idx):
        return self.step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self.step(batch, "eval")

    def test_step(self, batch, batch_idx):
        return self.step(batch, "test")


class Reader(Trainee):
    """Reading comprehension: picks the passage holding the answer among M."""
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.embed = nn.EmbeddingBag(50, 16)
        self.score = nn.Linear(16, 1)

    def forward(self, batch):
        n, m, length = batch["input_ids"].shape
        return self.score(self.embed(batch["input_ids"].view(n * m, length))).view(n, m)


class BiEncoder(Trainee):
    """Dense retrieval: question and passage encoders scored by dot product."""
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.question_model = nn.EmbeddingBag(50, 16)
        self.context_model = nn.EmbeddingBag(50, 16)

    def forward(self, batch):
        n, m, length = batch["input_ids"].shape
        q = self.question_model(batch["question_ids"])
        c = self.context_model(batch["input_ids"].view(n * m, length)).view(n, m, -1)
        return torch.einsum("nd,nmd->nm", q, c)
