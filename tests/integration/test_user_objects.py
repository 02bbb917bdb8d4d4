"""A user's own callbacks, loggers and checkpoints in real runs (issue 23): each test failed before the fix."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import pytest
import yaml
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from tests.conftest import tiny_digits
from tests.integration._user_callbacks import CountsCheckpoints
from tunecv.cli import main
from tunecv.cv import cross_validate
from tunecv.train import build_callbacks, read_result, train

HELPERS = "tests.integration._user_callbacks"


def metric_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "csv" / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def val_loss_of_epoch(run_dir: Path, epoch: int) -> float:
    """The val/loss the fit itself logged at ``epoch`` (its first validation row of that epoch)."""
    return next(float(r["val/loss"]) for r in metric_rows(run_dir) if r.get("val/loss") and int(r["epoch"]) == epoch)


def best_epoch(checkpoint: str) -> int:
    return int(Path(checkpoint).name.split("epoch")[1].split("-")[0].lstrip("=").split(".")[0])


# -- 1. trainer.enable_checkpointing ---------------------------------------------------------------------

def test_enable_checkpointing_true_trains(tmp_path, capsys):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(tiny_digits(tmp_path, name="ckpt-on")))
    code = main(["train", "--config", str(path), "--trainer.enable_checkpointing", "true",
                 "--trainer.max_epochs", "1"])
    assert code == 0, capsys.readouterr().err
    (folder,) = (tmp_path / "artifacts" / "_runs").iterdir()
    result = read_result(folder)
    assert result.status == "completed" and Path(result.checkpoint).is_file()


def test_enable_checkpointing_false_keeps_no_checkpoint_and_resume_restarts(tmp_path, caplog):
    cfg = tiny_digits(tmp_path, name="ckpt-off", early_stopping=None)
    cfg["trainer"]["enable_checkpointing"] = False
    counter = CountsCheckpoints()
    first = train(cfg, callbacks=[counter])
    assert first.status == "completed" and first.checkpoint is None and first.last_checkpoint is None
    assert counter.counts[0] == 0
    assert not list(first.run_dir.rglob("*.ckpt"))
    assert {"val/loss", "val/acc", "test/loss"} <= set(first.metrics)
    (first.run_dir / "run_info.json").unlink()  # interrupted before it recorded its result
    with caplog.at_level(logging.WARNING, logger="tunecv"):
        second = train(cfg, resume=True)
    assert second.status == "completed" and second.run_dir == first.run_dir
    assert any("keeps no checkpoint" in r.getMessage() and "from scratch" in r.getMessage() for r in caplog.records)
    assert min(int(r["epoch"]) for r in metric_rows(second.run_dir) if r["epoch"]) == 0  # it started again


def test_enable_checkpointing_false_with_a_user_checkpoint_is_one_line(tmp_path, capsys):
    cfg = tiny_digits(tmp_path)
    cfg["trainer"].update(enable_checkpointing=False, callbacks=[
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"monitor": "val/loss"}}])
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "enable_checkpointing" in err and "\n" not in err
    assert not (tmp_path / "artifacts").exists()


# -- 3. metrics of the run's own fit, whatever a user's callback runs afterwards -----------------------------

@pytest.mark.parametrize("callback", ["TestsOnFitEnd", "ValidatesOtherDataOnFitEnd", "ValidatesInTeardown"])
def test_a_callback_validating_or_testing_after_the_fit_keeps_the_run_metrics(tmp_path, callback):
    cfg = tiny_digits(tmp_path, early_stopping=None, split={"test_split": "random", "test_split_by": [0.2],
                                                            "fold_method": "kfold", "total_folds": 2})
    cfg["trainer"]["max_epochs"] = 3
    cfg["trainer"]["callbacks"] = [{"class_path": f"{HELPERS}.{callback}"}]
    cfg["cv"] = {**cfg["cv"], "n_folds": 2}
    result = cross_validate(cfg, name=f"cbs-{callback.lower()}", progress=False)
    assert math.isfinite(result.score) and result.score > 0
    rows = result.run_infos
    assert len(rows) == 2 and set(rows["status"]) == {"completed"}
    for _, row in rows.iterrows():
        run_dir = Path(row["checkpoint"]).parent.parent
        # val/loss is the fit's own, at its best checkpoint's epoch (tunecv's checkpoint monitors val/acc)
        assert row["val/loss"] == pytest.approx(val_loss_of_epoch(run_dir, best_epoch(row["checkpoint"])))
        assert not math.isnan(row["test/acc"])  # tunecv's own test phase is still added


def test_the_run_metrics_are_those_of_the_best_epoch_without_validating_again(tmp_path):
    cfg = tiny_digits(tmp_path, name="best-epoch", early_stopping=None, checkpoint={"monitor": "val/loss"})
    cfg["trainer"]["max_epochs"] = 4
    cfg["model"]["init_args"]["lr"] = 0.5  # jumpy: the best epoch is often not the last
    result = train(cfg)
    epoch = best_epoch(result.checkpoint)
    assert result.metrics["val/loss"] == pytest.approx(val_loss_of_epoch(result.run_dir, epoch))
    assert min(float(r["val/loss"]) for r in metric_rows(result.run_dir) if r.get("val/loss")) == pytest.approx(
        result.metrics["val/loss"])


# -- 4. the user's ModelCheckpoint / EarlyStopping replace tunecv's -----------------------------------------

def test_a_checkpoint_given_in_code_decides_the_best_checkpoint(tmp_path):
    cfg = tiny_digits(tmp_path, name="code-ckpt", checkpoint={"monitor": "val/loss"},
                      early_stopping={"monitor": "val/loss", "patience": 5})
    counter = CountsCheckpoints()
    mine = ModelCheckpoint(monitor="val/acc", mode="max", filename="mine-{epoch}")
    stop = EarlyStopping(monitor="val/acc", mode="max", patience=3)
    result = train(cfg, callbacks=[mine, stop, counter])
    assert counter.counts[:2] == (1, 1)  # no second checkpoint or early stopping of tunecv's
    assert Path(result.checkpoint).name.startswith("mine-epoch=")
    assert Path(mine.dirpath) == result.run_dir / "checkpoints" and Path(result.last_checkpoint).is_file()
    assert result.metrics["val/acc"] == pytest.approx(float(mine.best_model_score))


def test_a_checkpoint_subclass_in_trainer_callbacks_wins_over_the_checkpoint_keys(tmp_path):
    cfg = tiny_digits(tmp_path, name="sub-ckpt", checkpoint={"monitor": "val/loss"},
                      early_stopping={"monitor": "val/loss", "patience": 5})
    cfg["trainer"]["callbacks"] = [
        {"class_path": f"{HELPERS}.MyCheckpoint",
         "init_args": {"monitor": "val/acc", "mode": "max", "filename": "sub-{epoch}"}},
        {"class_path": "lightning.pytorch.callbacks.EarlyStopping", "init_args": {"monitor": "val/acc", "mode": "max"}},
    ]
    counter = CountsCheckpoints()
    result = train(cfg, callbacks=[counter])
    assert counter.counts == (1, 1, ["MyCheckpoint"])
    assert Path(result.checkpoint).name.startswith("sub-epoch=")
    assert (result.run_dir / "checkpoints" / "last.ckpt").is_file()


def test_checkpoints_and_early_stopping_of_pytorch_lightning_are_recognised(tmp_path):
    pl_callbacks = pytest.importorskip("pytorch_lightning.callbacks")
    from tunecv.config import load_config

    cfg = load_config(tiny_digits(tmp_path, checkpoint={"monitor": "val/loss"}))
    mine = pl_callbacks.ModelCheckpoint(monitor="val/acc", mode="max")
    stop = pl_callbacks.EarlyStopping(monitor="val/acc", mode="max")
    callbacks, checkpoint, _ = build_callbacks(cfg, tmp_path / "run-abcd1234", [mine, stop],
                                               package="pytorch_lightning")
    assert checkpoint is mine and mine.save_last and mine.dirpath == str(tmp_path / "run-abcd1234" / "checkpoints")
    assert sum(isinstance(c, (ModelCheckpoint, pl_callbacks.ModelCheckpoint)) for c in callbacks) == 1
    assert sum(isinstance(c, (EarlyStopping, pl_callbacks.EarlyStopping)) for c in callbacks) == 1
    import pytorch_lightning as pl

    assert all(isinstance(c, pl.Callback) for c in callbacks)  # tunecv's own are pytorch_lightning's too
