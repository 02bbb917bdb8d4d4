"""A project's own LightningCLI (``cli:``) and the LightningCLI findings of issue 23 (1, 2, 4, 8, 10).

Each project here is written into ``tmp_path`` the way real projects are laid out (an entry point
``main.py`` next to its modules, a ``configs/`` folder); module names are unique per test so that the
projects of one session never see each other's modules.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import textwrap
import uuid
from pathlib import Path

import lightning  # noqa: F401 - imported here, its log handler writes to the real stderr, not a test's capture
import pandas as pd
import pytest
import yaml

from tunecv import user_cli
from tunecv.build import build_run
from tunecv.cli import main
from tunecv.config import parse_command
from tunecv.errors import ConfigError

TINY = "--trainer.max_epochs=1"
REPO = Path(__file__).resolve().parents[2]

MODULES = '''
import torch
from torch.utils.data import DataLoader, TensorDataset
import {pkg} as L


class Net(L.LightningModule):
    def __init__(self, num_classes: int = 2, hidden: int = 8, lr: float = 0.1):
        super().__init__()
        self.save_hyperparameters()
        self.layers = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(),
                                          torch.nn.Linear(hidden, num_classes))

    def step(self, batch, stage):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.layers(x), y)
        self.log(f"{{stage}}/loss", loss)
        return loss

    def training_step(self, batch, i):
        return self.step(batch, "train")

    def validation_step(self, batch, i):
        self.step(batch, "val")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class Data(L.LightningDataModule):
    def __init__(self, num_classes: int = 3, batch_size: int = 16):
        super().__init__()
        self.num_classes = num_classes
        self.batch_size = batch_size

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(96, 4, generator=g)
        y = torch.randint(0, self.num_classes, (96,), generator=g)
        self.train_dataset = TensorDataset(x[:64], y[:64])
        self.val_dataset = TensorDataset(x[64:], y[64:])

    def train_dataloader(self):
        return DataLoader(self.train_dataset, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_dataset, batch_size=self.batch_size)


class Note(L.Callback):
    def __init__(self, note, every=1):  # no annotations: LightningCLI builds it all the same
        self.note = note
        self.every = every


Note.__name__ = Note.__qualname__ = "{note}"  # unique per test: a short name must name one loaded class
{note} = Note
'''

SUBCLASS_MAIN = '''
from lightning.pytorch.cli import LightningCLI

from {mod} import Data, Net, {note}  # noqa: F401 - the configs name it by its short name


class ProjectCLI(LightningCLI):
    def add_arguments_to_parser(self, parser):
        parser.add_argument("--experiment", type=str, default="exp0")
        parser.link_arguments("data.num_classes", "model.num_classes")


def cli_main():
    ProjectCLI(Net, Data, parser_kwargs={{"fit": {{"default_config_files": ["configs/default.yaml"]}}}})


if __name__ == "__main__":
    cli_main()
'''

DEFAULT_YAML = "trainer:\n  max_epochs: 3\n  enable_progress_bar: false\n  enable_model_summary: false\n"
EXPERIMENT_YAML = """\
experiment: exp1
model:
  hidden: 16
data:
  num_classes: 4
trainer:
  callbacks:
    - class_path: {note}
      init_args: {{note: hi}}
