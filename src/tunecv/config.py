"""The one config that drives ``train``, ``cv`` and ``tune``.

Configs are frozen dataclasses: :class:`Config` is the schema. The command line and config files are
parsed by jsonargparse the way LightningCLI parses them (it *is* LightningCLI's parser,
:class:`lightning.pytorch.cli.LightningArgumentParser`): ``--config`` (repeatable, later wins), dotted
overrides, class_path shorthand (``--model.hidden 16``, ``--optimizer Adam``), omegaconf interpolation
(``${oc.env:VAR,default}``), and typed validation. ``model``, ``data``, ``trainer``, ``optimizer``,
``lr_scheduler``, ``seed_everything``, ``ckpt_path`` (every key of ``LightningCLI ... fit``) get
Lightning's own types; every other field of :class:`Config` gets the type of its annotation, so a field
added to a dataclass here is a config key without more code.

A parse error becomes one line that names the full dotted key, the constraint, the value and the valid
options. The key is found by bisecting the input (which ``--config`` file or override, then which key
inside it), the constraint from the key's type annotation: never from jsonargparse's wording.

Importing this module is light (no torch, no lightning); parsing imports lightning.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import inspect
import json
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from tunecv.aggregations import aggregation
from tunecv.errors import ConfigError, Interrupted, one_of
from tunecv.folds import FOLD_METHODS, fold_method
from tunecv.trackers import TRACKERS

__all__ = [
    "CVConfig",
    "CheckpointConfig",
    "Config",
    "EarlyStoppingConfig",
    "LoggingConfig",
    "NestedConfig",
    "ParsedCommand",
    "SplitConfig",
    "TuneConfig",
    "check_key",
    "config_from_dict",
    "get_key",
    "load_config",
    "parse_command",
    "set_key",
]

# Each list of valid options exists once: as a Literal type; the tuples are derived from it.
TestSplit = Literal["none", "random", "region", "sample"]
SamplerName = Literal["tpe", "random", "grid", "cmaes", "qmc", "gp", "nsga2"]
PrunerName = Literal["none", "median", "wilcoxon", "hyperband", "percentile", "successive_halving"]
ParallelStrategy = Literal["cv-parallel", "tune-parallel"]
Mode = Literal["min", "max"]

TEST_SPLITS: tuple[str, ...] = typing.get_args(TestSplit)
SAMPLERS: tuple[str, ...] = typing.get_args(SamplerName)
PRUNERS: tuple[str, ...] = typing.get_args(PrunerName)
PARALLEL_STRATEGIES: tuple[str, ...] = typing.get_args(ParallelStrategy)

# Sections given as LightningCLI {class_path, init_args} specs or Trainer arguments.
DICT_SECTIONS = ("model", "data", "trainer", "optimizer", "lr_scheduler")
# Sections of class specs whose init arguments LightningCLI's shorthand reaches (--model.hidden 16).
CLASS_SECTIONS = ("model", "data", "optimizer", "lr_scheduler")
# Top-level keys that win over the same keys under ``trainer:`` when set to a non-default value.
DEVICE_KEYS = ("accelerator", "strategy", "devices", "num_nodes")
# Keys of ``LightningCLI ... fit`` that are arguments of ``Trainer.fit`` (added from its signature there).
FIT_KEYS = ("ckpt_path", "weights_only")
# Command flags (not config keys).
FLAGS = ("print_config", "resume", "reset", "dry_run", "quiet", "debug", "verbose")


@dataclass(frozen=True)
class SplitConfig:
    """How samples are split into test, train and validation sets."""

    test_split: TestSplit = "none"
    test_split_by: Optional[list[Union[float, int, str]]] = None
    fold_method: str = "kfold"  # a registered fold method (tunecv.folds) or a class path
    total_folds: int = 5
    group_column: str = "region"
    stratify_column: Optional[str] = None
    # For a plain LightningDataModule (no metadata of its own): where each fit sample's label / group is.
    # A method or attribute of the data module, an attribute of its pooled dataset, or a dotted function.
    labels: Optional[str] = None
    groups: Optional[str] = None


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Lightning ``EarlyStopping`` settings (off unless this section is given).

    ``monitor``/``mode`` default to the first ``cv.scoring_metric`` and its direction.
    """

    monitor: Optional[str] = None
    mode: Optional[Mode] = None
    patience: int = 5
    min_delta: float = 0.0


@dataclass(frozen=True)
class CheckpointConfig:
    """Lightning ``ModelCheckpoint`` settings (a ``last`` checkpoint is always kept for resuming).

    ``monitor``/``mode`` default to the first ``cv.scoring_metric`` and its direction when the model logs
    it; otherwise the last epoch's checkpoint is kept, as Lightning does.
    """

    monitor: Optional[str] = None
    mode: Optional[Mode] = None
    save_top_k: int = 1


@dataclass(frozen=True)
class LoggingConfig:
    """Where runs are logged: by each tracker of ``trackers`` (:mod:`tunecv.trackers`); CSV metrics, and wandb
    when a project is set."""

    wandb_project: Optional[str] = None
    wandb_entity: Optional[str] = None
    log_every_n_steps: int = 10
    trackers: list[str] = field(default_factory=lambda: ["csv", "wandb"])


@dataclass(frozen=True)
class CVConfig:
    """Cross-validation settings."""

    n_folds: Optional[int] = None
    n_seeds: int = 3
    scoring_metric: list[str] = field(default_factory=lambda: ["val/loss:lower"])
    multi_score_strategy: str = "harmonic"  # a registered aggregation (tunecv.aggregations) or a class path


@dataclass(frozen=True)
class TuneConfig:
    """Hyperparameter-search settings."""

    search_space: Optional[str] = None
    n_trials: Union[int, Literal["grid"]] = 100
    sampler: SamplerName = "tpe"
    pruner: PrunerName = "none"
    storage: Optional[str] = None
    retrain_and_test: bool = False
    seed: Optional[int] = None
    objectives: Optional[list[str]] = None
    timeout: Optional[float] = None
    max_runs: Optional[int] = None
    warm_start: Optional[Union[str, list[dict]]] = None
    warm_start_top_k: int = 5
    worker_id: Optional[str] = None
    heartbeat_grace: float = 120.0
    constraints: Optional[list[str]] = None
    # in-run pruning and the convergence stop (tunecv.pruning, tunecv.terminator)
    run_pruner: Optional[Literal["none", "hyperband", "successive_halving", "median"]] = None
    rung_min_epochs: int = 1
    rung_reduction_factor: int = 3
    stop_when: Optional[Literal["converged"]] = None
    stop_min_trials: int = 20


@dataclass(frozen=True)
class NestedConfig:
    """Outer folds of ``tunecv nested``: each a whole tune on the rest, tested on the held-out fold."""

    fold_method: str = "kfold"
    total_folds: int = 5
    n_folds: Optional[int] = None


