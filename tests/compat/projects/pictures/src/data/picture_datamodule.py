# Source: github.com/shamisen00/my-pytorch-lightning, src/data/picture_datamodule.py (commit 0fdcd57).
# Trimmed: docstrings; num_workers default 18 -> 0; otherwise as in the repository (datasets given as
# init arguments and kept as train_set / val_set, no test loader).
from typing import Any, Dict, List, Optional

from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from src.data.components.picture_data import PictureDataset


class PictureDataModule(LightningDataModule):
    def __init__(
        self,
        train_dataset: Optional[Dataset] = PictureDataset(mode="train", lab=True),
        val_dataset: Optional[Dataset] = PictureDataset('validation', lab=True),
        batch_size: int = 16,
        num_workers: int = 0,
        pin_memory: bool = False,
        transform: Optional[List] = None,
    ):
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.train_set: Optional[Dataset] = train_dataset
        self.val_set: Optional[Dataset] = val_dataset
        self.test_set: Optional[Dataset] = None

    def train_dataloader(self):
        return DataLoader(dataset=self.train_set, batch_size=self.hparams.batch_size,
                          num_workers=self.hparams.num_workers, pin_memory=self.hparams.pin_memory, shuffle=False)

    def val_dataloader(self):
        return DataLoader(dataset=self.val_set, batch_size=self.hparams.batch_size,
                          num_workers=self.hparams.num_workers, pin_memory=self.hparams.pin_memory, shuffle=False)

    def teardown(self, stage: Optional[str] = None):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state_dict: Dict[str, Any]):
        pass
