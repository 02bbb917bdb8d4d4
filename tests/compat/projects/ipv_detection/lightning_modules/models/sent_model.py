# Source: github.com/naamiinepal/IPV-detection, lightning_modules/models/sent_model.py (commit b6e2d4b).
# Trimmed: transformers' AutoModelForSequenceClassification (MuRIL, downloaded) replaced by a tiny
# embedding classifier returning an object with .loss, as the base module expects.
from types import SimpleNamespace

from torch import nn

from . import BaseModel


class _TinySequenceClassifier(nn.Module):
    def __init__(self, dropout_rate: float, num_labels: int = 2):
        super().__init__()
        self.embed = nn.EmbeddingBag(100, 16, mode="sum")
        self.dropout = nn.Dropout(dropout_rate)
        self.classifier = nn.Linear(16, num_labels)

    def forward(self, input_ids, attention_mask, labels):
        logits = self.classifier(self.dropout(self.embed(input_ids, per_sample_weights=attention_mask.float())))
        return SimpleNamespace(loss=nn.functional.cross_entropy(logits, labels), logits=logits)


class SentModel(BaseModel):
    def __init__(self, model_name_or_path: str, dropout_rate: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.model = _TinySequenceClassifier(dropout_rate)
