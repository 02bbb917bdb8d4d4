"""Shared fixtures: tiny configs of the bundled examples, and a model package outside tunecv."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from tests.required_services import pytest_runtest_makereport  # noqa: F401  (a hook: skips fail in CI)
from tests.required_services import required as required_services

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("PYTHONWARNINGS", "ignore")
# Tiny models: one thread each is much faster than two threads fighting (and keeps parallel tests fair).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]


# What an xdist worker's environment must have as the controller has it: a worker starts with COLUMNS=80
# (and LINES) set, and tunecv's report honours COLUMNS (it prints 200 wide when piped only without it).
TERMINAL_ENV = ("COLUMNS", "LINES")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist, in the controller: hand each worker this process's terminal size variables (or their absence)."""
    node.workerinput["tunecv_terminal_env"] = {name: os.environ.get(name) for name in TERMINAL_ENV}


def pytest_configure(config):
    for name, value in getattr(config, "workerinput", {}).get("tunecv_terminal_env", {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def pytest_collection_modifyitems(config, items):
    from tunecv.executors import gpu_count

    has_cuda = gpu_count() > 0  # never touches CUDA in this (driver) process
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


def tiny_digits(tmp_path: Path, **extra) -> dict:
    """A digits config that trains in about a second."""
    cfg = {
        "artifact_dir": str(tmp_path / "artifacts"),
        "model": {"class_path": "tunecv.examples.digits.DigitsClassifier",
                  "init_args": {"hidden_dim": 16, "lr": 0.02}},
        "data": {"class_path": "tunecv.examples.digits.DigitsDataModule",
                 "init_args": {"batch_size": 64, "limit": 400}},
        "split": {"test_split": "random", "test_split_by": [0.2], "fold_method": "stratified",
                  "total_folds": 3, "stratify_column": "label"},
        "trainer": {"max_epochs": 2, "enable_model_summary": False, "enable_progress_bar": False},
        "accelerator": "cpu",
        "devices": [0],
        "early_stopping": {"monitor": "val/loss", "mode": "min", "patience": 2},
        "cv": {"n_seeds": 1, "scoring_metric": ["val/acc", "val/loss:lower"]},
    }
    for key, value in extra.items():
        cfg[key] = value
    return cfg


@pytest.fixture
def digits_cfg(tmp_path):
    return tiny_digits(tmp_path)


EXTERNAL_MODULE = '''
"""A model and data module that live outside the tunecv package."""
import lightning as L
import pandas as pd
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tunecv.data import SplitDataModule


class BlobData(SplitDataModule):
    def __init__(self, batch_size: int = 16, num_workers: int = 0, n: int = 180, n_regions: int = 9,
                 fail_on_fold: int = -1, kill_on_fold: int = -1, sleep: float = 0.0):
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        self.n = n
        self.n_regions = n_regions
        self.fail_on_fold = fail_on_fold
        self.kill_on_fold = kill_on_fold
        self.sleep = sleep

    def setup(self, stage=None):
        import os, signal, time
        if self.fold == self.fail_on_fold:
            raise ValueError(f"fold {self.fold} is broken on purpose")
        if self.fold == self.kill_on_fold:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.sleep and stage == "fit":
            time.sleep(self.sleep)
        super().setup(stage)

    def load(self):
        g = torch.Generator().manual_seed(0)
        y = torch.arange(self.n) % 3
        x = torch.randn(self.n, 4, generator=g) + y[:, None].float()
        meta = pd.DataFrame({"label": y.numpy(), "region": [f"site{i % self.n_regions}" for i in range(self.n)]})
        return TensorDataset(x, y), meta


class PlainData(L.LightningDataModule):
    """A plain LightningDataModule (no folds)."""
    def __init__(self, batch_size: int = 16):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(0)
        y = torch.arange(120) % 3
        x = torch.randn(120, 4, generator=g) + y[:, None].float()
        self.train_set = TensorDataset(x[:90], y[:90])
        self.val_set = TensorDataset(x[90:], y[90:])

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.val_set, batch_size=self.batch_size)


class BlobNet(L.LightningModule):
    def __init__(self, hidden: int = 8, lr: float = 0.05, fail: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))

    def _step(self, batch, stage):
        x, y = batch
        if self.hparams.fail:
            raise RuntimeError("boom: this model always fails")
        logits = self.net(x)
        loss = nn.functional.cross_entropy(logits, y)
        self.log(f"{stage}/loss", loss, on_epoch=True, on_step=False)
        self.log(f"{stage}/acc", (logits.argmax(1) == y).float().mean(), on_epoch=True, on_step=False)
        return loss

    def training_step(self, batch, i):
        return self._step(batch, "train")

    def validation_step(self, batch, i):
        self._step(batch, "val")

    def test_step(self, batch, i):
        self._step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class NoOptNet(BlobNet):
    """Leaves the optimizer to the config (LightningCLI optimizer: section)."""
    def configure_optimizers(self):
        raise NotImplementedError("use the optimizer: section")
'''


@pytest.fixture
def external_pkg(tmp_path, monkeypatch):
    """A package ``extmodels`` outside the repo, importable here and by subprocesses."""
    root = tmp_path / "outside"
    pkg = root / "extmodels"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(EXTERNAL_MODULE))
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    sys.modules.pop("extmodels", None)
    yield root
    sys.modules.pop("extmodels", None)


def ext_cfg(tmp_path: Path, **extra) -> dict:
    cfg = {
        "artifact_dir": str(tmp_path / "artifacts"),
        "model": {"class_path": "extmodels.BlobNet", "init_args": {"hidden": 8}},
        "data": {"class_path": "extmodels.BlobData", "init_args": {"batch_size": 32}},
        "split": {"fold_method": "kfold", "total_folds": 3},
        "trainer": {"max_epochs": 2, "enable_model_summary": False, "enable_progress_bar": False},
        "accelerator": "cpu",
        "devices": [0],
        "cv": {"n_seeds": 1, "scoring_metric": ["val/acc"]},
    }
    cfg.update(extra)
    return cfg


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node SLURM cluster (munged, slurmctld, slurmd) for the whole session.

    It exports ``SLURM_CONF`` for this process and every job; it is stopped and its folder (with the
    placeholder GPU devices) removed at the end. Skips only where the cluster cannot start (not root,
    SLURM not installed); ``.ci/run`` installs SLURM, so in CI it runs.
    """
    from tests.slurm.cluster import ClusterUnavailable, SlurmCluster, why_unavailable

    required = "slurm" in required_services()  # set by .ci/run: a skip there is a failure
    reason = why_unavailable()
    if reason:
        (pytest.fail if required else pytest.skip)(f"no SLURM test cluster: {reason}")
    cluster = SlurmCluster()
    try:
        cluster.start()
    except ClusterUnavailable as exc:
        (pytest.fail if required else pytest.skip)(f"the SLURM test cluster could not start: {exc}")
    yield cluster
    cluster.stop()
