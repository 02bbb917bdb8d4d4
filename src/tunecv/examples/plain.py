"""Plain ``nn.Module`` nets for the digits, trained through :class:`tunecv.TaskModule` from YAML alone.

See ``configs/plain/`` and ``docs/plain-module.md``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP", "TwoHeadMLP", "logit_penalty"]


class MLP(nn.Module):
    """A one-hidden-layer perceptron.

    Args:
        in_features: input width (64 pixels for the digits).
        hidden_dim: width of the hidden layer.
        out_features: output width (10 classes for the digits).
        dropout: dropout after the hidden layer.
    """

    def __init__(self, in_features: int = 64, hidden_dim: int = 64, out_features: int = 10,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_features, hidden_dim), nn.ReLU(), nn.Dropout(dropout),
                                    nn.Linear(hidden_dim, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (or values) of shape ``(batch, out_features)``."""
        return self.layers(x)


class TwoHeadMLP(nn.Module):
    """A shared hidden layer with two heads: class logits and one regression value.

    Args:
        in_features: input width.
        hidden_dim: width of the shared hidden layer.
        n_classes: classes of the classification head.
        dropout: dropout after the hidden layer.
    """

    def __init__(self, in_features: int = 64, hidden_dim: int = 64, n_classes: int = 10,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_features, hidden_dim), nn.ReLU(), nn.Dropout(dropout))
        self.classify = nn.Linear(hidden_dim, n_classes)
        self.regress = nn.Linear(hidden_dim, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits of shape (batch, n_classes), values of shape (batch,))``, in that order."""
        h = self.body(x)
        return self.classify(h), self.regress(h).squeeze(-1)


def logit_penalty(digit: torch.Tensor) -> torch.Tensor:
    """A regularizer: the mean squared logit of the ``digit`` prediction (keeps logits small).

    Its parameter is named after a prediction, so :class:`tunecv.TaskModule` passes that prediction by
    keyword.
    """
    return digit.pow(2).mean()
