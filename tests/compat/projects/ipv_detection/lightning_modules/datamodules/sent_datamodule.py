# Source: github.com/naamiinepal/IPV-detection, lightning_modules/datamodules/sent_datamodule.py
# (commit 40c01d5). Trimmed: load_from_disk / tokenization replaced by the synthetic stand-in below.
from typing import Optional

import torch

from . import BaseDataModule


class SentDataModule(BaseDataModule):
    labels = {"abuse", "sexual_content_score"}

    def __init__(self, data_dir: str = "datasets/", val_ratio: float = 0.1, use_cache: bool = True,
                 current_fold: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.save_hyperparameters()

    def setup(self, stage: Optional[str] = None):
        # synthetic stand-in for the tokenized tweets
        g = torch.Generator().manual_seed(0)
        items = []
        for _ in range(160):
            ids = torch.randint(1, 100, (int(torch.randint(4, 12, (1,), generator=g)),), generator=g)
            items.append({"input_ids": ids, "labels": int(ids[0] > 50)})
        n_val = int(len(items) * self.hparams.val_ratio) or 1
        self.val_dataset = items[:n_val]
        if stage != "validate":
            self.train_dataset = items[n_val:]
