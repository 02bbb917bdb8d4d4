# Source: github.com/shamisen00/my-pytorch-lightning, src/callbacks/save_images.py (commit 0fdcd57).
# Trimmed: the torchvision grid, Lab->RGB conversion and MLflow image upload are replaced by keeping the
# last combined (input | prediction | target) tensor; init arguments as in the repository.
from typing import Optional, Tuple

import torch
from lightning.pytorch.callbacks import Callback


class SaveImages(Callback):
    def __init__(self, lab: bool = True, num_samples: int = 16, nrow: int = 8, padding: int = 2,
                 normalize: bool = True, norm_range: Optional[Tuple[int, int]] = None, scale_each: bool = False,
                 pad_value: int = 0, log_interval: int = 3) -> None:
        super().__init__()
        self.num_samples = num_samples
        self.nrow = nrow
        self.padding = padding
        self.normalize = normalize
        self.norm_range = norm_range
        self.scale_each = scale_each
        self.pad_value = pad_value
        self.log_interval = log_interval
        self.lab = lab
        self.last_grid = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if (batch_idx + 1) % self.log_interval == 0:
            self.last_grid = torch.cat((batch[0][0], outputs["y_hat"][0], outputs["targets"][0]), dim=-1).cpu()