@dataclass(frozen=True)
class Config:
    """Everything one command needs. See ``docs/`` for the meaning of each key."""

    name: Optional[str] = None
    artifact_dir: str = "artifacts"
    cli: Optional[str] = None
    seed_everything: Union[bool, int] = True
    model: Optional[dict] = None
    data: Optional[dict] = None
    split: SplitConfig = field(default_factory=SplitConfig)
    trainer: dict = field(default_factory=dict)
    optimizer: Optional[dict] = None
    lr_scheduler: Optional[dict] = None
    ckpt_path: Optional[str] = None
    weights_only: Optional[bool] = None
    accelerator: str = "auto"
    strategy: str = "auto"
    devices: Union[list[Union[int, str]], int, str] = field(default_factory=lambda: ["auto"])
    num_nodes: int = 1
    runs_per_device: int = 1
    fold: int = 0
    seed: int = 42
    early_stopping: Optional[EarlyStoppingConfig] = None
    checkpoint: Optional[CheckpointConfig] = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    cv: CVConfig = field(default_factory=CVConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    nested: NestedConfig = field(default_factory=NestedConfig)
    executor: str = "local"
    # The executors' own sections (``local:``, ``slurm:``, ``ray:``, a registered executor's), each a key of
    # its own named after its executor and read as ``cfg.<name>``; their dataclasses come from the executor
    # registry (tunecv.executors), so this schema names no executor. A section left out has its defaults.
    sections: dict = field(default_factory=dict, repr=False, metadata={"key": False})
    # Top-level keys that the project's own CLI (``cli``) adds (``add_arguments_to_parser``): kept as they
    # were parsed and written at top level again (not a key of its own).
    extra: dict = field(default_factory=dict, repr=False, metadata={"key": False})

    def __getattr__(self, name: str) -> Any:
        """``cfg.slurm``: an executor's section (its defaults when the config does not set it)."""
        if name.startswith("_"):
            raise AttributeError(name)
        sections = self.__dict__.get("sections") or {}
        if name in sections:
            return sections[name]
        kinds = _executor_sections()
        if name in kinds:
            return kinds[name]()
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- derived views -------------------------------------------------------------------------------
    def device_setting(self, key: str) -> Any:
        """The effective ``accelerator``/``strategy``/``devices``/``num_nodes``.

        A top-level key wins over ``trainer.<key>`` unless it still has its default value.
        """
        top = getattr(self, key)
        default = _DEFAULTS[key]
        if top == default and key in (self.trainer or {}):
            return self.trainer[key]
        return top

    def monitor(self) -> tuple[str, Mode]:
        """The default monitor: the first ``cv.scoring_metric`` and its direction (``min`` for ``:lower``)."""
        metric = self.cv.scoring_metric[0]
        name, _, direction = metric.rpartition(":") if ":" in metric else (metric, "", "higher")
        return name, ("min" if direction == "lower" else "max")

    def to_dict(self) -> dict:
        """The config as plain nested dicts and lists (what ``config.yaml`` holds)."""
        data = _plain(dataclasses.asdict(self))
        extra = data.pop("extra", None) or {}
        data.pop("sections", None)
        out: dict[str, Any] = {}
        for key, value in data.items():
            out[key] = value
            if key == "executor":  # the executors' sections follow the executor key
                out.update({name: _plain(dataclasses.asdict(getattr(self, name))) for name in _executor_sections()})
        return {**out, **extra}

    def replace(self, **changes: Any) -> Config:
        """A changed copy (``dataclasses.replace``), validated again.

        Keys may be dotted (``split.fold_method``); a key inside a free-form section (``model.init_args.lr``)
        goes through the full parser, any other through ``dataclasses.replace``.
        """
        cfg: Config = self
        for key, value in changes.items():
            top, _, rest = key.partition(".")
            section = getattr(cfg, top, None) if top in _DEFAULTS else None
            if top in _executor_sections():
                cfg = _with_section(cfg, top, value, rest)
            elif not rest and top in _DEFAULTS and top not in DICT_SECTIONS and not dataclasses.is_dataclass(section):
                cfg = dataclasses.replace(cfg, **{top: value})
                if top == "seed" and cfg.seed_everything is not False:
                    cfg = dataclasses.replace(cfg, seed_everything=value)  # one seed, written twice
            elif rest and "." not in rest and dataclasses.is_dataclass(section) and \
                    rest in {f.name for f in dataclasses.fields(section)}:
                cfg = dataclasses.replace(cfg, **{top: dataclasses.replace(section, **{rest: value})})
            else:
                cfg = set_key(cfg, key, value)
        validate(cfg)
        return cfg


_dataclass_init = Config.__init__


def _config_init(self: Config, *args: Any, sections: Optional[dict] = None, **kwargs: Any) -> None:
    """``Config(slurm=SlurmConfig(...))``: an executor's section given by its key goes into ``sections``."""
    kinds = _executor_sections()
    given = {name: kwargs.pop(name) for name in list(kwargs) if name in kinds}
    _dataclass_init(self, *args, sections={**(sections or {}), **given}, **kwargs)


Config.__init__ = _config_init  # type: ignore[method-assign]


def config_fields() -> list[dataclasses.Field]:
    """The fields of :class:`Config` that are config keys (``extra`` and ``sections`` are not: the executors'
    sections are keys of their own, :func:`config_keys`)."""
    return [f for f in dataclasses.fields(Config) if f.metadata.get("key", True)]


def _executor_sections() -> dict[str, type]:
    """``name -> dataclass`` of each registered executor's section (the registry is read at each call: an
    executor registered later brings its section)."""
    from tunecv.executors import executor_sections  # lazy: the pool modules load only when a config is read

    return executor_sections()


def config_keys() -> dict[str, tuple[Any, Any]]:
    """Every top-level config key, in order: ``name -> (type, default)``; the executors' sections after
    ``executor``."""
    hints = _static_hints()
    out: dict[str, tuple[Any, Any]] = {}
    for f in config_fields():
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out[f.name] = (hints[f.name], default)
        if f.name == "executor":
            out.update({name: (cls, cls()) for name, cls in _executor_sections().items()})
    return out


class _Defaults(Mapping):
    """The default of every top-level key (:func:`config_keys`), read again at each use."""

    def __getitem__(self, key: str) -> Any:
        return config_keys()[key][1]

    def __iter__(self) -> Any:
        return iter(config_keys())

    def __len__(self) -> int:
        return len(config_keys())


_DEFAULTS: Mapping[str, Any] = _Defaults()


def _with_section(cfg: Config, name: str, value: Any, rest: str) -> Config:
    """``cfg`` with an executor's section (or one key of it, ``rest``) changed."""
    if rest:
        value = dataclasses.replace(getattr(cfg, name), **{rest: value})
    return dataclasses.replace(cfg, sections={**cfg.sections, name: value})


def _make_config(values: Mapping[str, Any], extra: Optional[dict] = None) -> Config:
    """A :class:`Config` from every top-level key's value (sections as dataclasses or mappings)."""
    kinds = _executor_sections()
    sections = {name: (kinds[name](**value) if isinstance(value, Mapping) else value)
                for name, value in values.items() if name in kinds}
    fields = {k: v for k, v in values.items() if k not in kinds}
    return Config(**fields, sections=sections, extra=dict(extra or {}))


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


@functools.lru_cache(maxsize=1)
def _static_hints() -> dict[str, Any]:
    return typing.get_type_hints(Config)


def _config_hints() -> dict[str, Any]:
    """The type of every top-level key (the executors' sections included)."""
    return {**_static_hints(), **_executor_sections()}


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


# -- parsing ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ParsedCommand:
    """What one ``tunecv train|cv|tune ...`` command line says: the config and the command flags."""

    config: Config
    flags: frozenset[str] = frozenset()


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
    from jsonargparse import ActionConfigFile, ArgumentParser

    # allow_abbrev=False: `--cv.n_seed 2` is an unknown key, not `--cv.n_seeds` (argparse's prefix match)
    kwargs: dict[str, Any] = {"prog": prog, "exit_on_error": False, "default_meta": False,
                              "parser_mode": "omegaconf", "print_config": None, "allow_abbrev": False}
    if light:
        parser = ArgumentParser(description=description, **kwargs)
    else:
        from lightning.pytorch.cli import LightningArgumentParser

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
    import lightning as L
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


def _find_cli(words: Sequence[str]) -> Optional[str]:
    """The project CLI of a command line: the one it names (:func:`_named_cli`), else
    ``pytorch_lightning``'s LightningCLI for a config whose classes come from that package."""
    found = _named_cli(words)
    return found if found is not None else _standalone_package_cli(words)


def _named_cli(words: Sequence[str]) -> Optional[str]:
    """The project CLI a command line names: ``--cli X`` or a ``cli:`` key in a ``--config`` (later wins).
    Reads YAML only (no import)."""
    found: Optional[str] = None
    for i, word in enumerate(words):
        key, eq, value = word.partition("=")
        if key not in ("--cli", "--config"):
            continue
        if not eq:
            if i + 1 >= len(words):
                continue
            value = words[i + 1]
        if key == "--cli":
            found = None if value in ("null", "None", "") else value
            continue
        try:
            text = Path(value).read_text(encoding="utf-8") if "\n" not in value and Path(value).is_file() else value
            data = yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError):
            continue
        if isinstance(data, Mapping) and "cli" in data:
            found = data["cli"] if isinstance(data["cli"], str) else None
    return found


