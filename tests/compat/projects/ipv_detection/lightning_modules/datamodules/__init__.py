# Source: github.com/naamiinepal/IPV-detection, lightning_modules/datamodules/__init__.py.
# Trimmed: the tokenizer (AutoTokenizer.from_pretrained, downloaded) and the CSV/`datasets` loading are
# replaced by a synthetic stand-in: 160 token-id sequences of random length with binary labels; kept: the
# init arguments of the config, train_dataset / val_dataset attributes, and the module's own collate
# function (padding with an attention mask, as transformers' DataCollatorWithPadding does).
from typing import Optional

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader


class BaseDataModule(pl.LightningDataModule):
    def __init__(self, model_name_or_path: str, batch_size: int = 32, max_workers: int = 0,
                 pin_memory: bool = False, **kwargs):
        super().__init__()
        self.save_hyperparameters()
        self.num_workers = max_workers

    def data_collator(self, items):
        length = max(len(i["input_ids"]) for i in items)
        ids = torch.zeros(len(items), length, dtype=torch.long)
        mask = torch.zeros(len(items), length, dtype=torch.long)
        for row, item in enumerate(items):
            ids[row, :len(item["input_ids"])] = item["input_ids"]
            mask[row, :len(item["input_ids"])] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([i["labels"] for i in items])}

    def _loader(self, dataset, shuffle=False):
        return DataLoader(dataset, batch_size=self.hparams.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, pin_memory=self.hparams.pin_memory,
                          collate_fn=self.data_collator)

    def train_dataloader(self):
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self):
        return self._loader(self.val_dataset)
