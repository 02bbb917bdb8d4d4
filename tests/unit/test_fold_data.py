"""tunecv.fold_data: folds of a plain LightningDataModule (pool, fold indices, loader settings, labels, errors)."""

from __future__ import annotations

import pickle
import warnings
from typing import ClassVar

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import KFold, StratifiedKFold
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    WeightedRandomSampler,
    random_split,
)

from tunecv import _fold_pool, fold_data
from tunecv.config import SplitConfig
from tunecv.data import SplitDataModule
from tunecv.errors import DataError
from tunecv.fold_data import FoldedBase, FoldedDataModule, check, for_run, wrap

N_TRAIN, N_VAL = 30, 10
N = N_TRAIN + N_VAL


class Points(Dataset):
    """Samples ``start..start+n-1``: ``(x, id)`` with ``targets`` (3 classes) and ``regions`` (8 groups)."""

    def __init__(self, start: int, n: int) -> None:
        self.ids = list(range(start, start + n))
        self.targets = [i % 3 for i in self.ids]
        self.regions = [f"r{i % 8}" for i in self.ids]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        return torch.tensor([float(self.ids[i])]), self.ids[i]


def dict_collate(samples):
    """The project's own collate_fn: a dict batch."""
    xs, ids = zip(*samples, strict=True)
    return {"x": torch.stack(xs), "id": torch.tensor(ids)}


def labels_of(dataset):
    """A dotted-path label function: one label per sample of a pooled dataset."""
    return [i % 3 for i in dataset.ids]


class PlainDM(L.LightningDataModule):
    """A project's data module: own datasets, collate_fn and loader settings; counts its setup calls."""

    def __init__(self) -> None:
        super().__init__()
        self.prepared = self.set_up = 0
        self.num_classes = 3

    def prepare_data(self) -> None:
        self.prepared += 1

    def setup(self, stage=None) -> None:
        self.set_up += 1
        self.train_dataset, self.val_dataset = Points(0, N_TRAIN), Points(N_TRAIN, N_VAL)

    def train_dataloader(self):
        return DataLoader(self.train_dataset, batch_size=4, shuffle=True, drop_last=True, collate_fn=dict_collate)

    def val_dataloader(self):
        return DataLoader(self.val_dataset, batch_size=5, collate_fn=dict_collate)

    def get_labels(self):
        return [i % 3 for i in range(N)]


class TrainOnlyDM(PlainDM):
    val_dataloader = L.LightningDataModule.val_dataloader


def split(method: str = "kfold", k: int = 5, **kw) -> SplitConfig:
    return SplitConfig(fold_method=method, total_folds=k, **kw)


def folds(dm_factory, sp: SplitConfig, seed: int = 42):
    return [wrap(dm_factory(), sp, f, seed).indices for f in range(sp.total_folds)]


# -- folds ------------------------------------------------------------------------------------------------

def test_kfold_folds_are_sklearns_over_the_pool_of_train_then_val():
    got = folds(PlainDM, split("kfold", 5), seed=7)
    want = list(KFold(5, shuffle=True, random_state=7).split(np.zeros((N, 1))))
    for idx, (train, val) in zip(got, want, strict=True):
        assert idx.train.tolist() == sorted(train) and idx.val.tolist() == sorted(val) and len(idx.test) == 0
        assert not set(idx.train) & set(idx.val)
    assert sorted(np.concatenate([i.val for i in got]).tolist()) == list(range(N))


def test_folds_depend_on_the_seed_only():
    a, b, c = (wrap(PlainDM(), split(), 1, s).indices for s in (3, 3, 4))
    assert a.val.tolist() == b.val.tolist() != c.val.tolist()


def test_the_inner_module_is_set_up_once_and_its_samples_are_served_by_fold():
    dm = PlainDM()
    folded = wrap(dm, split("kfold", 4), 2, 42)
    for stage in ("fit", "validate", "fit"):
        folded.prepare_data()
        folded.setup(stage)
    assert dm.prepared == 1 and dm.set_up == 1
    val_ids = [i for b in folded.val_dataloader() for i in b["id"].tolist()]
    train_ids = [i for b in folded.train_dataloader() for i in b["id"].tolist()]
    assert val_ids == folded.indices.val.tolist()  # pool position == sample id here: train ids, then val ids
    assert set(train_ids) <= set(folded.indices.train.tolist()) and not set(train_ids) & set(val_ids)


