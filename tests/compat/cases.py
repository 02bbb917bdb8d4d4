"""The compatibility corpus: LightningCLI command lines whose ``fit --print_config`` is a config file here.

Each case: the arguments given to ``LightningCLI ... fit --print_config`` (by ``generate.py``), the
overrides both tools get on top of the generated file when the tests run them (LightningCLI's shorthand,
without ``init_args``), what must reach the model, and what tunecv needs in addition (a ``split:``
section where folds need one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "configs"

BORING = "lightning.pytorch.demos.boring_classes.BoringModel"
BORING_DATA = "lightning.pytorch.demos.boring_classes.BoringDataModule"
DEMO = "lightning.pytorch.demos.boring_classes.DemoModel"
VAL_LOSS = "tests.compat.models.ValLossModel"
TESTED = "tests.compat.models.TestedModel"
NET = "tests.compat.models.NetModel"
REGRESSION = "tests.compat.models.RandomRegression"

# tiny runs: one epoch of two batches, on one CPU
COMMON = [
    "--seed_everything", "7",
    "--trainer.accelerator", "cpu", "--trainer.devices", "1",
    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
    "--trainer.limit_test_batches", "2", "--trainer.num_sanity_val_steps", "0",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
]


@dataclass(frozen=True)
class Case:
    """One corpus entry."""

    name: str
    args: list[str]  # given to LightningCLI fit --print_config
    overrides: list[str] = field(default_factory=list)  # given to both tools at test time
    expect: dict[str, Any] = field(default_factory=dict)  # model attributes after the overrides
    expect_lr: float | None = None  # the optimizer's learning rate after the overrides
    tunecv_extra: dict[str, Any] = field(default_factory=dict)  # added for tunecv only (split:)

    @property
    def path(self) -> Path:
        return CONFIGS / f"{self.name}.yaml"


CASES = [
    Case("01_boring", ["--model", BORING, "--data", BORING_DATA]),
    Case("02_demo_no_test_step", ["--model", DEMO, "--model.out_dim", "4", "--model.learning_rate", "0.05",
                                  "--data", BORING_DATA],
         overrides=["--model.learning_rate", "0.07"], expect={"learning_rate": 0.07}, expect_lr=0.07),
    Case("03_boring_sgd", ["--model", BORING, "--data", BORING_DATA, "--optimizer", "SGD",
                           "--optimizer.lr", "0.05", "--optimizer.momentum", "0.9"],
         overrides=["--optimizer.lr", "0.2"], expect_lr=0.2),
    Case("04_boring_adam_steplr", ["--model", BORING, "--data", BORING_DATA, "--optimizer", "Adam",
                                   "--optimizer.lr", "0.003", "--lr_scheduler", "StepLR",
                                   "--lr_scheduler.step_size", "2", "--lr_scheduler.gamma", "0.5"],
         overrides=["--lr_scheduler.gamma", "0.25"], expect_lr=0.003),
    Case("05_val_loss", ["--model", VAL_LOSS, "--model.hidden", "4", "--data", REGRESSION],
         overrides=["--model.hidden", "16"], expect={"hidden": 16}, expect_lr=0.01),
    Case("06_val_loss_plateau", ["--model", VAL_LOSS, "--data", REGRESSION, "--optimizer", "AdamW",
                                 "--optimizer.lr", "0.02", "--lr_scheduler", "lightning.pytorch.cli.ReduceLROnPlateau",
                                 "--lr_scheduler.monitor", "val_loss", "--lr_scheduler.patience", "3"],
         overrides=["--lr_scheduler.factor", "0.5", "--model.lr", "0.5"], expect={"lr": 0.5}, expect_lr=0.02),
    Case("07_checkpoint_callback", ["--model", VAL_LOSS, "--data", REGRESSION,
                                    "--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.monitor", "val_loss",
                                    "--trainer.callbacks.mode", "min", "--trainer.callbacks.save_top_k", "2"]),
    Case("08_early_stopping_lr_monitor", ["--model", VAL_LOSS, "--data", REGRESSION,
                                          "--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor", "val_loss",
                                          "--trainer.callbacks.patience", "2",
                                          "--trainer.callbacks+=LearningRateMonitor",
                                          "--trainer.callbacks.logging_interval", "step"],
         overrides=["--model.hidden", "6"], expect={"hidden": 6}),
    Case("09_csv_logger", ["--model", VAL_LOSS, "--data", REGRESSION, "--trainer.logger+=CSVLogger",
                           "--trainer.logger.save_dir", "extra_logs", "--trainer.logger.name", "compat"]),
    Case("10_tested_model", ["--model", TESTED, "--data", REGRESSION, "--data.batch_size", "8"],
         overrides=["--data.batch_size", "32"]),
    Case("11_nested_net", ["--model", NET, "--model.net", "torch.nn.Linear", "--model.net.in_features", "32",
                           "--model.net.out_features", "3", "--model.scale", "0.5", "--optimizer", "SGD",
                           "--optimizer.lr", "0.01"],
         overrides=["--model.scale", "2.0", "--data", REGRESSION], expect={"scale": 2.0}, expect_lr=0.01),
    Case("12_digits_example", ["--model", "tunecv.examples.digits.DigitsClassifier", "--model.hidden_dim", "16",
                               "--data", "tunecv.examples.digits.DigitsDataModule", "--data.limit", "200",
                               "--data.batch_size", "32"],
         overrides=["--model.hidden_dim", "24", "--model.lr", "0.03"], expect={}, expect_lr=0.03,
         tunecv_extra={"split": {"fold_method": "stratified", "total_folds": 3, "stratify_column": "label"}}),
    Case("13_digits_adamw_cosine", ["--model", "tunecv.examples.digits.DigitsClassifier",
                                    "--data", "tunecv.examples.digits.DigitsDataModule", "--data.limit", "200",
                                    "--optimizer", "AdamW", "--optimizer.lr", "0.004", "--optimizer.weight_decay", "0.01",
                                    "--lr_scheduler", "CosineAnnealingLR", "--lr_scheduler.T_max", "10"],
         overrides=["--optimizer.weight_decay", "0.05"], expect_lr=0.004,
         tunecv_extra={"split": {"fold_method": "kfold", "total_folds": 3}}),
]
