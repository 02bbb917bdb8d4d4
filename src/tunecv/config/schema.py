"""The config schema: the frozen dataclasses (:class:`Config`, its sections), every top-level key and default."""

from __future__ import annotations

import dataclasses
import functools
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

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


DEFAULT_TOTAL_FOLDS = 5  # split.total_folds and nested.total_folds: the one default fold count


@dataclass(frozen=True)
class SplitConfig:
    """How samples are split into test, train and validation sets."""

    test_split: TestSplit = "none"
    test_split_by: Optional[list[Union[float, int, str]]] = None
    fold_method: str = "kfold"  # a registered fold method (tunecv.folds) or a class path
    total_folds: int = DEFAULT_TOTAL_FOLDS
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
    total_folds: int = DEFAULT_TOTAL_FOLDS
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
        # A key inside a free-form section goes through the full parser and every copy is validated, both
        # built on this schema; the package has loaded them by the time a Config exists.
        # cycle: config.schema -> config.keys (set_key) -> config.parsing -> config.schema; and validation
        from tunecv.config import set_key, validate

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


def _dataclass_of(tp: Any) -> Optional[type]:
    if dataclasses.is_dataclass(tp):
        return tp  # type: ignore[return-value]
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg):
            return arg  # type: ignore[return-value]
    return None