_PL_CLI = "pytorch_lightning.cli.LightningCLI"


def _lightning_package(class_path: Any) -> Optional[str]:
    """``lightning.pytorch`` or ``pytorch_lightning``: the package whose base class ``class_path`` derives from."""
    if not isinstance(class_path, str) or "." not in class_path:
        return None
    try:
        cls = import_class(class_path, "class_path")
    except ConfigError:
        return None
    for klass in inspect.getmro(cls) if inspect.isclass(cls) else []:
        mod = klass.__module__
        if mod.startswith("pytorch_lightning."):
            return "pytorch_lightning"
        if mod.startswith("lightning.pytorch."):
            return "lightning.pytorch"
    return None


def _standalone_package_cli(words: Sequence[str]) -> Optional[str]:
    """A config whose model / data module come from the standalone ``pytorch_lightning`` package is parsed
    and built by ``pytorch_lightning``'s own LightningCLI (as ``pytorch_lightning``'s CLI would)."""
    if importlib.util.find_spec("pytorch_lightning") is None:
        return None
    paths: dict[str, Any] = {}
    for i, word in enumerate(words):
        key, eq, value = word.partition("=")
        if not eq and i + 1 < len(words):
            value = words[i + 1]
        if key == "--config":
            try:
                text = Path(value).read_text(encoding="utf-8") if "\n" not in value and Path(value).is_file() else value
                data = yaml.safe_load(text)
            except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError):
                continue
            for section in ("model", "data"):
                spec = data.get(section) if isinstance(data, Mapping) else None
                if isinstance(spec, Mapping) and "class_path" in spec:
                    paths[section] = spec["class_path"]
                elif isinstance(spec, str):
                    paths[section] = spec
        elif key in ("--model", "--data", "--model.class_path", "--data.class_path"):
            paths[key[2:].split(".")[0]] = value
    packages = {section: _lightning_package(path) for section, path in paths.items()}
    if "pytorch_lightning" not in packages.values():
        return None
    if "lightning.pytorch" in packages.values():
        raise ConfigError("`model` and `data` must come from one Lightning package; got "
                          + ", ".join(f"`{s}.class_path` {paths[s]!r} ({p})" for s, p in packages.items() if p)
                          + ": a pytorch_lightning module cannot train with a lightning.pytorch one (or the "
                            "other way round)")
    return _PL_CLI


def _check_utf8(words: Sequence[str], valid_keys: Optional[Sequence[str]] = None) -> None:
    """Every ``--config FILE`` must be a readable UTF-8 file (read before jsonargparse does)."""
    for i, word in enumerate(words):
        value = None
        if word == "--config" and i + 1 < len(words):
            value = words[i + 1]
        elif word.startswith("--config="):
            value = word.split("=", 1)[1]
        if value is None:
            continue
        if "\n" not in value and not Path(value).is_file():
            _check_not_a_file(value)
        if "\n" in value or not Path(value).is_file():
            _check_top_level_keys(value, "the config", valid_keys)
            continue
        try:
            text = Path(value).read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"`--config` must be a UTF-8 text file; got {value!r} (byte {exc.object[exc.start]:#x} "
                              f"at position {exc.start} is not UTF-8)") from None
        except OSError as exc:
            raise ConfigError(f"`--config` must be a readable file; got {value!r}: {exc.strerror}") from None
        _check_top_level_keys(text, repr(value), valid_keys)


def _check_not_a_file(value: str) -> None:
    """``--config VALUE`` that is no file: inline YAML when it holds a mapping, else a path that is wrong."""
    try:
        data = yaml.safe_load(value)
    except yaml.YAMLError:
        data = value
    if isinstance(data, Mapping) or data is None:
        return  # inline YAML (``--config '{cv: {n_seeds: 2}}'``), read as text
    path = Path(value)
    if path.is_dir():
        raise ConfigError(f"`--config` must be a YAML file; got {value!r}: is a directory")
    if path.exists():
        return  # a FIFO or device: read as it is
    raise ConfigError(f"`--config` {value!r}: no such file")


