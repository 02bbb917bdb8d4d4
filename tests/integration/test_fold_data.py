"""Folds of a plain LightningDataModule in real Trainer fits on CPU (lightning and pytorch_lightning)."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from tunecv.config import SplitConfig
from tunecv.fold_data import FoldedBase, for_run

N_TRAIN, N_VAL = 24, 8


class Points(Dataset):
    def __init__(self, start: int, n: int) -> None:
        self.ids = list(range(start, start + n))
        self.targets = [i % 2 for i in self.ids]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        return torch.tensor([float(self.ids[i])]), self.ids[i]


COLLATED: list[int] = []  # batch sizes seen by the project's collate_fn


def dict_collate(samples):
    COLLATED.append(len(samples))
    xs, ids = zip(*samples, strict=True)
    return {"x": torch.stack(xs) / 32, "id": torch.tensor(ids)}


def classes(package: str) -> tuple[type, type]:
    """A plain data module (own collate_fn, a dict batch, a batch hook) and a model, of ``package``."""
    pkg = importlib.import_module(package)

    class PlainDM(pkg.LightningDataModule):
        def setup(self, stage=None):
            self.train_dataset, self.val_dataset = Points(0, N_TRAIN), Points(N_TRAIN, N_VAL)

        def train_dataloader(self):
            return DataLoader(self.train_dataset, batch_size=4, shuffle=True, collate_fn=dict_collate)

        def val_dataloader(self):
            return DataLoader(self.val_dataset, batch_size=3, collate_fn=dict_collate)

        def on_after_batch_transfer(self, batch, dataloader_idx):
            return {**batch, "hooked": True}

    class Model(pkg.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)
            self.val_ids: list[int] = []

        def training_step(self, batch, batch_idx):
            assert batch["hooked"]
            return self.layer(batch["x"]).pow(2).mean()

        def validation_step(self, batch, batch_idx):
            assert batch["hooked"]
            self.val_ids += batch["id"].tolist()
            self.log("val/loss", self.layer(batch["x"]).pow(2).mean(), batch_size=len(batch["id"]))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return PlainDM, Model


@pytest.mark.parametrize("package", ["lightning.pytorch", "pytorch_lightning"])
def test_two_folds_of_a_plain_module_fit_with_its_collate_fn_and_disjoint_val_sets(package, tmp_path):
    pytest.importorskip(package)
    pkg = importlib.import_module(package)
    PlainDM, Model = classes(package)
    split = SplitConfig(fold_method="stratified", total_folds=2, labels="targets")
    val_sets = []
    for fold in range(2):
        COLLATED.clear()
        data = for_run(PlainDM(), split, fold, seed=42)
        assert isinstance(data, FoldedBase) and isinstance(data, pkg.LightningDataModule)
        model = Model()
        trainer = pkg.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                              enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                              default_root_dir=tmp_path)
        trainer.fit(model, datamodule=data)
        assert trainer.state.finished and trainer.datamodule is data
        assert sorted(model.val_ids) == data.indices.val.tolist()  # pool position == sample id here
        assert COLLATED[:4] == [4, 4, 4, 4] and 3 in COLLATED  # the fold's train (4) and val (3) loaders
        val_sets.append(set(model.val_ids))
    assert not val_sets[0] & val_sets[1] and val_sets[0] | val_sets[1] == set(range(N_TRAIN + N_VAL))


def test_checkpoint_and_logged_hparams_carry_the_inner_modules_state_and_hparams(tmp_path):
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    PlainDM, Model = classes("lightning.pytorch")

    class StatefulDM(PlainDM):
        def __init__(self, width: int = 3) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.restored = None

        def state_dict(self):
            return {"width": self.hparams.width}

        def load_state_dict(self, state_dict):
            self.restored = state_dict

    split = SplitConfig(fold_method="kfold", total_folds=2)
    kwargs = dict(accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
                  num_sanity_val_steps=0, default_root_dir=tmp_path)
    trainer = L.Trainer(max_epochs=1, logger=CSVLogger(tmp_path), **kwargs)
    trainer.fit(Model(), datamodule=for_run(StatefulDM(width=5), split, 1, seed=42))
    assert "width: 5" in (tmp_path / "lightning_logs" / "version_0" / "hparams.yaml").read_text()
    ckpt = trainer.checkpoint_callback.best_model_path
    inner = StatefulDM(width=5)
    L.Trainer(max_epochs=2, logger=False, **kwargs).fit(Model(), datamodule=for_run(inner, split, 1, 42),
                                                        ckpt_path=ckpt)
    assert inner.restored == {"width": 5}