def test_the_fold_loaders_keep_the_projects_loader_settings():
    folded = wrap(PlainDM(), split(), 0, 42)
    folded.setup("fit")
    train, val = folded.train_dataloader(), folded.val_dataloader()
    assert train.collate_fn is dict_collate and val.collate_fn is dict_collate
    assert (train.batch_size, train.drop_last, type(train.sampler)) == (4, True, RandomSampler)
    assert (val.batch_size, val.drop_last, type(val.sampler)) == (5, False, SequentialSampler)
    batches = list(train)
    assert all(set(b) == {"x", "id"} and len(b["id"]) == 4 for b in batches) and len(batches) == 32 // 4


def test_loader_settings_carried_one_by_one():
    gen = torch.Generator().manual_seed(1)

    def init(worker_id: int) -> None:
        pass

    like = DataLoader(Points(0, 10), batch_size=3, shuffle=True, num_workers=2, pin_memory=True, drop_last=True,
                      persistent_workers=True, worker_init_fn=init, generator=gen, timeout=5, prefetch_factor=3)
    got = _fold_pool.fold_loader(Subset(Points(0, 10), [1, 2, 3]), like, train=True, where="x")
    assert (got.num_workers, got.pin_memory, got.drop_last, got.persistent_workers, got.timeout,
            got.prefetch_factor, got.batch_size) == (2, True, True, True, 5, 3, 3)
    assert got.worker_init_fn is init and got.generator is gen and type(got.sampler) is RandomSampler


def test_a_batch_sampler_of_torchs_is_carried_and_a_custom_one_warns():
    plain = DataLoader(Points(0, 10), batch_sampler=BatchSampler(SequentialSampler(range(10)), 3, True))
    got = _fold_pool.fold_loader(Subset(Points(0, 10), list(range(7))), plain, train=True, where="x")
    assert (got.batch_size, got.drop_last, type(got.sampler)) == (3, True, RandomSampler)

    class Buckets(BatchSampler):
        pass

    custom = DataLoader(Points(0, 10), batch_sampler=Buckets(SequentialSampler(range(10)), 2, False))
    with pytest.warns(UserWarning, match="Buckets of x samples the project's dataset by its own indices"):
        got = _fold_pool.fold_loader(Subset(Points(0, 10), list(range(7))), custom, train=True, where="x")
    assert got.batch_size == 2 and type(got.sampler) is RandomSampler


def test_a_custom_sampler_warns_and_the_fold_shuffles_instead():
    class WeightedDM(PlainDM):
        def train_dataloader(self):
            sampler = WeightedRandomSampler([1.0] * N_TRAIN, N_TRAIN)
            return DataLoader(self.train_dataset, batch_size=4, sampler=sampler, collate_fn=dict_collate)

    folded = wrap(WeightedDM(), split(), 0, 42)
    folded.setup("fit")
    with pytest.warns(UserWarning, match=r"WeightedRandomSampler of WeightedDM.train_dataloader\(\) .* shuffles"):
        train = folded.train_dataloader()
    assert type(train.sampler) is RandomSampler and train.collate_fn is dict_collate


def test_a_random_sampler_with_replacement_is_carried():
    like = DataLoader(Points(0, 10), batch_size=2, sampler=RandomSampler(range(10), replacement=True))
    got = _fold_pool.fold_loader(Subset(Points(0, 10), [0, 1, 2]), like, train=True, where="x")
    assert type(got.sampler) is RandomSampler and got.sampler.replacement and got.sampler.num_samples == 3


def test_a_subset_random_sampler_pools_its_subset_only():
    class OneDatasetDM(PlainDM):
        def setup(self, stage=None):
            self.full = Points(0, 20)

        def train_dataloader(self):
            return DataLoader(self.full, batch_size=4, sampler=SubsetRandomSampler(range(0, 12)))

        def val_dataloader(self):
            return DataLoader(self.full, batch_size=4, sampler=SubsetRandomSampler(range(12, 20)))

    folded = wrap(OneDatasetDM(), split("kfold", 4), 0, 42)
    pool = folded.pooled()
    assert pool.sizes == [12, 8]
    ids = sorted(int(pool.dataset[i][1]) for i in range(len(pool.dataset)))
    assert ids == list(range(20))


