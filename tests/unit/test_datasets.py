"""DatasetDataModule and DigitsDataset: datasets and metadata from config."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch.utils.data import Dataset

from tunecv.config import SplitConfig
from tunecv.datasets import DatasetDataModule, DigitsDataset
from tunecv.errors import ConfigError, DataError


class Squares(Dataset):
    """An importable dataset without metadata."""

    def __init__(self, n: int = 12) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return torch.tensor([float(i)]), torch.tensor(float(i * i))


SQUARES = {"class_path": "tests.unit.test_datasets.Squares", "init_args": {"n": 12}}


def test_without_metadata_the_frame_holds_sample_ids_only():
    dm = DatasetDataModule(dataset=SQUARES, batch_size=4)
    dataset, meta = dm.load()
    assert isinstance(dataset, Squares) and len(dataset) == 12
    assert list(meta.columns) == [] and list(meta.index) == list(range(12)) and meta.index.name == "sample_id"
    dm.configure_split(SplitConfig(fold_method="kfold", total_folds=3), fold=1, seed=42)
    dm.setup("fit")
    assert len(dm.train_set) == 8 and len(dm.val_set) == 4
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 1) and y.shape == (4,)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_metadata_file_drives_region_folds(tmp_path, suffix):
    meta = pd.DataFrame({"sample_id": [f"s{i}" for i in range(12)], "site": [f"a{i % 3}" for i in range(12)]})
    path = tmp_path / f"meta{suffix}"
    meta.to_csv(path, index=False) if suffix == ".csv" else meta.to_parquet(path)
    dm = DatasetDataModule(dataset=SQUARES, metadata=str(path), batch_size=4)
    dm.configure_split(SplitConfig(fold_method="region", total_folds=3, group_column="site"), fold=0, seed=1)
    idx = dm.indices
    train_sites = set(meta["site"].iloc[idx.train])
    val_sites = set(meta["site"].iloc[idx.val])
    assert len(val_sites) == 1 and not train_sites & val_sites


def test_dataset_metadata_attribute_is_used_without_a_file():
    dm = DatasetDataModule(dataset={"class_path": "tunecv.datasets.DigitsDataset", "init_args": {"limit": 60}})
    _, meta = dm.load()
    assert list(meta.columns) == ["label", "region"] and len(meta) == 60


@pytest.mark.parametrize(("setup", "message"), [
    ("rows", "must have one row per sample: .* has 5 rows for 12 samples"),
    ("missing", "must name an existing parquet or CSV file"),
    ("suffix", "must be a .parquet, .pq, .csv or .tsv file"),
])
def test_bad_metadata_is_a_data_error(tmp_path, setup, message):
    path = tmp_path / ("meta.txt" if setup == "suffix" else "meta.csv")
    if setup != "missing":
        pd.DataFrame({"a": range(5)}).to_csv(path, index=False)
    dm = DatasetDataModule(dataset=SQUARES, metadata=str(path))
    with pytest.raises(DataError, match=message):
        dm.load()


def test_a_bad_dataset_spec_names_the_key():
    dm = DatasetDataModule(dataset={"class_path": "tests.unit.test_datasets.Squares", "init_args": {"m": 3}})
    with pytest.raises(ConfigError, match=r"`data.init_args.dataset.init_args.m`: tests.unit.test_datasets.Squares takes no argument 'm'; valid: n"):
        dm.load()


def test_a_dataset_instance_works_from_python():
    dm = DatasetDataModule(dataset=Squares(6))
    assert len(dm.load()[0]) == 6


def test_digits_dataset_targets_by_name_or_order():
    both = DigitsDataset(targets=["digit", "ink"], limit=30)
    x, targets = both[3]
    assert x.shape == (64,) and list(targets) == ["digit", "ink"]
    assert targets["digit"].dtype == torch.long and targets["ink"].dtype == torch.float32
    assert abs(float(both.targets["ink"].mean())) < 1e-5
    _, ordered = DigitsDataset(targets=["digit", "ink"], as_dict=False, limit=30)[3]
    assert isinstance(ordered, tuple) and len(ordered) == 2
    _, bare = DigitsDataset(as_dict=False, limit=30)[3]
    assert isinstance(bare, torch.Tensor) and bare.ndim == 0
    with pytest.raises(DataError, match="must list some of digit, ink; got 'age'"):
        DigitsDataset(targets="age")