def _check_top_level_keys(text: str, source: str, valid_keys: Optional[Sequence[str]] = None) -> None:
    """An unknown top-level key is an error even when its value is empty (jsonargparse drops ``x: {}``)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return  # the parser reports it, with its line
    valid = list(valid_keys) if valid_keys is not None else list(_DEFAULTS)
    unknown = [k for k in data if str(k) not in valid] if isinstance(data, Mapping) else []
    if unknown:
        raise ConfigError(f"unknown config key `{unknown[0]}` in {source}; valid top-level keys: {', '.join(valid)}")


# Keys whose values get Lightning's types (the full parser imports lightning to check them).
_LIGHTNING_KEYS = (*DICT_SECTIONS, "seed_everything", *FIT_KEYS)


def precheck(words: Sequence[str], command: str = "train") -> Optional[Config]:
    """Report the mistakes that need neither torch nor lightning before either is imported (fail fast).

    Checked here: every ``--config`` file (exists, readable, UTF-8, valid YAML, a mapping), tunecv's own keys
    (unknown keys, types, ranges: ``cv.*``, ``tune.*``, ``split.*``, the executor sections, ...) and, for
    ``tune``, the search-space file. The Lightning sections (``model``, ``data``, ``trainer``,
    ``optimizer``, ``lr_scheduler``, ``seed_everything``, ``ckpt_path``) are left to the full parse, which
    keeps its messages; so is everything when the config names a project CLI (``cli``), whose parser adds
    keys of its own. Does nothing when all is well: :func:`parse_command` still parses the whole command.
    Returns the light config (tunecv's own keys; ``None`` when the check stepped aside), whose search-space
    file the caller can load (``search_space`` sits above this layer).

    Raises:
        ConfigError: one line, as :func:`parse_command` would report it.
    """
    flag_words = {f"--{f}" for f in FLAGS}
    words = [w for w in words if w not in flag_words]
    if _named_cli(words) is not None:
        return None  # the project's own parser decides what its configs may hold (its keys, `fit:` nesting)
    light_words: list[str] = []
    has_cli = False
    units = _units(words, None)
    for unit in units:
        key, eq, value = unit[0][2:].partition("=") if unit[0].startswith("--") else ("", "", "")
        if eq and len(unit) == 1:
            unit = [f"--{key}", value]
        elif len(unit) == 2:
            value = unit[1]
        if key == "config" and len(unit) == 2:
            _check_utf8(unit)  # no such file, a folder, unreadable, not UTF-8
            data = _read_config_value(value)  # YAML errors with their line
            if not isinstance(data, Mapping):
                if data is None:
                    continue
                raise ConfigError(f"`--config` must be a YAML file holding a mapping of config keys; got {value!r}")
            has_cli = has_cli or "cli" in data
            light_words += ["--config", _config_text({k: v for k, v in data.items() if k not in _LIGHTNING_KEYS})]
        elif key.split(".")[0] in _LIGHTNING_KEYS:
            continue
        else:
            has_cli = has_cli or key == "cli"
            light_words += unit
    if has_cli or any("${" in w for w in light_words) or _section_as_path(light_words):
        return None  # the project's parser (its own keys), interpolation that may read the Lightning sections, or
        # a section given as a file name (resolved against its config file's folder, which inline text lacks)
    _check_utf8(light_words)  # unknown top-level keys, even with empty values
    parser = build_parser(light=True)
    try:
        ns = parser.parse_args(light_words, env=False)
    except Interrupted:
        raise
    except (Exception, SystemExit) as exc:
        raise ConfigError(_diagnose(parser, light_words, exc)) from None
    data = _plain(ns.as_dict())
    kwargs: dict[str, Any] = {}
    for name, (tp, default) in config_keys().items():
        value = data.get(name, default)
        cls = _dataclass_of(tp)
        if name in _LIGHTNING_KEYS:
            value = default
        elif cls is not None and isinstance(value, Mapping):
            value = cls(**value)
        kwargs[name] = value
    cfg = _make_config(kwargs)
    validate(cfg)
    return cfg


def _section_as_path(words: Sequence[str]) -> bool:
    """Whether a section of tunecv's (``cv``, ``split``, ...) is given as a string: a file to include."""
    hints = _config_hints()
    for i, word in enumerate(words[:-1]):
        key = word[2:]
        if key == "config":
            data = yaml.safe_load(words[i + 1]) or {}
            if any(isinstance(v, str) and _dataclass_of(hints.get(k)) for k, v in data.items()):
                return True
        elif key in hints and _dataclass_of(hints[key]) and not words[i + 1].lstrip().startswith("{"):
            return True
    return False


def parse_command(words: Sequence[str], prog: str = "tunecv") -> ParsedCommand:
    """Parse the words after ``tunecv train|cv|tune`` into the validated config and the command flags.

    Raises:
        ConfigError: an unknown key or option, or a value that breaks its constraint (one line).
    """
    flag_words = {f"--{f}" for f in FLAGS}
    flags = frozenset(w[2:] for w in words if w in flag_words)
    return ParsedCommand(_parse([w for w in words if w not in flag_words], prog), flags)


def load_config(
    *configs: Union[str, os.PathLike, Mapping],
    overrides: Optional[Mapping[str, Any]] = None,
) -> Config:
    """Read, compose, interpolate and validate a config, as ``tunecv train --config ... --KEY VALUE`` does.

    Args:
        *configs: YAML file paths or mappings, later ones win.
        overrides: dotted keys and values applied last (``{"model.init_args.lr": 0.01}``).

    Returns:
        The validated, frozen config.

    Raises:
        ConfigError: a key is unknown or a value breaks its constraint.
    """
    words: list[str] = []
    for src in configs:
        if isinstance(src, Mapping):
            words += ["--config", _config_text(src)]
        else:
            path = Path(src)
            if not path.is_file():
                raise ConfigError(f"`--config` must name an existing YAML file; got {str(path)!r}")
            words += ["--config", str(path)]
    for key, value in (overrides or {}).items():
        words += [f"--{key}", value if isinstance(value, str) else json.dumps(_plain(value))]
    return _parse(words)


def config_from_dict(data: Mapping) -> Config:
    """Validate a plain mapping against the config types and return the frozen :class:`Config`."""
    return load_config(data)


def _config_text(data: Mapping) -> str:
    if not data:
        return "{}"
    return yaml.safe_dump(_plain(dict(data)), sort_keys=False)


def _parse(words: Sequence[str], prog: str = "tunecv") -> Config:
    cli = _find_cli(words)
    if cli is None:
        _check_utf8(words)
        parser = build_parser(prog=prog) if prog != "tunecv" else build_parser()
    else:
        from tunecv import user_cli

        words = _unwrap_subcommands(words)
        parser = user_cli.cli_parser(cli, add_tunecv_keys)
        _check_utf8(words, user_cli.top_level_keys(cli, add_tunecv_keys))
    try:
        ns = parser.parse_args(list(words), env=False)
    except Interrupted:  # Ctrl-C or SIGTERM while parsing: the command stops, it is no bad config
        raise
    except (Exception, SystemExit) as exc:  # jsonargparse: ArgumentError; anything raised while loading
        if isinstance(exc, ConfigError):
            raise
        if cli is not None:  # the project's own parser: jsonargparse's whole reason, on one line
            raise ConfigError(f"invalid config (cli {cli}): {one_line(exc)}") from None
        raise ConfigError(_diagnose(parser, list(words), exc)) from None
    return _from_namespace(ns, parser if cli is not None else None, cli)


_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _unwrap_subcommands(words: Sequence[str]) -> list[str]:
    """A LightningCLI config nested under its subcommand (``fit: {model: ..., trainer: ...}``, given before
    ``fit`` on the project's command line) is read as ``fit``'s keys; other subcommands' keys are left out."""
    out = list(words)
    for i, word in enumerate(out):
        if word != "--config" or i + 1 >= len(out):
            continue
        value = out[i + 1]
        try:
            text = Path(value).read_text(encoding="utf-8") if "\n" not in value and Path(value).is_file() else value
            data = yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError):
            continue
        if isinstance(data, Mapping) and isinstance(data.get("fit"), Mapping):
            flat = {k: v for k, v in data.items() if k not in _SUBCOMMANDS}
            out[i + 1] = _config_text({**flat, **data["fit"]})
    return out


def one_line(exc: BaseException) -> str:
    """An exception's whole message on one line (jsonargparse's reasons span several)."""
    text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
    return text or type(exc).__name__


def _from_namespace(ns: Any, cli_parser: Any = None, cli: Optional[str] = None) -> Config:
    """The :class:`Config` of a parsed namespace (``trainer`` keeps only what differs from its defaults).

    With a project CLI's parser, the config is what that parser dumps (link targets left out: they are
    computed again at every parse), and the keys the project adds are kept in ``extra``.
    """
    extra: dict[str, Any] = {}
    if cli_parser is not None:
        data = yaml.safe_load(cli_parser.dump(ns, skip_none=False, skip_link_targets=True, format="yaml"))
        data.pop("config", None)
        extra = {k: v for k, v in data.items() if k not in _DEFAULTS}
        data["cli"] = cli = data.get("cli") or cli  # found from the classes' package (pytorch_lightning)
        if isinstance(cli, str) and cli.endswith(".py") and Path(cli).is_file():
            data["cli"] = str(Path(cli).resolve())  # workers and cluster jobs find it wherever they start
    else:
        data = _plain(ns.as_dict())
    data.pop("config", None)
    trainer_defaults = _trainer_defaults()
    data["trainer"] = {k: v for k, v in (data.get("trainer") or {}).items()
                       if k not in trainer_defaults or v != trainer_defaults[k]}
    kwargs: dict[str, Any] = {}
    for name, (tp, default) in config_keys().items():
        value = data.get(name, default)
        cls = _dataclass_of(tp)
        if cls is not None and isinstance(value, Mapping):
            value = cls(**value)
        kwargs[name] = value
    seed_everything = kwargs["seed_everything"]
    if not isinstance(seed_everything, bool) and kwargs["seed"] == _DEFAULTS["seed"]:
        kwargs["seed"] = seed_everything  # LightningCLI's seed_everything: N is the run seed
    if seed_everything is not False:
        kwargs["seed_everything"] = kwargs["seed"]
    cfg = _make_config(kwargs, extra)
    validate(cfg)
    return cfg