def test_without_a_val_loader_only_the_train_data_is_pooled():
    folded = wrap(TrainOnlyDM(), split("kfold", 3), 1, 42)
    folded.setup("fit")
    assert len(folded.pooled().dataset) == N_TRAIN
    val = folded.val_dataloader()
    assert (val.batch_size, val.drop_last, type(val.sampler), val.collate_fn) == (4, False, SequentialSampler,
                                                                                 dict_collate)
    assert sorted(np.concatenate([wrap(TrainOnlyDM(), split("kfold", 3), f, 42).indices.val
                                  for f in range(3)]).tolist()) == list(range(N_TRAIN))


def test_the_same_dataset_in_train_and_val_is_pooled_once():
    class SameDM(PlainDM):
        def val_dataloader(self):
            return [DataLoader(self.train_dataset, batch_size=5)]

    assert len(wrap(SameDM(), split(), 0, 42).pooled().dataset) == N_TRAIN


def test_fold_method_none_serves_the_projects_own_loaders():
    dm = PlainDM()
    assert for_run(dm, split("none", 1), 0, 42) is dm
    folded = wrap(dm, split("none", 1), 0, 42)
    folded.setup("fit")
    assert len(folded.train_dataloader().dataset) == N_TRAIN and len(folded.val_dataloader().dataset) == N_VAL


# -- labels and groups -----------------------------------------------------------------------------------

@pytest.mark.parametrize("labels", ["get_labels", "targets", "tests.unit.test_fold_data.labels_of", "label_list",
                                    "label_stages"])
def test_stratified_folds_take_labels_from_module_datasets_or_a_function(labels):
    class LabelledDM(PlainDM):
        label_list: ClassVar[list[int]] = [i % 3 for i in range(N)]

        def label_stages(self):
            return {"train": torch.tensor(self.label_list[:N_TRAIN]), "val": self.label_list[N_TRAIN:]}

    got = folds(LabelledDM, split("stratified", 4, labels=labels), seed=5)
    y = np.array([i % 3 for i in range(N)])
    want = list(StratifiedKFold(4, shuffle=True, random_state=5).split(np.zeros((N, 1)), y))
    assert [g.val.tolist() for g in got] == [sorted(v) for _, v in want]


def test_labels_of_a_random_split_subset_come_from_its_dataset():
    class SplitDM(PlainDM):
        def setup(self, stage=None):
            self.train_dataset, self.val_dataset = random_split(Points(0, N), [N_TRAIN, N_VAL],
                                                                generator=torch.Generator().manual_seed(0))

    folded = wrap(SplitDM(), split("stratified", 3, labels="targets"), 0, 42)
    meta, _ = fold_data._metadata(folded.inner, folded.pooled(), folded.split)
    ids = [int(folded.pooled().dataset[i][1]) for i in range(N)]
    assert meta["targets"].tolist() == [i % 3 for i in ids]


def test_region_folds_keep_each_group_of_split_groups_whole():
    sp = split("region", 4, groups="regions")
    regions = np.array([f"r{i % 8}" for i in range(N)])
    seen = []
    for idx in folds(PlainDM, sp):
        val_groups = set(regions[idx.val])
        assert not val_groups & set(regions[idx.train])
        seen += sorted(val_groups)
    assert sorted(seen) == sorted(set(regions))


def test_region_stratified_takes_labels_and_groups():
    got = folds(PlainDM, split("region-stratified", 4, labels="targets", groups="regions"))
    assert sorted(np.concatenate([g.val for g in got]).tolist()) == list(range(N))


def test_shuffle_stratifies_when_labels_are_given():
    idx = wrap(PlainDM(), split("shuffle", 5, labels="targets"), 0, 42).indices
    assert len(idx.val) == 8 and sorted(np.bincount(np.arange(N)[idx.val] % 3).tolist()) == [2, 3, 3]


