"""The jsonargparse parser of every config key (Lightning's sections as LightningCLI adds them), help lines."""

from __future__ import annotations

import functools
from typing import Any, Optional

from tunecv.config.schema import DICT_SECTIONS, FIT_KEYS, _executor_sections, _plain, config_keys
from tunecv.errors import ConfigError

_KEY_HELP = {
    "name": "name of the called level; generated when null",
    "artifact_dir": "root folder of every artifact",
    "cli": "the project's LightningCLI: a subclass (my_project.cli.MyCLI) or the entry point that calls it "
           "(main.py, my_project.main); its parser, links, default config files and imports apply",
    "seed_everything": "LightningCLI's seed: an int sets the run seed (as `seed`); false: no seeding",
    "model": "a LightningModule: {class_path, init_args}",
    "data": "a tunecv.data.SplitDataModule (or a LightningDataModule for train without folds)",
    "split": "test split and fold method",
    "trainer": "any lightning.Trainer argument",
    "optimizer": "LightningCLI-style optimizer for models that leave configure_optimizers to the config",
    "lr_scheduler": "LightningCLI-style learning-rate scheduler",
    "ckpt_path": "as LightningCLI fit: start the run from this checkpoint",
    "weights_only": "as LightningCLI fit: load ckpt_path with torch.load(weights_only=...)",
    "accelerator": "forwarded to the Trainer (cpu, gpu, mps, auto)",
    "strategy": "any Lightning strategy, or cv-parallel / tune-parallel",
    "devices": "a list of device ids, e.g. [0, 2, 5, 6], or a count (2) as in Lightning",
    "num_nodes": "nodes of one run (Lightning multi-node DDP)",
    "runs_per_device": "with cv-parallel / tune-parallel: how many runs share one device",
    "fold": "train only: the fold to train (cv and tune set it)",
    "seed": "train only: the seed (cv and tune set it)",
    "early_stopping": "EarlyStopping settings; off unless given",
    "checkpoint": "ModelCheckpoint settings; null keeps only the last checkpoint",
    "logging": "wandb project/entity and log interval",
    "cv": "cross-validation settings",
    "tune": "hyperparameter-search settings",
    "nested": "nested cv (tunecv nested): the outer folds' fold_method, total_folds and n_folds (run the first n)",
    "executor": "where runs execute: local (this machine), slurm, ... (options in the section of that name)",
}


def _key_help(name: str) -> str:
    """The help line of a top-level key: an executor's section says it from its dataclass's docstring."""
    if name in _KEY_HELP:
        return _KEY_HELP[name]
    section = _executor_sections().get(name)
    doc = (section.__doc__ or "").strip().splitlines() if section is not None else []
    return doc[0] if doc else ""


def build_parser(prog: str = "tunecv", description: Optional[str] = None, light: bool = False) -> Any:
    """The jsonargparse parser of every config key (built again when an executor with a section is registered)."""
    return _build_parser(prog, description, light, tuple(_executor_sections().items()))


@functools.lru_cache(maxsize=4)
def _build_parser(prog: str, description: Optional[str], light: bool, sections: tuple) -> Any:
    """The jsonargparse parser of every config key.

    ``model``, ``data``, ``trainer``, ``optimizer`` and ``lr_scheduler`` are added as LightningCLI adds them
    (``LightningArgumentParser``), every other :class:`Config` field with the type of its annotation.
    ``light=True`` gives the same keys without importing lightning (the sections become plain mappings):
    for ``--help``, which must stay fast.
    """
    from jsonargparse import (  # lazy: heavy; importing tunecv.config stays light
        ActionConfigFile,
        ArgumentParser,
    )

    # allow_abbrev=False: `--cv.n_seed 2` is an unknown key, not `--cv.n_seeds` (argparse's prefix match)
    kwargs: dict[str, Any] = {"prog": prog, "exit_on_error": False, "default_meta": False,
                              "parser_mode": "omegaconf", "print_config": None, "allow_abbrev": False}
    if light:
        parser = ArgumentParser(description=description, **kwargs)
    else:
        from lightning.pytorch.cli import (
            LightningArgumentParser,  # lazy: heavy; importing tunecv.config stays light
        )

        parser = LightningArgumentParser(description=description or "tunecv", **kwargs)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML config (repeatable, later wins)")
    for name, (tp, default) in config_keys().items():
        if not light and name in DICT_SECTIONS:
            _add_lightning_section(parser, name)
            continue
        parser.add_argument(f"--{name}", type=tp, default=default, help=_key_help(name))
    return parser


def add_tunecv_keys(parser: Any) -> None:
    """Add tunecv's own keys to a project's LightningCLI parser (``cli``): every key it does not have yet.

    ``model``, ``data``, ``trainer``, ``optimizer``, ``lr_scheduler`` and ``seed_everything`` stay the
    project's. A top-level key that the project adds itself and tunecv also uses is an error.
    """
    have = {str(a.dest).split(".")[0] for a in parser._actions if getattr(a, "dest", None)}
    for name, (tp, default) in config_keys().items():
        if name in have:
            if name in DICT_SECTIONS or name == "seed_everything" or name in FIT_KEYS:
                continue  # the project's (LightningCLI's) own keys, with their meaning
            raise ConfigError(f"`cli`: the project's parser adds a top-level key `{name}` that tunecv uses "
                              f"itself ({_key_help(name)}); rename it in add_arguments_to_parser")
        if name in DICT_SECTIONS:
            continue  # the project's CLI left it out (auto_configure_optimizers=False): not tunecv's to add
        parser.add_argument(f"--{name}", type=tp, default=default, help=_key_help(name))


def _add_lightning_section(parser: Any, name: str) -> None:
    """One section as ``LightningCLI`` adds it (``_add_arguments`` / ``add_core_arguments_to_parser``)."""
    import lightning as L  # lazy: heavy; importing tunecv.config stays light
    from lightning.pytorch.cli import LRSchedulerTypeTuple
    from torch.optim import Optimizer

    if name == "trainer":
        parser.add_lightning_class_args(L.Trainer, "trainer")
    elif name == "model":
        parser.add_lightning_class_args(L.LightningModule, "model", subclass_mode=True, required=False)
    elif name == "data":
        parser.add_lightning_class_args(L.LightningDataModule, "data", subclass_mode=True, required=False)
    elif name == "optimizer":
        parser.add_optimizer_args((Optimizer,))
    elif name == "lr_scheduler":
        parser.add_lr_scheduler_args(LRSchedulerTypeTuple)


@functools.lru_cache(maxsize=1)
def _trainer_defaults() -> dict[str, Any]:
    return _plain(build_parser().get_defaults().trainer.as_dict())