def _dataclass_of(tp: Any) -> Optional[type]:
    if dataclasses.is_dataclass(tp):
        return tp  # type: ignore[return-value]
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg):
            return arg  # type: ignore[return-value]
    return None


# -- turning a parse error into one line ----------------------------------------------------------------

def _units(words: list[str], parser: Any) -> list[list[str]]:
    """The command line cut into ``--key value`` / ``--key=value`` / ``--config FILE`` units."""
    units: list[list[str]] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--") and "=" not in word and i + 1 < len(words):
            units.append([word, words[i + 1]])
            i += 2
        else:
            units.append([word])
            i += 1
    return units


def _fails(parser: Any, words: list[str]) -> bool:
    try:
        parser.parse_args(words, env=False)
    except Interrupted:  # Ctrl-C or SIGTERM while parsing: the command stops, it is no bad config
        raise
    except (Exception, SystemExit):
        return True
    return False


def _diagnose(parser: Any, words: list[str], exc: BaseException) -> str:
    """One line for a failed parse: which unit of the command line, then which key inside it, and why.

    The failing ``--config`` file or ``--key value`` is found by parsing growing prefixes of the command
    line; inside a file (or a section given as a mapping), by leaving out one key at a time.
    """
    units = _units(words, parser)
    before: list[str] = []
    for unit in units:
        if _fails(parser, [*before, *unit]):
            return _blame_unit(parser, before, unit) or _fallback(exc)
        before += unit
    return _fallback(exc)


def _fallback(exc: BaseException) -> str:
    return "invalid config: " + one_line(exc)


def _blame_unit(parser: Any, before: list[str], unit: list[str]) -> Optional[str]:
    word = unit[0]
    if not word.startswith("--"):
        return f"unexpected argument {word!r}; options are --config FILE and --KEY VALUE for any config key"
    key, eq, value = word[2:].partition("=")
    if not eq:
        if len(unit) < 2:
            return f"`--{key}` needs a value"
        value = unit[1]
    if key == "config":
        data = _read_config_value(value)
        if not isinstance(data, Mapping):
            return (f"`--config` must be a YAML file holding a mapping of config keys; got {value!r}"
                    if data is not None else None)
        # the file alone is fine: a key in it conflicts with an earlier unit; else find the key inside
        path = _blame_mapping(parser, before, data, [], value)
        if path is None:
            return None
        if any(isinstance(p, int) for p in path):
            return _describe_in_list(path, _get_path(data, path), data)
        return _describe_failure(path, _get_path(data, path), _full_context(before, data))
    dotted = _canonical_key(key, before)
    return _describe_failure(dotted.split("."), _yaml_value(value), before)


def _read_config_value(value: str) -> Any:
    path = Path(value)
    try:
        text = path.read_text(encoding="utf-8") if "\n" not in value and path.is_file() else value
    except OSError:
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"`--config` must be valid YAML{where}; got {value!r}: "
                          f"{getattr(exc, 'problem', exc)}") from None


def _yaml_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def _get_path(data: Any, path: list[Any]) -> Any:
    for part in path:
        data = data[part]
    return data


def _without(data: Any, path: list[Any]) -> Any:
    """A copy of ``data`` without the key (or list item) at ``path``."""
    head, rest = path[0], path[1:]
    if isinstance(data, list):
        out_list = list(data)
        if rest:
            out_list[head] = _without(out_list[head], rest)
        else:
            del out_list[head]
        return out_list
    out = dict(data)
    if rest:
        out[head] = _without(out[head], rest)
    else:
        out.pop(head, None)
    return out


def _only(data: Any, path: list[Any]) -> Any:
    """``data`` reduced to the key at ``path`` (with the ``class_path`` beside each level, for context)."""
    head, rest = path[0], path[1:]
    if isinstance(data, list):
        item = data[head]
        return [_only(item, rest) if rest and isinstance(item, (Mapping, list)) else item]
    out = {k: data[k] for k in (head, "class_path") if k in data}
    if rest and isinstance(data.get(head), (Mapping, list)):
        out[head] = _only(data[head], rest)
    return out


def _children(node: Any) -> list[Any]:
    if isinstance(node, Mapping):
        return [str(k) for k in node]
    return list(range(len(node)))


def _blame_mapping(parser: Any, before: list[str], data: Mapping, path: list[Any], source: str) -> Optional[list[Any]]:
    """The deepest key of ``data`` under ``path`` whose removal makes the command line parse."""
    node = _get_path(data, path)
    if not isinstance(node, (Mapping, list)) or (isinstance(node, list) and not node):
        return path or None
    for child in _children(node):
        if path == [] or child != "class_path":
            candidate = [*path, child]
            if not _fails(parser, [*before, "--config", _config_text(_without(data, candidate))]):
                return _blame_mapping(parser, before, data, candidate, source) or candidate
    # no single removal helps (several keys fail, or a required one does): a key that fails on its own
    for child in _children(node):
        if path == [] or child != "class_path":
            candidate = [*path, child]
            if _fails(parser, [*before, "--config", _config_text(_only(data, candidate))]):
                return _blame_mapping(parser, before, data, candidate, source) or candidate
    # else look for the culprit inside its mappings
    for child in _children(node):
        if isinstance(node[child], (Mapping, list)):
            deeper = _blame_mapping(parser, before, data, [*path, child], source)
            if deeper and len(deeper) > len(path) + 1:
                return deeper
    return path or None


def _dotted(path: list[Any]) -> str:
    """``['trainer', 'callbacks', 0, 'init_args']`` → ``trainer.callbacks[0].init_args``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe_in_list(path: list[Any], value: Any, data: Mapping) -> Optional[str]:
    """A key inside a list item (``trainer.callbacks[0].init_args.patience``): from the item's class."""
    last_index = max(i for i, p in enumerate(path) if isinstance(p, int))
    item = _get_path(data, path[:last_index + 1])
    rest = path[last_index + 1:]
    dotted = _dotted(path)
    if not isinstance(item, Mapping) or not item.get("class_path"):
        return f"`{dotted}` is invalid; got {value!r}"
    try:
        cls = import_class(str(item["class_path"]), f"{_dotted(path[:last_index + 1])}.class_path")
    except ConfigError as err:
        return str(err)
    if _lightning_package(str(item["class_path"])) == "pytorch_lightning":
        own = str(item["class_path"]).replace("pytorch_lightning.", "lightning.pytorch.", 1)
        return (f"`{_dotted(path[:last_index + 1])}.class_path` must be a lightning.pytorch class, as this config's "
                f"model is; got {item['class_path']!r}, a class of the standalone pytorch_lightning package (one "
                f"package per run: {own}, or a pytorch_lightning model)")
    if len(rest) >= 2 and rest[0] == "init_args":
        params = init_parameters(cls)
        if params is not None and rest[1] not in params:
            return (f"unknown config key `{dotted}`: {item['class_path']} takes no argument {rest[1]!r}; "
                    f"valid: {', '.join(sorted(params))}")
        if len(rest) == 2:
            return f"`{dotted}` must be {_describe_type(_annotation(cls, rest[1]))}; got {value!r}"
    return f"`{dotted}` is invalid for {item['class_path']}; got {value!r}"


