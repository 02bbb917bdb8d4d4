"""The compatibility corpus: configs written by LightningCLI itself run under ``tunecv train`` unchanged.

Each file in ``configs/`` is what ``LightningCLI ... fit --print_config`` printed (``generate.py``). Each
runs twice, with the same shorthand overrides on top: under ``LightningCLI fit`` and under
``tunecv train``; a probe callback records what the run was built from (model class and
hyperparameters, optimizer and its arguments, schedulers, user callbacks and loggers, trainer limits),
and both records must be the same.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import yaml

from tests.compat.cases import CASES, Case
from tests.compat.generate import print_config
from tunecv.config import parse_command
from tunecv.train import train

# the keys of `LightningCLI ... fit`: what a LightningCLI config may hold
LIGHTNING_KEYS = ("seed_everything", "trainer", "model", "data", "optimizer", "lr_scheduler", "ckpt_path",
                  "weights_only")
_ATTRS = ("monitor", "mode", "save_top_k", "patience", "min_delta", "logging_interval", "every_n_epochs",
          "check_finite", "strict", "name")


def _simple(value: Any) -> bool:
    return isinstance(value, (int, float, bool, str, type(None)))


def _init_attrs(obj: Any, names: Any = None) -> dict[str, Any]:
    """The init arguments of ``obj`` it keeps as attributes of the same name (simple values only)."""
    if names is None:
        names = [p for p in inspect.signature(type(obj).__init__).parameters if p != "self"]
    return {n: getattr(obj, n) for n in names if hasattr(obj, n) and _simple(getattr(obj, n))}


class Probe(L.Callback):
    """Records what the run was built from, at the end of training."""

    def __init__(self, user_callbacks: tuple[str, ...] = (), user_loggers: tuple[str, ...] = ()) -> None:
        self.user_callbacks = user_callbacks
        self.user_loggers = user_loggers
        self.snapshot: dict[str, Any] | None = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        opt = trainer.optimizers[0]
        self.snapshot = {
            "model": f"{type(pl_module).__module__}.{type(pl_module).__qualname__}",
            "model_attrs": _init_attrs(pl_module),
            # LightningCLI also records its instantiator (_class_path, _instantiator) in the hparams
            "hparams": {k: v for k, v in dict(pl_module.hparams).items() if _simple(v) and not k.startswith("_")},
            "optimizer": type(opt).__qualname__,
            "optimizer_args": {k: v for k, v in opt.defaults.items() if _simple(v)},
            "schedulers": [(type(c.scheduler).__qualname__, c.monitor, c.interval, c.frequency,
                            _init_attrs(c.scheduler)) for c in trainer.lr_scheduler_configs],
            "callbacks": sorted((type(cb).__qualname__, sorted(_init_attrs(cb, _ATTRS).items()))
                                for cb in trainer.callbacks
                                if f"{type(cb).__module__}.{type(cb).__qualname__}" in self.user_callbacks),
            "loggers": sorted((type(lg).__qualname__, lg.name) for lg in trainer.loggers
                              if f"{type(lg).__module__}.{type(lg).__qualname__}" in self.user_loggers),
            "trainer": {k: getattr(trainer, k) for k in ("max_epochs", "limit_train_batches", "limit_val_batches",
                                                         "num_sanity_val_steps", "num_devices")},
            "n_checkpoint_callbacks": len(trainer.checkpoint_callbacks),
            "n_early_stopping": len(trainer.early_stopping_callbacks),
        }


def _class_paths(specs: Any) -> tuple[str, ...]:
    if isinstance(specs, dict):
        specs = [specs]
    return tuple(s["class_path"] for s in specs or [] if isinstance(s, dict))


def _probe(case: Case) -> Probe:
    data = yaml.safe_load(case.path.read_text())
    return Probe(_class_paths(data["trainer"].get("callbacks")), _class_paths(data["trainer"].get("logger")))


def run_lightning_cli(case: Case) -> tuple[Any, Probe]:
    from lightning.pytorch.cli import LightningCLI

    probe = _probe(case)
    cli = LightningCLI(args=["fit", "--config", str(case.path), *case.overrides],
                       trainer_defaults={"callbacks": [probe]}, save_config_kwargs={"overwrite": True})
    return cli, probe


def run_tunecv(case: Case, tmp_path: Path) -> tuple[Any, Any, Probe]:
    probe = _probe(case)
    extra = ["--config", yaml.safe_dump(case.tunecv_extra)] if case.tunecv_extra else []
    parsed = parse_command(["--config", str(case.path), *extra, *case.overrides,
                            "--artifact_dir", str(tmp_path / "artifacts"), "--name", case.name[3:].replace("_", "-")])
    result = train(parsed.config, callbacks=[probe], progress_bar=False)
    return parsed.config, result, probe


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["lightning"])  # LightningCLI(args=...) warns about pytest's own argv
    monkeypatch.chdir(tmp_path)  # LightningCLI writes lightning_logs/ and the CSV logger extra_logs/ here


def test_the_corpus_is_large_enough_and_covers_the_habits():
    assert len(CASES) >= 12
    text = {c.name: c.path.read_text() for c in CASES}
    assert any("ModelCheckpoint" in t for t in text.values()) and any("EarlyStopping" in t for t in text.values())
    assert any("CSVLogger" in t for t in text.values())
    assert any("ReduceLROnPlateau" in t and "monitor: val_loss" in t for t in text.values())
    assert any("lr_scheduler:\n  class_path" in t for t in text.values())
    assert any(c.overrides and "init_args" not in " ".join(c.overrides) for c in CASES)


def test_every_top_level_key_lightning_cli_fit_prints_is_a_config_key():
    import dataclasses

    from tunecv.config import Config

    printed = set().union(*(yaml.safe_load(c.path.read_text()) for c in CASES))
    assert printed == set(LIGHTNING_KEYS)
    assert printed <= {f.name for f in dataclasses.fields(Config)}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_config_is_what_lightning_cli_prints(case):
    """The committed file is LightningCLI's own output (regenerate with ``python -m tests.compat.generate``).

    Compared as YAML, and only with the Lightning version that wrote it (its first line): another version
    may print other Trainer arguments, and the files stay valid configs for the runs below.
    """
    committed = case.path.read_text()
    header = committed.splitlines()[0]
    if header != f"# lightning.pytorch=={L.__version__}":
        pytest.skip(f"{case.path.name} was generated by {header[2:]}; lightning.pytorch {L.__version__} is installed")
    assert yaml.safe_load(committed) == yaml.safe_load(print_config(case)), (
        f"{case.path.name} is stale: run python -m tests.compat.generate")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_tunecv_train_builds_the_run_lightning_cli_builds(case, tmp_path):
    cli, lcli_probe = run_lightning_cli(case)
    cfg, result, probe = run_tunecv(case, tmp_path)
    assert result.status == "completed", result.error
    assert result.error is None  # no test phase failure either (models without test_step skip it)
    lcli, ours = lcli_probe.snapshot, probe.snapshot
    assert lcli is not None and ours is not None
    n_checkpoints, n_stopping = ours.pop("n_checkpoint_callbacks"), ours.pop("n_early_stopping")
    lcli.pop("n_checkpoint_callbacks")
    assert n_checkpoints == 1, "tunecv added a second ModelCheckpoint"
    assert n_stopping == lcli.pop("n_early_stopping")
    assert ours == lcli
    # the same hyperparameters reached the model: the parsed init_args are equal, and the overrides hold
    lcli_args = cli.config.fit.model.get("init_args")
    assert cfg.model.get("init_args", {}) == (lcli_args.as_dict() if lcli_args else {})
    for attr, value in case.expect.items():
        assert getattr(cli.model, attr) == value and ours["model_attrs"][attr] == value, attr
    if case.expect_lr is not None:
        assert ours["optimizer_args"]["lr"] == pytest.approx(case.expect_lr)
    assert cfg.seed == cli.config.fit.seed_everything == 7


def test_a_model_without_test_step_and_a_test_loader_completes_without_testing(tmp_path):
    case = next(c for c in CASES if c.name == "02_demo_no_test_step")
    _, result, _ = run_tunecv(case, tmp_path)
    assert result.status == "completed" and result.error is None
    assert not any(k.startswith("test") for k in result.metrics)


def test_a_model_with_test_step_is_tested(tmp_path):
    case = next(c for c in CASES if c.name == "10_tested_model")
    _, result, _ = run_tunecv(case, tmp_path)
    assert "test_loss" in result.metrics


@pytest.mark.parametrize("name", ["06_val_loss_plateau", "08_early_stopping_lr_monitor"])
def test_tunecv_print_config_minus_its_own_sections_is_accepted_by_lightning_cli_fit(name, tmp_path, capsys):
    from lightning.pytorch.cli import LightningCLI

    from tunecv.cli import main

    case = next(c for c in CASES if c.name == name)
    assert main(["train", "--config", str(case.path), *case.overrides, "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    lightning_only = {k: v for k, v in printed.items() if k in LIGHTNING_KEYS}
    assert set(printed) - set(lightning_only), "tunecv's own sections are printed too"
    path = tmp_path / "from_tunecv.yaml"
    path.write_text(yaml.safe_dump(lightning_only, sort_keys=False))
    probe = _probe(case)
    cli = LightningCLI(args=["fit", "--config", str(path)], trainer_defaults={"callbacks": [probe]},
                       save_config_kwargs={"overwrite": True})
    assert cli.config.fit.model.init_args.as_dict() == printed["model"]["init_args"]
    assert cli.config.fit.seed_everything == printed["seed_everything"] == 7
    sched = cli.config.fit.lr_scheduler
    assert (sched.as_dict() if sched else None) == printed["lr_scheduler"]
    _, lcli_probe = run_lightning_cli(case)
    assert probe.snapshot == lcli_probe.snapshot  # the printed config builds the same run as the original