# -- errors -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("sp", "message"), [
    (split("stratified"), "`split.labels` must be set for fold_method stratified: a method or attribute of PlainDM "
                          "or of its datasets giving one label per sample, or a dotted function path "
                          "pkg.mod.fn(dataset) -> labels; got None"),
    (split("region"), "`split.groups` must be set for fold_method region: a method or attribute of PlainDM or of "
                      "its datasets giving one group per sample"),
    (split("region-stratified", groups="regions"), "`split.labels` must be set for fold_method region-stratified"),
    (split(test_split="random", test_split_by=[0.2]), "`split.test_split` must be none for a plain "
                                                     "LightningDataModule (PlainDM)"),
    (split("stratified", stratify_column="species"), "`split.stratify_column` names a metadata column of a "
                                                     "SplitDataModule; PlainDM is a plain LightningDataModule: set "
                                                     "`split.labels`"),
    (split("stratified", labels="no_such.module.fn"), "`split.labels` must be importable; got 'no_such.module.fn'"),
])
def test_check_refuses_a_bad_combination_in_one_line(sp, message):
    with pytest.raises(DataError) as err:
        check(PlainDM(), sp)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    with pytest.raises(DataError) as err:
        check(PlainDM, sp)  # the class alone, as at the start of a cv, before any module is built
    assert str(err.value).startswith(message)
    with pytest.raises(DataError):
        for_run(PlainDM(), sp, 0, 42)


def test_split_labels_with_a_split_data_module_is_refused():
    class Tiny(SplitDataModule):
        pass

    with pytest.raises(DataError, match=r"`split.labels` is for a plain LightningDataModule; Tiny is a "
                                        r"SplitDataModule.*use `split.stratify_column`; got 'targets'"):
        check(Tiny(), split("stratified", labels="targets", stratify_column="y"))
    tiny = Tiny()
    assert for_run(tiny, split("kfold"), 0, 42) is tiny


@pytest.mark.parametrize(("sp", "message"), [
    (split("stratified", labels="nothing"), "`split.labels` must be a method or attribute of PlainDM or of its "
                                            "datasets giving one label per sample, or a dotted function path "
                                            "pkg.mod.fn(dataset) -> labels: neither PlainDM nor its datasets "
                                            "Points, Points have it; got 'nothing'"),
    (split("stratified", labels="short"), "`split.labels` must give one value per sample (40 samples) from "
                                          "PlainDM.short; got 3 values"),
    (split("stratified", labels="num_classes"), "`split.labels` must give one value per sample (40 samples) from "
                                                "PlainDM.num_classes; got int 3"),
    (split("stratified", 20, labels="targets"), "`split.total_folds` must be at most the size of every class of "
                                                "split.labels 'targets' for fold_method 'stratified'"),
    (split("region", 9, groups="regions"), "`split.total_folds` must be at most the number of groups in "
                                           "split.groups 'regions' for fold_method 'region': 8 groups exist; got 9"),
])
def test_bad_labels_or_groups_are_data_errors_in_one_line(sp, message):
    class ShortDM(PlainDM):
        short: ClassVar[list[int]] = [0, 1, 2]

    with pytest.raises(DataError) as err:
        wrap(ShortDM(), sp, 0, 42).prepare_fold()
    got = str(err.value).replace("ShortDM", "PlainDM")
    assert got.startswith(message) and "\n" not in got


def test_an_iterable_dataset_cannot_be_folded():
    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(4))

    class StreamDM(PlainDM):
        def train_dataloader(self):
            return DataLoader(Stream(), batch_size=2)

    with pytest.raises(DataError, match=r"^`split.fold_method` must be none for StreamDM: a loader of it reads an "
                                        r"IterableDataset \(Stream\), which has no indices to cut folds from .*"
                                        r"got 'kfold'$"):
        wrap(StreamDM(), split(), 0, 42).prepare_fold()


def test_a_data_module_is_required():
    with pytest.raises(DataError, match=r"`data` must be a LightningDataModule .*; got builtins\.object"):
        for_run(object(), split(), 0, 42)


def test_a_fold_out_of_range_is_refused():
    with pytest.raises(DataError, match=r"`fold` must be an integer in \[0, 4\]"):
        wrap(PlainDM(), split(), 5, 42).prepare_fold()


# -- what stays the project's -------------------------------------------------------------------------------

