# Source: github.com/KirillHit/snn_for_object_detection, utils/ (PropheseeDataModule, Plotter).
# Trimmed: the Prophesee GEN1 event-camera files are replaced by a synthetic stand-in: 160 samples of
# num_steps time bins of 2-polarity 8x8 event frames with a class label (the model gets (time, batch,
# channels, h, w) as in the repository); the Plotter keeps its init arguments and draws nothing.
import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset


class Plotter:
    def __init__(self, threshold: float = 0.8, save_video: bool = False, file_path: str = "log",
                 file_name: str = "out"):
        self.threshold, self.save_video, self.file_path, self.file_name = threshold, save_video, file_path, file_name


class _Events(Dataset):
    def __init__(self, n, num_steps, seed):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 2, (n,), generator=g)
        self.x = torch.rand(n, num_steps, 2, 8, 8, generator=g) + self.y.view(-1, 1, 1, 1, 1) * 0.5

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _collate(batch):
    xs, ys = zip(*batch)
    return torch.stack(xs, 1), torch.stack(ys)  # time-major, as the spiking models take it


class PropheseeDataModule(L.LightningDataModule):
    def __init__(self, data_dir: str = "./data", dataset: str = "gen1", batch_size: int = 4, num_workers: int = 4,
                 num_load_file: int = 8, num_steps: int = 16, time_step: int = 16, time_shift: int = 16,
                 one_label: bool = True):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        self.train_dataset = _Events(128, self.hparams.num_steps, 0)
        self.val_dataset = _Events(32, self.hparams.num_steps, 1)

    def train_dataloader(self):
        return DataLoader(self.train_dataset, batch_size=self.hparams.batch_size, collate_fn=_collate,
                          num_workers=self.hparams.num_workers, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_dataset, batch_size=self.hparams.batch_size, collate_fn=_collate,
                          num_workers=self.hparams.num_workers)
