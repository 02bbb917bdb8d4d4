# Source: github.com/naamiinepal/IPV-detection, lightning_modules/models/word_model.py (commit 8839ce5).
# Trimmed: transformers' token-classification model replaced by a tiny per-token classifier (another
# BaseModel subclass a config can pick by class_path).
from types import SimpleNamespace

from torch import nn

from . import BaseModel


class WordModel(BaseModel):
    def __init__(self, model_name_or_path: str, dropout_rate: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.embed = nn.Embedding(100, 16)
        self.classifier = nn.Linear(16, 2)

    def forward(self, input_ids, attention_mask, labels):
        logits = self.classifier(self.embed(input_ids)).mean(1)
        return SimpleNamespace(loss=nn.functional.cross_entropy(logits, labels), logits=logits)
