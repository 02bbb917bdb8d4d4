"""TaskModule from YAML alone: real train, cv and tune fits of the configs in configs/plain/ on CPU."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from tunecv.cli import main
from tunecv.cv import cross_validate
from tunecv.errors import ConfigError
from tunecv.task import TaskModule
from tunecv.train import train
from tunecv.tune import tune

REPO = Path(__file__).resolve().parents[2]
PLAIN = REPO / "configs" / "plain"


def tiny(tmp_path: Path, file: str = "train.yaml", limit: int = 300, **extra) -> dict:
    """A config of configs/plain/ with tiny settings."""
    cfg = yaml.safe_load((PLAIN / file).read_text())
    cfg["artifact_dir"] = str(tmp_path / "artifacts")
    cfg["data"]["init_args"]["dataset"]["init_args"]["limit"] = limit
    cfg["trainer"] = {"max_epochs": 2, "enable_progress_bar": False, "enable_model_summary": False}
    cfg["accelerator"], cfg["devices"] = "cpu", [0]
    cfg.update(extra)
    return cfg


def test_plain_digits_trains_logs_by_name_and_checkpoint_loads_back(tmp_path):
    result = train(tiny(tmp_path))
    assert result.status == "completed"
    for stage in ("val", "test"):
        assert {f"{stage}/loss", f"{stage}/loss/digit", f"{stage}/digit/acc", f"{stage}/digit/f1"} <= set(result.metrics)
    assert result.metrics["val/loss"] == pytest.approx(result.metrics["val/loss/digit"])
    csv = pd.read_csv(result.run_dir / "csv" / "metrics.csv")
    assert {"train/loss/digit", "train/digit/acc", "val/digit/acc", "val/loss/digit"} <= set(csv.columns)

    model = TaskModule.load_from_checkpoint(result.checkpoint)
    assert model.hparams["net"]["class_path"] == "tunecv.examples.plain.MLP" and model.warmup_steps == 20
    from tunecv.datasets import DigitsDataset

    data = DigitsDataset(limit=300)
    model.eval()
    with torch.no_grad():
        digit = model(data.x)["digit"]
    assert digit.shape == (300, 10)
    assert (digit.argmax(1) == data.targets["digit"]).float().mean() > 0.3


def test_two_headed_net_with_a_regularizer_logs_every_term(tmp_path):
    result = train(tiny(tmp_path, "two_heads.yaml"))
    csv = pd.read_csv(result.run_dir / "csv" / "metrics.csv")
    for stage in ("train", "val", "test"):
        terms = [f"{stage}/loss/{name}" for name in ("digit", "ink", "logits")]
        metrics = [f"{stage}/digit/acc", f"{stage}/ink/MeanAbsoluteError", f"{stage}/ink/R2Score"]
        assert set(terms + metrics) <= set(csv.columns), sorted(csv.columns)
    last = csv.dropna(subset=["val/loss"]).iloc[-1]
    assert last["val/loss"] == pytest.approx(sum(last[f"val/loss/{n}"] for n in ("digit", "ink", "logits")),
                                             rel=1e-5)
    assert 0 < last["val/loss/logits"] < last["val/loss/ink"]  # weighted by 1e-3


def test_plain_digits_cross_validates_and_tunes(tmp_path):
    cfg = tiny(tmp_path, early_stopping=None, cv={"n_seeds": 1, "n_folds": 2,
                                                  "scoring_metric": ["val/digit/acc", "val/loss:lower"]})
    cfg["trainer"]["max_epochs"] = 1
    res = cross_validate(cfg, name="plain-cv", progress=False)
    assert res.n_completed == 2 and math.isfinite(res.score) and res.score > 0
    assert {"val/digit/acc", "val/loss/digit", "test/digit/f1"} <= set(res.run_infos.columns)

    cfg["cv"]["n_folds"] = 1
    cfg["tune"] = {"search_space": str(PLAIN / "space.yaml"), "n_trials": 2}
    out = tune(cfg, name="plain-tune", progress=False)
    assert out.n_finished == 2
    assert set(out.best_params) == {"model.init_args.lr", "model.init_args.weight_decay",
                                    "model.init_args.warmup_steps", "data.init_args.batch_size"}
    assert len(out.run_infos) == 2 and "val/digit/acc" in out.run_infos.columns


class LrRecorder(Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.lrs.append(optimizer.param_groups[0]["lr"])


def test_warmup_scales_the_configured_optimizer_and_scheduler(tmp_path):
    cfg = tiny(tmp_path, limit=200, early_stopping=None,
               split={"fold_method": "kfold", "total_folds": 2},
               optimizer={"class_path": "SGD", "init_args": {"lr": 0.1}},
               lr_scheduler={"class_path": "StepLR", "init_args": {"step_size": 1, "gamma": 0.5}})
    cfg["model"]["init_args"]["warmup_steps"] = 4
    cfg["data"]["init_args"]["batch_size"] = 10
    cfg["trainer"].update(max_epochs=2, limit_train_batches=3, num_sanity_val_steps=0)
    recorder = LrRecorder()
    train(cfg, callbacks=[recorder])
    scheduled = [0.1] * 3 + [0.05] * 3  # StepLR steps once per epoch, as LightningCLI configures it
    expected = [lr * min(1.0, (i + 1) / 4) for i, lr in enumerate(scheduled)]
    assert recorder.lrs == pytest.approx(expected)


def test_outputs_that_do_not_match_pred_names_stop_the_run_on_the_first_batch(tmp_path, capsys):
    cfg = tiny(tmp_path, "two_heads.yaml", limit=100)
    cfg["model"]["init_args"]["pred_names"] = ["digit"]
    cfg["model"]["init_args"]["losses"] = {"digit": {"class_path": "torch.nn.CrossEntropyLoss"}}
    cfg["model"]["init_args"]["metrics"] = None
    with pytest.raises(ConfigError, match=r"`model.init_args.net` returns 2 outputs but `model.init_args.pred_names` "
                                          r"lists 1: digit"):
        train(cfg)
    cfg["model"]["init_args"]["losses"] = {"digt": {"class_path": "torch.nn.CrossEntropyLoss"}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "`model.init_args.losses` has no entry for prediction 'digit'" in err and "\n" not in err


def test_cli_trains_the_plain_config(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "tunecv", "train", "--config", "configs/plain/train.yaml", "--trainer.max_epochs",
         "1", "--artifact_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
         "--data.init_args.dataset.init_args.limit", "300"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = (tmp_path / "_runs").iterdir()
    assert "val/digit/acc" in (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0]