def test_hooks_state_hparams_test_and_attributes_are_the_inner_modules():
    from lightning.pytorch.utilities.model_helpers import is_overridden

    class HookedDM(PlainDM):
        def __init__(self, width: int = 3) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.state = {"epoch": 0}

        def transfer_batch_to_device(self, batch, device, dataloader_idx):
            return ("moved", batch)

        def state_dict(self):
            return dict(self.state)

        def load_state_dict(self, state_dict):
            self.state = dict(state_dict)

        def test_dataloader(self):
            return DataLoader(Points(100, 4), batch_size=2)

    dm = HookedDM()
    folded = wrap(dm, split(), 0, 42)
    assert folded.transfer_batch_to_device(1, "cpu", 0) == ("moved", 1)
    assert is_overridden("transfer_batch_to_device", folded) and not is_overridden("on_before_batch_transfer", folded)
    assert not is_overridden("transfer_batch_to_device", wrap(PlainDM(), split(), 0, 42))
    folded.load_state_dict({"epoch": 3})
    assert dm.state == {"epoch": 3} and folded.state_dict() == {"epoch": 3}
    assert folded.hparams == {"width": 3} and folded.hparams_initial == {"width": 3}
    assert folded.num_classes == 3 and folded.inner is dm
    assert folded.has_test and not wrap(PlainDM(), split(), 0, 42).has_test
    assert len(folded.test_dataloader().dataset) == 4
    trainer = object()
    folded.trainer = trainer
    assert dm.trainer is trainer and folded.trainer is trainer


def test_for_run_wraps_a_lightning_module_in_a_lightning_data_module():
    folded = for_run(PlainDM(), split(), 1, 42)
    assert type(folded) is FoldedDataModule and isinstance(folded, L.LightningDataModule)
    assert (folded.fold, folded.seed) == (1, 42)


def test_a_pytorch_lightning_module_gets_a_pytorch_lightning_wrapper_that_pickles():
    folded = for_run(PlDM(), split("kfold", 3), 1, 42)
    pl = pytest.importorskip("pytorch_lightning")
    assert isinstance(folded, pl.LightningDataModule) and isinstance(folded, FoldedBase)
    assert not isinstance(folded, L.LightningDataModule)
    again = pickle.loads(pickle.dumps(folded))
    assert type(again) is type(folded) and again.indices.val.tolist() == folded.indices.val.tolist()


try:
    import pytorch_lightning as _pl

    class PlDM(_pl.LightningDataModule):
        def setup(self, stage=None):
            self.data = Points(0, 12)

        def train_dataloader(self):
            return DataLoader(self.data, batch_size=2, collate_fn=dict_collate)
except ImportError:  # pragma: no cover
    PlDM = None


# -- SplitDataModule's collate_fn -----------------------------------------------------------------------------

class FrameDM(SplitDataModule):
    def load(self):
        return Points(0, 12), pd.DataFrame(index=range(12))


class CollatingDM(FrameDM):
    def collate_fn(self, samples):
        return {"n": len(samples)}


def test_split_data_module_takes_a_collate_fn_argument_or_method():
    dm = FrameDM(batch_size=4, collate_fn=dict_collate)
    dm.configure_split(split("kfold", 3), 0, 42)
    dm.setup("fit")
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        assert loader.collate_fn is dict_collate and set(next(iter(loader))) == {"x", "id"}
    sub = CollatingDM(batch_size=4)
    sub.configure_split(split("kfold", 3), 0, 42)
    sub.setup("fit")
    assert next(iter(sub.train_dataloader())) == {"n": 4}
    plain = FrameDM(batch_size=4)
    plain.configure_split(split("kfold", 3), 0, 42)
    plain.setup("fit")
    assert isinstance(next(iter(plain.val_dataloader())), list)
    with pytest.raises(DataError, match=r"`data\.init_args\.collate_fn` must be a function"):
        FrameDM(collate_fn=3)


def test_no_warning_for_standard_samplers():
    folded = wrap(PlainDM(), split(), 0, 42)
    folded.setup("fit")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folded.train_dataloader()
        folded.val_dataloader()


def test_a_config_names_the_collate_fn_of_a_split_data_module_by_dotted_path():
    from tunecv.build import instantiate

    dm = instantiate({"class_path": "tests.unit.test_fold_data.FrameDM",
                      "init_args": {"batch_size": 4, "collate_fn": "tests.unit.test_fold_data.dict_collate"}},
                     L.LightningDataModule, "data")
    assert dm.collate_fn is dict_collate


def test_in_a_trainer_prepare_data_is_left_to_lightning():
    dm = PlainDM()
    folded = wrap(dm, split(), 0, 42)
    folded.trainer = object()  # Lightning calls prepare_data itself, on local rank 0 only
    folded.setup("fit")
    assert dm.prepared == 0 and dm.set_up == 1
