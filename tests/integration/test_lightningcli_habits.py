"""A LightningCLI user's configs and habits work unchanged (issue 10), and bad input is one line, exit 2.

Each test is one case that failed before the config layer was rebuilt on LightningCLI's own parser.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning  # noqa: F401 - imported here, its log handler writes to the real stderr, not a test's capture
import pytest
import yaml

from tunecv.cli import main
from tunecv.config import load_config
from tunecv.train import build_objects, read_result, train, trainer_device_kwargs

VAL_LOSS = "tests.compat.models.ValLossModel"
TINY_TRAINER = {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 2, "limit_test_batches": 2,
                "num_sanity_val_steps": 0, "enable_progress_bar": False, "enable_model_summary": False,
                "accelerator": "cpu", "devices": 1}


@pytest.fixture(autouse=True)
def _fresh_tunecv_logger():
    """``tunecv.cli.main`` attaches a handler to the captured stderr of its test; detach it afterwards."""
    logger = logging.getLogger("tunecv")
    handlers, propagate, level = list(logger.handlers), logger.propagate, logger.level
    yield
    logger.handlers[:] = handlers
    logger.propagate, logger.level = propagate, level


def lightning_config(tmp_path: Path, **extra) -> dict:
    """A config as a LightningCLI user writes it: model, data, trainer (each test adds what it is about)."""
    cfg = {"artifact_dir": str(tmp_path / "artifacts"),
           "model": {"class_path": VAL_LOSS, "init_args": {"hidden": 4}},
           "data": {"class_path": "tests.compat.models.RandomRegression", "init_args": {"with_test": False}},
           "trainer": dict(TINY_TRAINER)}
    cfg.update(extra)
    return cfg


def write(tmp_path: Path, cfg: dict, name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("tunecv: error:") and "\n" not in err and "Traceback" not in err, err
    return err


# -- 1. shorthand without init_args -----------------------------------------------------------------------

def test_shorthand_overrides_reach_the_model_and_the_optimizer(tmp_path, capsys):
    cfg = lightning_config(tmp_path, optimizer={"class_path": "torch.optim.SGD", "init_args": {"lr": 0.01}})
    path = write(tmp_path, cfg)
    assert main(["train", "--config", path, "--model.hidden", "16", "--optimizer.lr", "0.2", "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"] == {"class_path": VAL_LOSS, "init_args": {"hidden": 16, "lr": 0.01}}
    assert printed["optimizer"]["init_args"]["lr"] == 0.2 and "lr" not in printed["optimizer"]
    model, _ = build_objects(load_config(path, overrides={"model.hidden": 16, "optimizer.lr": 0.2}))
    assert model.hidden == 16
    optimizer = model.configure_optimizers()
    assert type(optimizer).__name__ == "SGD" and optimizer.param_groups[0]["lr"] == 0.2


def test_an_override_naming_no_key_is_an_error_not_stored(tmp_path, capsys):
    path = write(tmp_path, lightning_config(tmp_path))
    assert main(["train", "--config", path, "--model.hiden", "16"]) == 2
    err = one_line_error(capsys)
    assert "`model.init_args.hiden`" in err and "hidden" in err
    assert not (tmp_path / "artifacts").exists()


# -- 2. LightningCLI's top-level keys ---------------------------------------------------------------------

def test_seed_everything_is_the_run_seed_and_ckpt_path_starts_from_a_checkpoint(tmp_path):
    first = train(lightning_config(tmp_path, name="first", seed_everything=3, ckpt_path=None))
    assert first.seed == 3
    cfg = lightning_config(tmp_path, name="second", seed_everything=3, ckpt_path=first.last_checkpoint)
    cfg["trainer"]["max_epochs"] = 2
    second = train(cfg)
    lines = (second.run_dir / "csv" / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    epochs = {float(row.split(",")[header.index("epoch")]) for row in lines[1:] if row.split(",")[header.index("epoch")]}
    assert epochs == {1.0}  # epoch 0 came from the checkpoint, as LightningCLI fit --ckpt_path does


# -- 3. default monitors ------------------------------------------------------------------------------

def test_a_model_logging_val_loss_keeps_the_last_epoch_with_one_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="tunecv"):
        result = train(lightning_config(tmp_path))
    assert result.status == "completed" and Path(result.checkpoint).is_file()
    warnings = [r for r in caplog.records if "does not log 'val/loss'" in r.getMessage()]
    assert len(warnings) == 1 and "last epoch" in warnings[0].getMessage()


def test_a_model_logging_nothing_trains(tmp_path):
    cfg = lightning_config(tmp_path, model={"class_path": "lightning.pytorch.demos.boring_classes.BoringModel"},
                           data={"class_path": "lightning.pytorch.demos.boring_classes.BoringDataModule"})
    result = train(cfg)
    assert result.status == "completed" and Path(result.checkpoint).is_file()


def test_an_explicit_monitor_the_model_never_logs_is_one_line(tmp_path, capsys):
    path = write(tmp_path, lightning_config(tmp_path, checkpoint={"monitor": "val/acc"}))
    assert main(["train", "--config", path]) == 2
    err = one_line_error(capsys)
    assert "`checkpoint.monitor`" in err and "'val/acc'" in err and "val_loss" in err


def test_early_stopping_is_off_unless_configured(tmp_path):
    assert load_config(lightning_config(tmp_path)).early_stopping is None


# -- 4. user callbacks win ------------------------------------------------------------------------------

def test_user_checkpoint_and_early_stopping_replace_tunecv_s_own(tmp_path, capsys):
    cfg = lightning_config(tmp_path, name="user-cbs")
    cfg["trainer"]["max_epochs"] = 2
    cfg["trainer"]["callbacks"] = [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
         "init_args": {"monitor": "val_loss", "mode": "min", "filename": "mine-{epoch}"}},
        {"class_path": "lightning.pytorch.callbacks.EarlyStopping", "init_args": {"monitor": "val_loss"}},
    ]
    assert main(["train", "--config", write(tmp_path, cfg)]) == 0, capsys.readouterr().err
    (folder,) = (tmp_path / "artifacts" / "_runs").iterdir()
    result = read_result(folder)
    assert Path(result.checkpoint).name.startswith("mine-epoch=")  # read from the user's callback
    assert (folder / "checkpoints" / "last.ckpt").is_file()  # and --resume still finds a last checkpoint


# -- 5. LightningCLI's ReduceLROnPlateau with monitor -------------------------------------------------------

def test_reduce_lr_on_plateau_with_monitor(tmp_path):
    cfg = lightning_config(
        tmp_path, optimizer={"class_path": "torch.optim.Adam", "init_args": {"lr": 0.01}},
        lr_scheduler={"class_path": "lightning.pytorch.cli.ReduceLROnPlateau",
                      "init_args": {"monitor": "val_loss", "patience": 1}})
    assert train(cfg).status == "completed"


# -- 6. the test phase ------------------------------------------------------------------------------------

def test_no_test_step_with_a_test_split_skips_the_test_phase(tmp_path, caplog):
    cfg = lightning_config(tmp_path, data={"class_path": "tests.compat.models.RegressionSplitData"},
                           split={"test_split": "random", "test_split_by": [0.25], "fold_method": "kfold",
                                  "total_folds": 3})
    with caplog.at_level(logging.INFO, logger="tunecv"):
        result = train(cfg)
    assert result.status == "completed" and result.error is None
    assert any("no test phase" in r.getMessage() and "test_step" in r.getMessage() for r in caplog.records)


def test_no_test_step_with_a_test_dataloader_and_no_test_split(tmp_path):
    cfg = lightning_config(tmp_path, data={"class_path": "tests.compat.models.RandomRegression"})
    result = train(cfg)
    assert result.status == "completed" and result.error is None
    assert not any(k.startswith("test") for k in result.metrics)


def test_a_failing_test_phase_keeps_the_run_completed(tmp_path):
    cfg = lightning_config(tmp_path, model={"class_path": "tests.compat.models.TestedModel"},
                           data={"class_path": "tests.compat.models.RandomRegression", "init_args": {"with_test": True,
                                                                                                   "n": 96}})
    cfg["trainer"]["limit_test_batches"] = 0.5  # a float: fine
    ok = train(cfg)
    assert "test_loss" in ok.metrics
    cfg["name"] = "broken-test"
    cfg["data"]["init_args"]["with_test"] = False  # defines test_dataloader, which raises
    result = train(cfg)
    assert result.status == "completed" and result.error.startswith("test phase failed: RuntimeError: no test set")
    assert read_result(result.run_dir).status == "completed"


# -- 7. devices as a count -------------------------------------------------------------------------------------

def test_top_level_devices_takes_a_count(tmp_path, capsys):
    path = write(tmp_path, lightning_config(tmp_path))
    assert main(["train", "--config", path, "--devices", "2", "--accelerator", "cpu", "--print_config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["devices"] == 2
    cfg = load_config(path, overrides={"devices": 1, "accelerator": "cpu"})
    assert trainer_device_kwargs(cfg)["devices"] == 1
    assert load_config(path, overrides={"devices": [0, 1]}).devices == [0, 1]


# -- bad input: one line, exit 2, nothing on disk ------------------------------------------------------------

def test_artifact_dir_under_a_regular_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    path = write(tmp_path, lightning_config(tmp_path))
    assert main(["train", "--config", path, "--artifact_dir", str(tmp_path / "file" / "artifacts")]) == 2
    assert "`artifact_dir`" in one_line_error(capsys)


def test_a_config_file_that_is_not_utf8(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert main(["train", "--config", str(path)]) == 2
    err = one_line_error(capsys)
    assert "UTF-8" in err and "latin1.yaml" in err


def test_a_trainer_value_of_the_wrong_type_names_its_key(tmp_path, capsys):
    path = write(tmp_path, lightning_config(tmp_path))
    assert main(["cv", "--config", path, "--trainer.max_epochs", "abc"]) == 2
    err = one_line_error(capsys)
    assert "`trainer.max_epochs`" in err and "int" in err and "'abc'" in err
    assert not (tmp_path / "artifacts").exists()


def test_a_model_argument_of_the_wrong_type_names_the_full_key(tmp_path, capsys):
    path = write(tmp_path, lightning_config(tmp_path))
    for key in ("--model.init_args.hidden", "--model.hidden"):
        assert main(["train", "--config", path, key, "abc"]) == 2
        err = one_line_error(capsys)
        assert "`model.init_args.hidden` must be an int; got 'abc'" in err


def test_gpu_with_cv_parallel_on_a_machine_without_gpus(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    cfg = lightning_config(tmp_path, split={"fold_method": "kfold", "total_folds": 2},
                           data={"class_path": "tests.compat.models.RegressionSplitData"})
    path = write(tmp_path, cfg)
    code = main(["cv", "--config", path, "--accelerator", "gpu", "--strategy", "cv-parallel", "--devices", "[0, 1]"])
    assert code == 2
    err = one_line_error(capsys)
    assert "`accelerator`" in err or "`devices`" in err
    assert not (tmp_path / "artifacts").exists()


def test_lightning_s_own_user_errors_are_one_line_before_anything_is_written(tmp_path, capsys):
    path = write(tmp_path, lightning_config(tmp_path))
    assert main(["train", "--config", path, "--trainer.precision", "17"]) == 2
    assert "precision" in one_line_error(capsys)
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize("words", [["--trainer.nope", "1"], ["--split.fold_method", "regoin"], ["--nope", "1"]])
def test_unknown_keys_and_bad_choices_list_the_valid_options(tmp_path, capsys, words):
    path = write(tmp_path, lightning_config(tmp_path))
    assert main(["train", "--config", path, *words]) == 2
    err = one_line_error(capsys)
    assert words[0][2:] in err