"""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """Each test's project: its own cwd and modules, and tunecv's logger handlers left as they were."""
    logger = logging.getLogger("tunecv")
    handlers, propagate, level = list(logger.handlers), logger.propagate, logger.level
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    logger.handlers[:] = handlers
    logger.propagate, logger.level = propagate, level
    # one process runs one project: forget this one's modules and CLI, so that the next test's short class
    # names are not ambiguous (jsonargparse resolves them among every loaded subclass)
    for name in set(sys.modules) - modules:
        if name.startswith("proj_") or name in ("main", "project_cli"):
            del sys.modules[name]
    user_cli.clear_caches()
    gc.collect()


def project(tmp_path: Path, monkeypatch, main_py: str = SUBCLASS_MAIN, package: str = "lightning.pytorch") -> str:
    """Write a project (modules, entry point, configs) and chdir into it; returns its module name."""
    mod = f"proj_{uuid.uuid4().hex[:8]}"
    note = f"Note{mod[5:]}"
    (tmp_path / f"{mod}.py").write_text(MODULES.format(pkg=package, note=note))
    (tmp_path / "main.py").write_text(textwrap.dedent(main_py.format(mod=mod, note=note)))
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "default.yaml").write_text(DEFAULT_YAML)
    (tmp_path / "configs" / "exp.yaml").write_text(EXPERIMENT_YAML.format(note=note))
    (tmp_path / "tunecv.yaml").write_text("cv: {n_seeds: 1, scoring_metric: ['val/loss:lower']}\n"
                                          "split: {total_folds: 2}\n")
    monkeypatch.chdir(tmp_path)
    return mod


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("tunecv: error:") and "\n" not in err and "Traceback" not in err, err
    return err


# -- finding 1: the project's LightningCLI subclass and entry point --------------------------------------

def test_the_subclass_parser_applies_its_keys_links_default_files_and_short_names(tmp_path, monkeypatch):
    mod = project(tmp_path, monkeypatch)
    cfg = parse_command(["--cli", "main.py", "--config", "configs/exp.yaml"]).config
    assert cfg.cli == str(tmp_path / "main.py")
    assert cfg.extra == {"experiment": "exp1"}  # the project's own key (add_arguments_to_parser)
    assert cfg.trainer["max_epochs"] == 3  # its default config file (parser_kwargs={"fit": ...})
    assert cfg.trainer["callbacks"][0]["class_path"] == f"{mod}.Note{mod[5:]}"  # short name: main.py's imports
    built = build_run(cfg)
    assert type(built.model).__name__ == "Net" and built.model.hparams.num_classes == 4  # linked from data
    assert built.model.hparams.hidden == 16
    assert [type(cb).__name__ for cb in built.callbacks] == [f"Note{mod[5:]}"] and built.callbacks[0].note == "hi"
    again = build_run(cfg)
    assert again.model is not built.model and again.callbacks[0] is not built.callbacks[0]  # fresh per run


def test_train_cv_and_tune_run_the_project_unchanged(tmp_path, monkeypatch):
    project(tmp_path, monkeypatch)
    base = ["--cli", "main.py", "--config", "configs/exp.yaml", TINY, "--artifact_dir", "art"]
    assert main(["train", *base, "--name", "one"]) == 0
    run_dir = next((tmp_path / "art" / "_runs").glob("one-*"))
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["status"] == "completed" and "val/loss" in info["metrics"]
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert written["experiment"] == "exp1" and written["cli"].endswith("main.py")

    assert main(["cv", *base, "--config", "tunecv.yaml", "--name", "two-folds"]) == 0
    rows = pd.read_parquet(tmp_path / "art" / "_cross_validations" / "two-folds" / "run_infos.parquet")
    assert sorted(rows["fold"]) == [0, 1] and set(rows["status"]) == {"completed"}

    (tmp_path / "space.yaml").write_text("hyperparameters:\n  model.lr: {distribution: loguniform, low: 0.001, "
                                         "high: 0.1}\n")
    tune = ["--tune.search_space", "space.yaml", "--tune.n_trials", "2", "--tune.sampler", "random"]
    assert main(["tune", *base, "--config", "tunecv.yaml", *tune, "--name", "small"]) == 0
    table = pd.read_parquet(tmp_path / "art" / "small" / "run_infos.parquet")
    assert len(table) == 4 and table["model.lr"].nunique() == 2


ENTRY_FIXED = '''
import torch
from torch.utils.data import DataLoader, TensorDataset
import lightning.pytorch as L
from lightning.pytorch.cli import LightningCLI

from {mod} import Data


class Regressor(L.LightningModule):  # defined in the entry point itself
    def __init__(self, lr: float = 0.05):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(4, 3)

    def training_step(self, batch, i):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, i):
        x, y = batch
        self.log("val/loss", torch.nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


if __name__ == "__main__":
    LightningCLI(Regressor, Data, trainer_defaults={{"max_epochs": 1, "enable_progress_bar": False}})
'''


def test_an_entry_point_that_fixes_its_classes_runs_in_a_pool_of_workers(tmp_path, monkeypatch):
    project(tmp_path, monkeypatch, main_py=ENTRY_FIXED)
    (tmp_path / "cfg.yaml").write_text("model: {lr: 0.2}\n")
    cfg = parse_command(["--cli", "main.py", "--config", "cfg.yaml"]).config
    assert cfg.model == {"lr": 0.2} and cfg.trainer["max_epochs"] == 1  # trainer_defaults of the call
    args = ["cv", "--cli", "main.py", "--config", "cfg.yaml", "--config", "tunecv.yaml", "--artifact_dir", "art",
            "--name", "pooled", "--strategy", "cv-parallel", "--accelerator", "cpu", "--devices", "[0, 1]"]
    assert main(args) == 0
    rows = pd.read_parquet(tmp_path / "art" / "_cross_validations" / "pooled" / "run_infos.parquet")
    assert set(rows["status"]) == {"completed"} and len(rows) == 2


CLASS_WITH_INIT = '''
from lightning.pytorch.cli import LightningCLI

from {mod} import Data, Net


class FixedCLI(LightningCLI):
    def __init__(self, *args, **kwargs):
        self.chosen = "by-init"
        super().__init__(Net, Data, *args,
                         parser_kwargs={{"fit": {{"default_config_files": ["configs/default.yaml"]}}}}, **kwargs)
'''


def test_a_cli_class_whose_init_passes_its_own_arguments(tmp_path, monkeypatch):
    project(tmp_path, monkeypatch, main_py=CLASS_WITH_INIT)
    (tmp_path / "main.py").rename(tmp_path / "project_cli.py")
    cfg = parse_command(["--cli", "project_cli.FixedCLI", "--model.hidden", "5"]).config
    assert cfg.trainer["max_epochs"] == 3 and cfg.model["hidden"] == 5
    built = build_run(cfg)
    assert type(built.model).__name__ == "Net" and built.model.hparams.hidden == 5


# -- finding 2: the standalone pytorch_lightning package ---------------------------------------------------

def test_a_pytorch_lightning_config_is_parsed_by_pytorch_lightnings_cli(tmp_path, monkeypatch):
    pytest.importorskip("pytorch_lightning")
    mod = project(tmp_path, monkeypatch, package="pytorch_lightning")
    monkeypatch.syspath_prepend(str(tmp_path))  # without a cli, the project is installed (here: on the path)
    (tmp_path / "pl.yaml").write_text(f"model: {{class_path: {mod}.Net, init_args: {{num_classes: 3}}}}\n"
                                      f"data: {{class_path: {mod}.Data}}\n")
    cfg = parse_command(["--config", "pl.yaml"]).config
    assert cfg.cli == "pytorch_lightning.cli.LightningCLI"
    built = build_run(cfg)
    import pytorch_lightning

    assert isinstance(built.model, pytorch_lightning.LightningModule)


def test_mixing_the_two_lightning_packages_says_so(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pytorch_lightning")
    mod = project(tmp_path, monkeypatch, package="pytorch_lightning")
    monkeypatch.syspath_prepend(str(tmp_path))  # without a cli, the project is installed (here: on the path)
    (tmp_path / "mixed.yaml").write_text(f"model: {{class_path: {mod}.Net}}\n"
                                         "data: {class_path: tunecv.examples.digits.DigitsDataModule}\n")
    assert main(["train", "--config", "mixed.yaml", "--artifact_dir", "art"]) == 2
    err = one_line_error(capsys)
    assert "pytorch_lightning" in err and "lightning.pytorch" in err and "one Lightning package" in err
    assert not (tmp_path / "art").exists()


# -- finding 4: callbacks as LightningCLI builds them -------------------------------------------------------

def test_a_callback_without_annotations_is_built_as_lightningcli_builds_it(tmp_path, monkeypatch):
    mod = project(tmp_path, monkeypatch)
    monkeypatch.syspath_prepend(str(tmp_path))  # without a cli, the project is installed (here: on the path)
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump({
        "model": {"class_path": f"{mod}.Net", "init_args": {"num_classes": 3}},
        "data": {"class_path": f"{mod}.Data"},
        "trainer": {"max_epochs": 1, "enable_progress_bar": False,
                    "callbacks": [{"class_path": f"{mod}.Note{mod[5:]}", "init_args": {"note": "plain"}}]}}))
    cfg = parse_command(["--config", "plain.yaml"]).config
    built = build_run(cfg)
    assert [cb.note for cb in built.callbacks] == ["plain"]
    assert main(["train", "--config", "plain.yaml", "--artifact_dir", "art"]) == 0


# -- finding 8: error lines name the real cause ---------------------------------------------------------

def test_a_model_section_without_class_path_says_what_is_missing(tmp_path, monkeypatch, capsys):
    project(tmp_path, monkeypatch)
    (tmp_path / "bad.yaml").write_text("model: {out_dim: 3}\ndata: {class_path: tunecv.examples.digits.DigitsDataModule}\n")
    assert main(["train", "--config", "bad.yaml", "--artifact_dir", "art"]) == 2
    err = one_line_error(capsys)
    assert "needs a `class_path`" in err and "`model.out_dim`" in err and "cli" in err


def test_a_short_class_name_outside_its_cli_says_why(tmp_path, monkeypatch, capsys):
    project(tmp_path, monkeypatch)
    (tmp_path / "short.yaml").write_text("model: {class_path: Net}\n")
    assert main(["train", "--config", "short.yaml", "--artifact_dir", "art"]) == 2
    err = one_line_error(capsys)
    assert "'Net'" in err and "short name" in err and "--cli" in err


def test_the_projects_parser_errors_keep_jsonargparses_whole_reason_on_one_line(tmp_path, monkeypatch, capsys):
    project(tmp_path, monkeypatch)
    assert main(["train", "--cli", "main.py", "--model.hidden", "many", "--artifact_dir", "art"]) == 2
    err = one_line_error(capsys)
    assert "model.hidden" in err and "many" in err and "int" in err
    assert not (tmp_path / "art").exists()


def test_an_unknown_top_level_key_under_a_cli_lists_the_projects_keys(tmp_path, monkeypatch, capsys):
    project(tmp_path, monkeypatch)
    (tmp_path / "typo.yaml").write_text("experimnt: x\n")
    assert main(["train", "--cli", "main.py", "--config", "typo.yaml"]) == 2
    err = one_line_error(capsys)
    assert "`experimnt`" in err and "experiment" in err and "cv" in err


def test_a_cli_that_names_no_lightningcli_says_so(tmp_path, monkeypatch, capsys):
    project(tmp_path, monkeypatch)
    (tmp_path / "nothing.py").write_text("print('hello')\n")
    assert main(["train", "--cli", "nothing.py"]) == 2
    assert "constructed no LightningCLI" in one_line_error(capsys)


# -- finding 10: no prefix matching -------------------------------------------------------------------------

@pytest.mark.parametrize(("flag", "key"), [("--cv.n_seed", "cv.n_seed"), ("--trainer.max_epoch", "trainer.max_epoch")])
def test_an_abbreviated_flag_is_an_unknown_key(flag, key):
    with pytest.raises(ConfigError, match=f"`{key}`"):
        parse_command(["--config", str(REPO / "configs" / "digits" / "train.yaml"), flag, "2"])


def test_an_abbreviated_flag_under_a_cli_is_an_unknown_key(tmp_path, monkeypatch):
    project(tmp_path, monkeypatch)
    with pytest.raises(ConfigError, match="max_epoch"):
        parse_command(["--cli", "main.py", "--trainer.max_epoch", "2"])


def test_a_pytorch_lightning_logger_in_a_lightning_config_names_the_package_not_a_type(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pytorch_lightning")
    project(tmp_path, monkeypatch)
    (tmp_path / "mixlog.yaml").write_text("trainer:\n  logger:\n    - class_path: pytorch_lightning.loggers.CSVLogger\n"
                                          "      init_args: {save_dir: .}\n")
    digits = str(REPO / "configs" / "digits" / "train.yaml")
    assert main(["train", "--config", digits, "--config", "mixlog.yaml", "--artifact_dir", "art"]) == 2
    err = one_line_error(capsys)
    assert "`trainer.logger[0].class_path`" in err and "pytorch_lightning" in err and "save_dir" not in err
    assert not (tmp_path / "art").exists()
