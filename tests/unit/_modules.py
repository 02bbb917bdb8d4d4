"""Tiny LightningModules that unit tests name by class_path (a config's `model` must be a LightningModule)."""

from __future__ import annotations

import lightning as L
import torch


class LinearModule(L.LightningModule):
    """One linear layer: the init arguments of ``torch.nn.Linear``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(in_features, out_features, bias=bias)


class Fuse:
    """A value type that tests/unit/test_cli_signals.py registers with jsonargparse: parsing one sends SIGINT."""


class FusedModule(L.LightningModule):
    """A model whose init_args hold a :class:`Fuse`."""

    def __init__(self, fuse: Fuse) -> None:
        super().__init__()
