# Source: github.com/shamisen00/my-pytorch-lightning, src/data/components/picture_data.py (commit 0fdcd57).
# Trimmed: the jpg pairs under data_dir/{mode}/input|gt, PIL loading, torchvision transforms and the Lab
# colour conversion are replaced by a synthetic stand-in: 96 (train) / 32 (validation) random 3x8x8
# (input, ground truth) pairs, the same shapes and types the model gets.
from typing import List, Optional

import torch
from torch.utils.data import Dataset


class PictureDataset(Dataset):
    def __init__(self, mode: str, lab: bool = True, data_dir: str = "/workspace/data",
                 default_transforms: Optional[List] = None, val_transforms: Optional[List] = None) -> None:
        assert mode in {"train", 'validation'}
        self.mode = mode
        self.lab = lab
        self.data_dir = data_dir
        # synthetic stand-in for the image files
        g = torch.Generator().manual_seed(0 if mode == "train" else 1)
        n = 96 if mode == "train" else 32
        self.inputs = torch.rand(n, 3, 8, 8, generator=g)
        self.gts = self.inputs.flip(-1)

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, index):
        return self.inputs[index], self.gts[index]
