"""The train level through the CLI and the Python API: real Lightning fits on CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ext_cfg, tiny_digits
from tunecv.cli import main
from tunecv.train import read_result, train


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def run_dirs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "artifacts" / "_runs").iterdir())


def test_cli_trains_digits_into_the_design_layout(tmp_path, capsys):
    cfg = write(tmp_path / "train.yaml", tiny_digits(tmp_path))
    assert main(["train", "--config", str(cfg), "--name", "first"]) == 0
    (folder,) = run_dirs(tmp_path)
    name, run_id = folder.name.rsplit("-", 1)
    assert name == "first" and len(run_id) == 8 and run_id.isalnum() and run_id.islower() | run_id.isdigit()
    assert (folder / "config.yaml").is_file()
    assert (folder / "csv" / "metrics.csv").is_file()
    ckpts = {p.name for p in (folder / "checkpoints").iterdir()}
    assert "last.ckpt" in ckpts and any(c.startswith("best-") for c in ckpts)
    saved = yaml.safe_load((folder / "config.yaml").read_text())
    assert saved["name"] == "first" and saved["model"]["init_args"]["hidden_dim"] == 16
    result = read_result(folder)
    assert result.status == "completed"
    assert {"val/loss", "val/acc", "test/loss", "test/acc"} <= set(result.metrics)
    assert "first" in capsys.readouterr().out


def test_python_api_returns_result_and_generated_name(tmp_path):
    result = train(tiny_digits(tmp_path, split={"fold_method": "kfold", "total_folds": 3}))
    assert result.status == "completed"
    assert result.run_dir.parent == tmp_path / "artifacts" / "_runs"
    assert result.run_dir.name == f"{result.name}-{result.run_id}"
    assert Path(result.checkpoint).is_file()
    assert "test/acc" not in result.metrics  # no test split: no test
    assert 0.0 <= result.metrics["val/acc"] <= 1.0


def test_existing_name_needs_resume_or_reset(tmp_path, capsys):
    cfg = write(tmp_path / "train.yaml", tiny_digits(tmp_path, name="same"))
    assert main(["train", "--config", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["train", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--resume" in err and "--reset" in err and err.count("\n") == 0
    assert main(["train", "--config", str(cfg), "--resume", "--reset"]) == 2
    assert "exclude" in capsys.readouterr().err
    (before,) = run_dirs(tmp_path)
    assert main(["train", "--config", str(cfg), "--reset"]) == 0
    (after,) = run_dirs(tmp_path)
    assert after != before and not before.exists()


def test_resume_with_nothing_to_resume_is_an_error(tmp_path, capsys):
    cfg = write(tmp_path / "train.yaml", tiny_digits(tmp_path, name="ghost"))
    assert main(["train", "--config", str(cfg), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert not (tmp_path / "artifacts").exists()


def test_resume_continues_an_interrupted_fit_from_last_checkpoint(tmp_path):
    cfg = tiny_digits(tmp_path, name="interrupted", early_stopping=None)
    cfg["trainer"]["max_epochs"] = 2
    first = train(cfg)
    # simulate an interruption: the run never recorded its result, and more epochs are asked for
    (first.run_dir / "run_info.json").unlink()
    cfg["trainer"]["max_epochs"] = 4
    second = train(cfg, resume=True)
    assert second.run_dir == first.run_dir
    lines = (first.run_dir / "csv" / "metrics.csv").read_text().splitlines()
    epochs = {json.loads(x) for x in [ln.split(",")[0] for ln in lines[1:]] if x}
    assert 3 in epochs and min(epochs) >= 2  # epochs from 2 on only: it continued, not restarted
    assert (first.run_dir / "csv" / "metrics.1.csv").is_file()  # the first attempt's metrics are kept


def test_resume_of_a_completed_run_returns_it(tmp_path):
    cfg = tiny_digits(tmp_path, name="done")
    first = train(cfg)
    again = train(cfg, resume=True)
    assert again.run_id == first.run_id and again.metrics == first.metrics


def test_lightningcli_form_config_with_external_model(tmp_path, external_pkg):
    """model/data/trainer sections as LightningCLI writes them, trainer.accelerator/devices included."""
    cfg = {
        "artifact_dir": str(tmp_path / "artifacts"),
        "model": {"class_path": "extmodels.NoOptNet", "init_args": {"hidden": 8}},
        "data": {"class_path": "extmodels.PlainData", "init_args": {"batch_size": 16}},
        "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": 2, "enable_progress_bar": False,
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.LearningRateMonitor"}]},
        "optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.01}},
        "lr_scheduler": {"class_path": "torch.optim.lr_scheduler.StepLR", "init_args": {"step_size": 1}},
    }
    path = write(tmp_path / "lcli.yaml", cfg)
    out = subprocess.run([sys.executable, "-m", "tunecv", "train", "--config", str(path), "--name", "ext"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    (folder,) = run_dirs(tmp_path)
    header = (folder / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "lr-Adam" in header  # the callback from trainer.callbacks ran; the optimizer came from the config
    assert read_result(folder).metrics["val/acc"] >= 0


def test_overrides_and_print_config(tmp_path, capsys):
    cfg = write(tmp_path / "train.yaml", tiny_digits(tmp_path))
    extra = write(tmp_path / "more.yaml", {"seed": 7})
    code = main(["train", "--config", str(cfg), "--config", str(extra), "--model.init_args.lr", "0.5",
                 "--devices", "[0]", "--print_config"])
    assert code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_args"]["lr"] == 0.5 and printed["seed"] == 7
    assert not (tmp_path / "artifacts").exists()


def test_composed_config_and_env_interpolation(tmp_path, capsys, monkeypatch):
    base = tiny_digits(tmp_path)
    write(tmp_path / "model.yaml", base.pop("model"))
    base["model"] = "model.yaml"
    base["trainer"]["max_epochs"] = "${oc.env:TUNECV_TEST_EPOCHS,1}"
    monkeypatch.setenv("TUNECV_TEST_EPOCHS", "3")
    cfg = write(tmp_path / "train.yaml", base)
    assert main(["train", "--config", str(cfg), "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "tunecv.examples.digits.DigitsClassifier"
    assert printed["trainer"]["max_epochs"] == 3


def test_help_is_fast_and_light():
    code = ("import sys, tunecv.cli as c; c.main(['--help']); c.main(['train', '--help']);"
            "heavy = [m for m in ('torch', 'lightning', 'optuna', 'wandb') if m in sys.modules];"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


BAD = [
    ({"foo": 1}, "foo"),
    ({"split": {"fold_method": "regoin"}}, "split.fold_method"),
    ({"split": {"test_split": "everything"}}, "split.test_split"),
    ({"split": {"test_split": "random", "test_split_by": ["north"]}}, "split.test_split_by"),
    ({"split": {"fold_method": "region", "group_column": "nope", "total_folds": 3}}, "split.group_column"),
    ({"split": {"fold_method": "kfold", "total_folds": 5000}}, "total_folds"),
    ({"split": {"fold_method": "kfold", "total_folds": 3}, "fold": 3}, "fold"),
    ({"devices": []}, "devices"),
    ({"name": "a/b"}, "name"),
    ({"name": ".."}, "name"),
    ({"model": {"class_path": "nowhere.Model"}}, "model.class_path"),
    ({"model": {"class_path": "tunecv.examples.digits.DigitsClassifier", "init_args": {"nope": 1}}}, "model"),
]


@pytest.mark.parametrize(("change", "key"), BAD, ids=[k for _, k in BAD])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, change, key):
    cfg = tiny_digits(tmp_path)
    for k, v in change.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict) and k != "model":
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    if "test_split" in change.get("split", {}):
        cfg["split"].pop("test_split_by", None) if change["split"].get("test_split") == "everything" else None
    path = write(tmp_path / "bad.yaml", cfg)
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tunecv: error:") and "\n" not in err and "Traceback" not in err
    assert key in err, err
    assert not (tmp_path / "artifacts").exists()


def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path, capsys):
    path = write(tmp_path / "bad.yaml", tiny_digits(tmp_path, devices=[]))
    assert main(["train", "--config", str(path), "--debug"]) == 2  # a user error stays exit 2 (issue 29)
    err = capsys.readouterr().err
    assert "Traceback" in err and "devices" in err.strip().splitlines()[-1]


def test_cli_subprocess_exit_code_and_single_line(tmp_path):
    path = write(tmp_path / "bad.yaml", tiny_digits(tmp_path, split={"fold_method": "regoin"}))
    out = subprocess.run([sys.executable, "-m", "tunecv", "train", "--config", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "split.fold_method" in out.stderr
    assert "kfold" in out.stderr and "regoin" in out.stderr


def test_external_model_with_region_folds_through_cli(tmp_path, external_pkg):
    cfg = ext_cfg(tmp_path, split={"fold_method": "region", "total_folds": 3, "group_column": "region"},
                  fold=2, name="ext-region")
    path = write(tmp_path / "ext.yaml", cfg)
    assert main(["train", "--config", str(path)]) == 0
    (folder,) = run_dirs(tmp_path)
    assert read_result(folder).fold == 2
