# Source: github.com/MohiniSingh02/EncoderOutcomePredictionDistilbert, src/dataset.py.
# Trimmed: the MIMIC-IV notes and ICD code files (credentialed data) and the DistilBERT tokenizer are
# replaced by a synthetic stand-in: 160 random token-id sequences (length 16) with multi-hot labels over
# 6 codes; the data module keeps the init arguments of the config and `num_labels`, which the CLI links
# to model.num_classes once the data module is instantiated.
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, TensorDataset


class MIMICClassificationDataModule(LightningDataModule):
    def __init__(self, data_dir: str, batch_size: int = 4, eval_batch_size: int = 128,
                 pretrained_model: str = "distilbert-base-uncased", num_workers: int = 0,
                 truncate_again: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.num_labels = 6  # the repository counts the ICD codes found in data_dir

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(1, 100, (160, 16), generator=g)
        labels = (torch.rand(160, self.num_labels, generator=g) < 0.3).long()
        labels[:, 0] = (ids[:, 0] > 50).long()  # something to learn
        self.train_dataset = TensorDataset(ids[:128], labels[:128])
        self.val_dataset = TensorDataset(ids[128:], labels[128:])

    def train_dataloader(self):
        return DataLoader(self.train_dataset, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers)

    def val_dataloader(self):
        return DataLoader(self.val_dataset, batch_size=self.hparams.eval_batch_size,
                          num_workers=self.hparams.num_workers)