def _full_context(before: list[str], data: Mapping) -> list[str]:
    return [*before, "--config", _config_text(data)]


def _canonical_key(key: str, before: list[str]) -> str:
    """``model.hidden`` (LightningCLI shorthand) → ``model.init_args.hidden``."""
    parts = key.split(".")
    if parts[0] in CLASS_SECTIONS and len(parts) > 1 and parts[1] not in ("class_path", "init_args"):
        parts.insert(1, "init_args")
    return ".".join(parts)


def _describe_failure(path: list[str], value: Any, context: list[str]) -> str:
    """``path`` is the key whose value fails: say why from its type (or that it is no key at all)."""
    dotted = ".".join(path)
    top = path[0]
    if top not in _DEFAULTS:
        return f"unknown config key `{top}`; valid top-level keys: {', '.join(_DEFAULTS)}"
    walked = _walk_key(path, value, context)
    if isinstance(walked, str):
        return walked
    tp, owner = walked
    if len(path) == 1 and top in CLASS_SECTIONS and isinstance(value, (Mapping, str)):
        return _describe_class_section(top, value)
    if tp is inspect.Parameter.empty:
        return f"`{dotted}` ({owner}) is invalid; got {value!r}"
    return f"`{dotted}` must be {_describe_type(tp)}; got {value!r}"


def _walk_key(path: list[str], value: Any, context: list[str]) -> Union[str, tuple[Any, str]]:
    """Follow ``path`` down the config's types: ``(type, owner)`` of its last part, or why it is no key."""
    dotted = ".".join(path)
    top = path[0]
    tp: Any = _config_hints()[top]
    owner = "config"
    for i, part in enumerate(path[1:], start=1):
        where = ".".join(path[:i])
        cls = _dataclass_of(tp)
        if cls is not None:
            hints = typing.get_type_hints(cls)
            if part not in hints:
                return (f"unknown config key `{dotted}`; valid keys of `{where}`: "
                        f"{', '.join(f.name for f in dataclasses.fields(cls))}")
            tp, owner = hints[part], where
            continue
        if top == "trainer" and i == 1:
            import lightning as L

            params = inspect.signature(L.Trainer.__init__).parameters
            if part not in params:
                return f"unknown config key `{dotted}`: lightning.Trainer takes no argument {part!r}"
            tp, owner = _annotation(L.Trainer.__init__, part), "lightning.Trainer"
            continue
        if part == "init_args" and i + 1 < len(path):
            return _walk_init_args(path, i, value, context)
        if part == "class_path":
            try:
                _resolve_class(str(value), top)
            except ConfigError as err:
                return f"`{dotted}`: {err}".replace(f"`{dotted}`: `{top}.class_path`", f"`{dotted}`")
            return f"`{dotted}` must name a class of the right kind for `{where}`; got {value!r}"
        if top in CLASS_SECTIONS and i == 1 and not _spec_in_context([top], context).get("class_path"):
            return (f"`{top}` needs a `class_path` before `{dotted}` can be set: {{class_path: my_pkg.MyClass, "
                    f"init_args: {{{part}: ...}}}}; when the project's entry point fixes the class "
                    f"(LightningCLI(MyModel, ...)), name it with `cli` (--cli main.py)")
        return f"`{dotted}` is invalid; got {value!r}"
    return tp, owner


def _walk_init_args(path: list[str], i: int, value: Any, context: list[str]) -> Union[str, tuple[Any, str]]:
    """``path[i]`` is ``init_args``: the type of the argument ``path[i + 1]`` of the class set before it."""
    dotted, where = ".".join(path), ".".join(path[:i])
    spec = _spec_in_context(path[:i], context)
    class_path = spec.get("class_path") if isinstance(spec, Mapping) else None
    if not class_path:
        return f"`{where}` needs a `class_path` before `{dotted}` can be set"
    try:
        cls_obj = _resolve_class(str(class_path), path[0])
    except ConfigError as err:
        return str(err)
    params = init_parameters(cls_obj)
    arg = path[i + 1]
    if params is not None and arg not in params:
        return (f"unknown config key `{'.'.join(path[:i + 2])}`: {class_path} takes no argument {arg!r}; "
                f"valid: {', '.join(sorted(params))}")
    if i + 2 < len(path):
        return f"`{dotted}` is invalid; got {value!r}"
    return _annotation(cls_obj, arg), str(class_path)


def _describe_class_section(top: str, value: Union[Mapping, str]) -> str:
    """Why the whole value of a class section (``model:``, ``data:``, ...) fails."""
    class_path = value.get("class_path") if isinstance(value, Mapping) else value
    if class_path:
        try:
            cls = _resolve_class(str(class_path), top)
        except ConfigError as err:
            return str(err)
        base = _SECTION_BASES[top]()
        if not (inspect.isclass(cls) and issubclass(cls, base)):
            names = " or ".join(f"{b.__module__}.{b.__qualname__}" for b in base)
            return f"`{top}.class_path` must name a subclass of {names}; got {class_path!r}"
    if not isinstance(value, Mapping):
        return f"`{top}` must be a class path or {{class_path: ..., init_args: {{...}}}}; got {value!r}"
    return f"`{top}` must be {{class_path: ..., init_args: {{...}}}}; got keys {sorted(value)}"


def _spec_in_context(path: list[str], context: list[str]) -> Any:
    """The ``{class_path, init_args}`` mapping at ``path`` after the given command-line units."""
    parser = build_parser()
    try:
        ns = parser.parse_args(context, env=False)
        return _plain(ns.as_dict()).get(path[0]) if len(path) == 1 else None
    except Interrupted:  # Ctrl-C or SIGTERM while parsing: the command stops, it is no bad config
        raise
    except (Exception, SystemExit):
        pass
    spec: dict = {}
    for unit_start in range(len(context)):  # the last mention wins
        if context[unit_start] == "--config" and unit_start + 1 < len(context):
            data = _read_config_value(context[unit_start + 1])
            if isinstance(data, Mapping) and isinstance(data.get(path[0]), Mapping):
                spec = dict(data[path[0]])
            elif isinstance(data, Mapping) and isinstance(data.get(path[0]), str):
                spec = {"class_path": data[path[0]]}
        elif context[unit_start] == f"--{path[0]}" and unit_start + 1 < len(context):
            spec = {"class_path": context[unit_start + 1]}
    return spec


def _section_bases(section: str) -> tuple[type, ...]:
    import lightning as L
    from lightning.pytorch.cli import LRSchedulerTypeTuple
    from torch.optim import Optimizer

    return {"model": (L.LightningModule,), "data": (L.LightningDataModule,), "optimizer": (Optimizer,),
            "lr_scheduler": LRSchedulerTypeTuple}[section]


_SECTION_BASES = {name: functools.partial(_section_bases, name) for name in CLASS_SECTIONS}

_SHORT_MODULES = {"optimizer": "torch.optim", "lr_scheduler": "torch.optim.lr_scheduler"}


def _resolve_class(class_path: str, section: str) -> Any:
    if "." not in class_path and section in _SHORT_MODULES:
        class_path = f"{_SHORT_MODULES[section]}.{class_path}"
    return import_class(class_path, f"{section}.class_path")


def _annotation(fn: Any, name: str) -> Any:
    try:
        hints = typing.get_type_hints(fn.__init__ if inspect.isclass(fn) else fn)
    except Exception:
        hints = {}
    if name in hints:
        return hints[name]
    try:
        target = fn.__init__ if inspect.isclass(fn) else fn
        return inspect.signature(target).parameters[name].annotation
    except (KeyError, TypeError, ValueError):
        return inspect.Parameter.empty


def _describe_type(tp: Any) -> str:
    """A type annotation in words: ``Optional[int]`` → ``an int or null``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (Union, types.UnionType):  # Optional[int] and int | None
        parts = [_describe_type(a) for a in args if a is not type(None)]
        if any(a is type(None) for a in args):
            parts.append("null")
        return " or ".join(dict.fromkeys(parts))
    if origin in (list, Sequence, tuple, set) or tp in (list, tuple):
        inner = f" of {_describe_type(args[0]).removeprefix('an ').removeprefix('a ')}s" if args else ""
        return f"a list{inner}"
    if origin in (dict, Mapping) or tp is dict:
        return "a mapping"
    names = {int: "an int", float: "a float", bool: "true or false", str: "a string"}
    if tp in names:
        return names[tp]
    if dataclasses.is_dataclass(tp):
        return f"a mapping with keys {', '.join(f.name for f in dataclasses.fields(tp))}"
    if inspect.isclass(tp):
        return f"a {tp.__module__}.{tp.__qualname__}"
    return str(tp).replace("typing.", "")


def validate(cfg: Config) -> None:
    """Checks that types alone cannot express (ranges, combinations)."""
    from tunecv import naming

    if cfg.name is not None:
        naming.validate_name(cfg.name, key="name")
    _validate_artifact_dir(cfg.artifact_dir)
    devices = cfg.devices
    if isinstance(devices, bool) or (isinstance(devices, list) and not devices) or \
            (isinstance(devices, int) and devices < -1):
        raise ConfigError("`devices` must be a non-empty list of device ids such as [0, 2, 5, 6], a count (2), "
                          f"-1 (all) or auto; got {devices!r}")
    if cfg.num_nodes < 1:
        raise ConfigError(f"`num_nodes` must be >= 1; got {cfg.num_nodes}")
    if cfg.runs_per_device < 1:
        raise ConfigError(f"`runs_per_device` must be >= 1; got {cfg.runs_per_device}")
    _validate_executor(cfg)
    _validate_extensions(cfg)
    sp = cfg.split
    makes_folds = fold_method(sp).makes_folds
    if makes_folds and sp.total_folds < 2:
        raise ConfigError(f"`split.total_folds` must be >= 2 for fold_method {sp.fold_method!r}; "
                          f"got {sp.total_folds}")
    if not makes_folds and sp.total_folds < 1:
        raise ConfigError(f"`split.total_folds` must be >= 1; got {sp.total_folds}")
    n_folds = sp.total_folds if makes_folds else 1
    if not 0 <= cfg.fold < n_folds:
        raise ConfigError(f"`fold` must be in [0, {n_folds - 1}] (split.total_folds={n_folds}); got {cfg.fold}")
    _validate_test_split_by(sp)
    if cfg.cv.n_folds is not None and not 1 <= cfg.cv.n_folds <= n_folds:
        raise ConfigError(f"`cv.n_folds` must be in [1, {n_folds}] (split.total_folds); got {cfg.cv.n_folds}")
    if cfg.cv.n_seeds < 1:
        raise ConfigError(f"`cv.n_seeds` must be >= 1; got {cfg.cv.n_seeds}")
    if not cfg.cv.scoring_metric:
        raise ConfigError("`cv.scoring_metric` must list at least one metric such as val/loss:lower; got []")
    for metric in cfg.cv.scoring_metric:
        _check_metric_spec(metric, "cv.scoring_metric")
    for metric in cfg.tune.objectives or []:
        _check_metric_spec(metric, "tune.objectives")
    from tunecv.constraints import parse_constraints

    parse_constraints(cfg.tune.constraints)
    if not cfg.tune.heartbeat_grace > 0:
        raise ConfigError(f"`tune.heartbeat_grace` must be > 0 (seconds); got {cfg.tune.heartbeat_grace}")
    if cfg.tune.worker_id is not None and not str(cfg.tune.worker_id).strip():
        raise ConfigError(f"`tune.worker_id` must be a non-empty string or null; got {cfg.tune.worker_id!r}")
    _validate_nested(cfg)
    if isinstance(cfg.tune.n_trials, int) and cfg.tune.n_trials < 1:
        raise ConfigError(f"`tune.n_trials` must be >= 1 or 'grid'; got {cfg.tune.n_trials}")
    for sec in ("model", "data"):
        spec = getattr(cfg, sec)
        if cfg.cli is None and spec is not None and not isinstance(spec.get("class_path"), str):
            raise ConfigError(f"`{sec}` must have a `class_path` string (and optional `init_args`); "
                              f"got keys {sorted(spec)}")


def _validate_nested(cfg: Config) -> None:
    ne = cfg.nested
    if not fold_method(SplitConfig(fold_method=ne.fold_method), "nested.fold_method").makes_folds:
        methods = ", ".join(m for m in FOLD_METHODS.names() if m != "none")
        raise ConfigError(f"`nested.fold_method` must cut outer folds (one of {methods}); got 'none'")
    if ne.total_folds < 2:
        raise ConfigError(f"`nested.total_folds` must be >= 2; got {ne.total_folds}")
    if ne.n_folds is not None and not 1 <= ne.n_folds <= ne.total_folds:
        raise ConfigError(f"`nested.n_folds` must be in [1, {ne.total_folds}] (nested.total_folds) or null; "
                          f"got {ne.n_folds}")


def _validate_artifact_dir(path: str) -> None:
    """``artifact_dir`` must be (or become) a folder: no part of it may be a regular file."""
    p = Path(path).expanduser()
    for part in [p, *p.parents]:
        if part.exists():
            if not part.is_dir():
                where = "" if part == p else f" ({str(part)!r})"
                raise ConfigError(f"`artifact_dir` must be a folder path, not under a regular file; got {path!r}"
                                  f"{where} is a regular file")
            if not os.access(part, os.W_OK | os.X_OK):
                raise ConfigError(f"`artifact_dir` must be writable; got {path!r} ({str(part)!r} is not writable)")
            return

def _validate_extensions(cfg: Config) -> None:
    """The names of the extension points (fold method, scoring aggregation, trackers) are registered ones."""
    FOLD_METHODS.check(cfg.split.fold_method, "split.fold_method")
    aggregation(cfg.cv.multi_score_strategy)
    trackers = cfg.logging.trackers
    if not isinstance(trackers, list):
        raise ConfigError(f"`logging.trackers` must be a list of tracker names such as [csv, wandb]; got {trackers!r}")
    for i, name in enumerate(trackers):
        TRACKERS.check(name, f"logging.trackers[{i}]")


def _validate_executor(cfg: Config) -> None:
    from tunecv.executors import check_executor_config  # lazy: as in _executor_sections

    check_executor_config(cfg)


def _check_metric_spec(metric: str, key: str) -> None:
    if not isinstance(metric, str) or not metric:
        raise ConfigError(f"`{key}` entries must be metric names such as val/acc or val/loss:lower; got {metric!r}")
    if ":" in metric:
        direction = metric.rsplit(":", 1)[1]
        if direction not in ("higher", "lower"):
            raise one_of(f"{key} direction", direction, ("higher", "lower"))


def _validate_test_split_by(sp: SplitConfig) -> None:
    by = sp.test_split_by
    if sp.test_split == "none":
        return
    if sp.test_split == "random":
        if (by is None or len(by) != 1 or isinstance(by[0], (str, bool))
                or not 0 < float(by[0]) < 1):
            raise ConfigError("`split.test_split_by` must be one fraction in (0, 1) such as [0.2] for "
                              f"test_split 'random'; got {by!r}")
        return
    if not by:
        what = "region names" if sp.test_split == "region" else "sample ids"
        raise ConfigError(f"`split.test_split_by` must list {what} for test_split {sp.test_split!r}; got {by!r}")


# -- access by dotted key ------------------------------------------------------------------------------

def get_key(cfg: Config, dotted: str) -> Any:
    """The value at a dotted key (``model.init_args.lr``); ``KeyError`` when absent."""
    parts = dotted.split(".")
    cur: Any = cfg
    for i, part in enumerate(parts):
        if i == 0 and isinstance(cur, Config) and part in _executor_sections():
            cur = getattr(cur, part)
        elif dataclasses.is_dataclass(cur) and not isinstance(cur, type):
            if part not in {f.name for f in dataclasses.fields(cur)}:
                raise KeyError(".".join(parts[: i + 1]))
            cur = getattr(cur, part)
        elif isinstance(cur, Mapping):
            if part not in cur:
                raise KeyError(".".join(parts[: i + 1]))
            cur = cur[part]
        else:
            raise KeyError(".".join(parts[: i + 1]))
    return cur


def set_key(cfg: Config, dotted: str, value: Any) -> Config:
    """A copy of ``cfg`` with one dotted key changed (validated again)."""
    data = cfg.to_dict()
    set_in(data, dotted, value)
    return config_from_dict(data)


def check_key(cfg: Config, dotted: str) -> None:
    """Raise :class:`ConfigError` unless ``dotted`` names a settable config key.

    Typed sections are checked against their fields; ``model.init_args.X`` and ``data.init_args.X``
    against the class's ``__init__`` parameters; ``trainer.X`` against ``lightning.Trainer``'s;
    ``optimizer.init_args.X`` / ``lr_scheduler.init_args.X`` against the optimizer/scheduler class.
    """
    parts = dotted.split(".")
    top = parts[0]
    if cfg.cli is not None and (top in CLASS_SECTIONS or top in cfg.extra):
        _check_cli_key(cfg, parts)
        return
    if top not in _DEFAULTS:
        raise ConfigError(f"`{dotted}` is not a config key: unknown top-level key {top!r}; valid: "
                          f"{', '.join(_DEFAULTS)}")
    if top in ("model", "data", "optimizer", "lr_scheduler"):
        spec = getattr(cfg, top)
        if len(parts) >= 3 and parts[1] == "init_args":
            if isinstance(spec, str):
                spec = {"class_path": spec}
            if not spec or "class_path" not in spec:
                raise ConfigError(f"`{dotted}` is not a config key: `{top}` has no class_path in the config")
            _check_spec_path(spec, parts[2:], dotted, top)
            return
        raise ConfigError(f"`{dotted}` is not a config key: expected {top}.init_args.<argument>")
    if top == "trainer":
        if len(parts) != 2:
            raise ConfigError(f"`{dotted}` is not a config key: expected trainer.<Trainer argument>")
        import lightning

        params = init_parameters(lightning.Trainer) or set()
        if parts[1] not in params:
            raise ConfigError(f"`{dotted}` is not a config key: lightning.Trainer takes no argument "
                              f"{parts[1]!r}")
        return
    try:
        value = get_key(cfg, dotted)
    except KeyError as exc:
        section = getattr(cfg, top)
        if dataclasses.is_dataclass(section):
            valid = ", ".join(f"{top}.{f.name}" for f in dataclasses.fields(section))
            raise ConfigError(f"`{dotted}` is not a config key; valid keys of `{top}`: {valid}") from None
        raise ConfigError(f"`{dotted}` is not a config key ({exc.args[0]} does not exist)") from None
    if dataclasses.is_dataclass(value):
        raise ConfigError(f"`{dotted}` is a section, not a single key; name one of its fields")


def _check_cli_key(cfg: Config, parts: list[str]) -> None:
    """Under the project's CLI a key exists when its parsed config holds it (every init argument is there,
    defaults included): ``model.lr`` for a class fixed in the entry point, ``model.init_args.lr`` otherwise."""
    cur: Any = cfg.to_dict()
    for i, part in enumerate(parts):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
            continue
        where = ".".join(parts[:i]) or "the config"
        valid = f"; valid: {', '.join(sorted(map(str, cur)))}" if isinstance(cur, Mapping) and cur else ""
        raise ConfigError(f"`{'.'.join(parts)}` is not a config key of the project's CLI ({cfg.cli}): no "
                          f"{part!r} under `{where}`{valid}")


def _check_spec_path(spec: Mapping, rest: list[str], dotted: str, where: str) -> None:
    """Check ``rest`` (the parts after ``init_args``) against the class of a ``{class_path, init_args}`` spec.

    Nested specs are followed (``model.init_args.net.init_args.hidden``); inside any other mapping a key
    that exists in the config is accepted.
    """
    cls = import_class(spec["class_path"], f"{where}.class_path")
    params = init_parameters(cls)
    arg = rest[0]
    if params is not None and arg not in params:
        raise ConfigError(f"`{dotted}` is not a config key: {spec['class_path']} takes no argument "
                          f"{arg!r}; valid: {', '.join(sorted(params))}")
    if len(rest) == 1:
        return
    value = (spec.get("init_args") or {}).get(arg)
    if isinstance(value, Mapping) and "class_path" in value and rest[1] == "init_args" and len(rest) >= 3:
        _check_spec_path(value, rest[2:], dotted, f"{where}.init_args.{arg}")
        return
    cur: Any = value
    for i, part in enumerate(rest[1:]):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        elif isinstance(cur, Mapping) and i == len(rest) - 2:
            return  # a new key in an existing mapping (e.g. a loss weight left at its default)
        else:
            raise ConfigError(f"`{dotted}` is not a config key: no {part!r} under "
                              f"{where}.init_args.{'.'.join(rest[: i + 1])} in the config")


def import_class(path: str, key: str) -> Any:
    """Import ``package.module.Name``; a :class:`ConfigError` naming ``key`` when it fails."""
    if not isinstance(path, str) or "." not in path:
        raise ConfigError(f"`{key}` must be an importable dotted path such as my_pkg.models.Net; got {path!r} (a short "
                          f"name resolves only under the project's own CLI, whose imports define it: --cli main.py)")
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"`{key}` must be importable; got {path!r}: {type(exc).__name__}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"`{key}` must be importable; got {path!r}: module {module_name!r} has no "
                          f"attribute {attr!r}") from None


def init_parameters(cls: Any) -> Optional[set[str]]:
    """Names accepted by ``cls(...)``, or ``None`` when it takes ``**kwargs`` (anything goes)."""
    names: set[str] = set()
    for klass in inspect.getmro(cls) if inspect.isclass(cls) else [cls]:
        init = klass.__init__ if inspect.isclass(cls) else klass
        if init is object.__init__:
            continue
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            return None
        has_var_kw = False
        for p in sig.parameters.values():
            if p.name == "self":
                continue
            if p.kind is p.VAR_KEYWORD:
                has_var_kw = True
            elif p.kind is not p.VAR_POSITIONAL:
                names.add(p.name)
        if not has_var_kw:
            return names
    return names or None


def set_in(obj: dict, dotted: str, value: Any) -> dict:
    """Set a dotted key in nested dicts (creating mappings as needed); returns ``obj``."""
    parts = dotted.split(".")
    cur = obj
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[part] = nxt
        cur = nxt
    cur[parts[-1]] = value
    return obj


def dump_yaml(cfg: Config | Mapping) -> str:
    """The config as YAML, keys in declaration order."""
    data = cfg.to_dict() if isinstance(cfg, Config) else dict(cfg)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
