"""The one config that drives ``train``, ``cv`` and ``tune``.

Configs are frozen dataclasses. They are read from YAML files (``--config``, repeatable, later wins),
composed (a value naming another YAML file is loaded in its place), interpolated by omegaconf
(``${oc.env:VAR,default}``), overridden with dotted keys (``--model.init_args.lr 0.01``) and validated
by jsonargparse against the types below, so that a wrong value is reported with its key.

This module is light: it imports neither torch nor lightning.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
import inspect
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from tunecv.errors import ConfigError, one_of

__all__ = [
    "CVConfig",
    "CheckpointConfig",
    "Config",
    "EarlyStoppingConfig",
    "LocalConfig",
    "LoggingConfig",
    "RayConfig",
    "SlurmConfig",
    "SplitConfig",
    "TuneConfig",
    "check_key",
    "config_from_args",
    "get_key",
    "load_config",
    "set_key",
]

TEST_SPLITS = ("none", "random", "region", "sample")
FOLD_METHODS = ("none", "kfold", "shuffle", "stratified", "region", "region-stratified")
MULTI_SCORE_STRATEGIES = ("arithmetic", "geometric", "harmonic", "min")
SAMPLERS = ("tpe", "random", "grid", "cmaes", "qmc", "gp", "nsga2")
PRUNERS = ("none", "median", "wilcoxon", "hyperband", "percentile", "successive_halving")
PARALLEL_STRATEGIES = ("cv-parallel", "tune-parallel")

# Sections given as free-form mappings (LightningCLI form); everything else is typed.
DICT_SECTIONS = ("model", "data", "trainer", "optimizer", "lr_scheduler")
# Top-level keys that win over the same keys under ``trainer:`` when set to a non-default value.
DEVICE_KEYS = ("accelerator", "strategy", "devices", "num_nodes")


@dataclass(frozen=True)
class SplitConfig:
    """How samples are split into test, train and validation sets."""

    test_split: Literal["none", "random", "region", "sample"] = "none"
    test_split_by: Optional[list[Union[float, int, str]]] = None
    fold_method: Literal["none", "kfold", "shuffle", "stratified", "region", "region-stratified"] = "kfold"
    total_folds: int = 5
    group_column: str = "region"
    stratify_column: Optional[str] = None


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Lightning ``EarlyStopping`` settings."""

    monitor: str = "val/loss"
    mode: Literal["min", "max"] = "min"
    patience: int = 5
    min_delta: float = 0.0


@dataclass(frozen=True)
class CheckpointConfig:
    """Lightning ``ModelCheckpoint`` settings (a ``last`` checkpoint is always kept for resuming)."""

    monitor: Optional[str] = "val/loss"
    mode: Literal["min", "max"] = "min"
    save_top_k: int = 1


@dataclass(frozen=True)
class LoggingConfig:
    """Where runs are logged. CSV metrics are always written; wandb only with a project."""

    wandb_project: Optional[str] = None
    wandb_entity: Optional[str] = None
    log_every_n_steps: int = 10


@dataclass(frozen=True)
class CVConfig:
    """Cross-validation settings."""

    n_folds: Optional[int] = None
    n_seeds: int = 3
    scoring_metric: list[str] = field(default_factory=lambda: ["val/loss:lower"])
    multi_score_strategy: Literal["arithmetic", "geometric", "harmonic", "min"] = "harmonic"


@dataclass(frozen=True)
class TuneConfig:
    """Hyperparameter-search settings."""

    search_space: Optional[str] = None
    n_trials: Union[int, Literal["grid"]] = 100
    sampler: Literal["tpe", "random", "grid", "cmaes", "qmc", "gp", "nsga2"] = "tpe"
    pruner: Literal["none", "median", "wilcoxon", "hyperband", "percentile", "successive_halving"] = "none"
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


@dataclass(frozen=True)
class LocalConfig:
    """Options of ``executor: local``: in this process, or the device pool of cv-parallel / tune-parallel.

    ``threads_per_worker``: CPU threads of each run (serial or in a pool worker); null lets tunecv choose
    the cores free for it when it starts (at least one).
    """

    start_method: Literal["forkserver", "spawn", "fork"] = "forkserver"
    threads_per_worker: Optional[int] = None


@dataclass(frozen=True)
class SlurmConfig:
    """Options of ``executor: slurm``: the resources and sbatch options of each job (see docs/scaling-out.md)."""

    partition: Optional[str] = None
    time: int = 60
    gpus_per_job: int = 0
    cpus_per_job: int = 1
    mem: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    max_jobs: int = 32
    max_num_timeout: int = 3
    signal_delay_s: int = 90
    setup: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    python: Optional[str] = None
    poll_interval: float = 1.0


@dataclass(frozen=True)
class RayConfig:
    """Options of ``executor: ray``: the Ray cluster and the resources of each run (see docs/scaling-out.md)."""

    address: str = "local"
    num_cpus: float = 1
    num_gpus: float = 0
    max_concurrent_runs: Optional[int] = None
    max_retries: int = 1
    runtime_env: Optional[dict] = None


@dataclass(frozen=True)
class Config:
    """Everything one command needs. See ``docs/`` for the meaning of each key."""

    name: Optional[str] = None
    artifact_dir: str = "artifacts"
    model: Optional[dict] = None
    data: Optional[dict] = None
    split: SplitConfig = field(default_factory=SplitConfig)
    trainer: dict = field(default_factory=dict)
    optimizer: Optional[Union[dict, str]] = None
    lr_scheduler: Optional[Union[dict, str]] = None
    accelerator: str = "auto"
    strategy: str = "auto"
    devices: list[Union[int, str]] = field(default_factory=lambda: ["auto"])
    num_nodes: int = 1
    runs_per_device: int = 1
    fold: int = 0
    seed: int = 42
    early_stopping: Optional[EarlyStoppingConfig] = field(default_factory=EarlyStoppingConfig)
    checkpoint: Optional[CheckpointConfig] = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    cv: CVConfig = field(default_factory=CVConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    executor: str = "local"
    local: LocalConfig = field(default_factory=LocalConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    ray: RayConfig = field(default_factory=RayConfig)

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

    def to_dict(self) -> dict:
        """The config as plain nested dicts and lists (what ``config.yaml`` holds)."""
        return _plain(dataclasses.asdict(self))

    def replace(self, **changes: Any) -> Config:
        """A changed copy (``dataclasses.replace``), validated again.

        Keys may be dotted (``split.fold_method``); a key inside a free-form section (``model.init_args.lr``)
        goes through the full parser, any other through ``dataclasses.replace``.
        """
        cfg: Config = self
        for key, value in changes.items():
            top, _, rest = key.partition(".")
            section = getattr(cfg, top, None) if top in _DEFAULTS else None
            if not rest and top in _DEFAULTS and top not in DICT_SECTIONS and not dataclasses.is_dataclass(section):
                cfg = dataclasses.replace(cfg, **{top: value})
            elif rest and "." not in rest and dataclasses.is_dataclass(section) and \
                    rest in {f.name for f in dataclasses.fields(section)}:
                cfg = dataclasses.replace(cfg, **{top: dataclasses.replace(section, **{rest: value})})
            else:
                cfg = set_key(cfg, key, value)
        validate(cfg)
        return cfg


_DEFAULTS = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
             for f in dataclasses.fields(Config)}


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# -- parsing ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def build_parser(prog: str = "tunecv", description: str | None = None) -> Any:
    """A jsonargparse parser with every config key, used for validation and ``--help``."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog=prog, description=description, exit_on_error=False,
                            default_meta=False)
    for f in dataclasses.fields(Config):
        default = _DEFAULTS[f.name]
        help_text = _KEY_HELP.get(f.name, "")
        parser.add_argument(f"--{f.name}", type=_resolved_type(f.name), default=default, help=help_text)
    return parser


def _resolved_type(name: str) -> Any:
    """The type of a :class:`Config` field (its annotation, resolved)."""
    return _config_hints()[name]


@functools.lru_cache(maxsize=1)
def _config_hints() -> dict[str, Any]:
    import typing

    return typing.get_type_hints(Config)


_KEY_HELP = {
    "name": "name of the called level; generated when null",
    "artifact_dir": "root folder of every artifact",
    "model": "a LightningModule: {class_path, init_args}",
    "data": "a tunecv.data.SplitDataModule (or a LightningDataModule for train without folds)",
    "split": "test split and fold method",
    "trainer": "any other lightning.Trainer argument",
    "optimizer": "LightningCLI-style optimizer for models that leave configure_optimizers to the config",
    "lr_scheduler": "LightningCLI-style learning-rate scheduler",
    "accelerator": "forwarded to the Trainer (cpu, gpu, mps, auto)",
    "strategy": "any Lightning strategy, or cv-parallel / tune-parallel",
    "devices": "always a list, e.g. [0, 2, 5, 6]; with cpu and cv-parallel: worker slots",
    "num_nodes": "nodes of one run (Lightning multi-node DDP)",
    "runs_per_device": "with cv-parallel / tune-parallel: how many runs share one device",
    "fold": "train only: the fold to train (cv and tune set it)",
    "seed": "train only: the seed (cv and tune set it)",
    "early_stopping": "EarlyStopping settings; null disables",
    "checkpoint": "ModelCheckpoint settings; null keeps only the last checkpoint",
    "logging": "wandb project/entity and log interval",
    "cv": "cross-validation settings",
    "tune": "hyperparameter-search settings",
    "executor": "where runs execute: local (this machine), slurm, ... (options in the section of that name)",
    "local": "options of executor local (the device pool)",
    "slurm": "options of executor slurm: resources and sbatch options of each job",
    "ray": "options of executor ray: the Ray cluster (address) and the CPUs / GPUs of each run",
}


class YamlLoader(yaml.SafeLoader):
    """Safe YAML that also reads ``1e-3`` as a float (YAML 1.1 alone wants ``1.0e-3``)."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def yaml_load(text: str) -> Any:
    """Parse YAML with :class:`YamlLoader`."""
    return yaml.load(text, Loader=YamlLoader)


def _is_yaml_path(value: Any) -> bool:
    return isinstance(value, str) and value.endswith((".yaml", ".yml")) and "\n" not in value


def _read_yaml(path: Path, key: str) -> Any:
    if not path.is_file():
        raise ConfigError(f"`{key}` must name an existing YAML file; got {str(path)!r}")
    try:
        return yaml_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"`{key}` must be valid YAML{where}; got {str(path)!r}: "
                          f"{getattr(exc, 'problem', exc)}") from None


def _compose(obj: Any, base: Path, key: str, depth: int = 0) -> Any:
    """Replace string values that name an existing YAML file with that file's content."""
    if depth > 10:
        raise ConfigError(f"`{key}` composes YAML files more than 10 levels deep (a cycle?)")
    if isinstance(obj, Mapping):
        return {k: _compose(v, base, f"{key}.{k}" if key else str(k), depth) for k, v in obj.items()}
    if _is_yaml_path(obj) and not key.endswith(("search_space", "storage")):
        path = Path(obj) if Path(obj).is_absolute() else base / obj
        if not path.is_file() and (Path.cwd() / obj).is_file():
            path = Path.cwd() / obj
        if path.is_file():
            return _compose(_read_yaml(path, key), path.parent, key, depth + 1)
    return obj


def deep_merge(base: dict, other: Mapping) -> dict:
    """Merge ``other`` into a copy of ``base``; mappings merge key by key, anything else replaces.

    A ``class_path`` that changes drops the old ``init_args`` (as in LightningCLI).
    """
    out = copy.deepcopy(base)
    for k, v in other.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            old = out[k]
            if "class_path" in v and old.get("class_path") not in (None, v["class_path"]):
                out[k] = copy.deepcopy(dict(v))
            else:
                out[k] = deep_merge(dict(old), v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _interpolate(obj: dict) -> dict:
    text = yaml.safe_dump(obj)
    if "${" not in text:
        return obj
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        resolved = OmegaConf.to_container(OmegaConf.create(obj), resolve=True)
    except OmegaConfBaseException as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"config interpolation failed: {first}") from None
    return _retype(obj, resolved)  # type: ignore[return-value]


def _retype(original: Any, resolved: Any) -> Any:
    """Read an interpolated string as YAML (``${oc.env:EPOCHS}`` → int), as if written in the file."""
    if isinstance(original, Mapping) and isinstance(resolved, Mapping):
        return {k: _retype(original.get(k), v) for k, v in resolved.items()}
    if isinstance(original, list) and isinstance(resolved, list):
        return [_retype(o, r) for o, r in zip(original, resolved, strict=False)]
    if isinstance(original, str) and "${" in original and isinstance(resolved, str):
        return parse_value(resolved)
    return resolved


def parse_value(text: str) -> Any:
    """A command-line value read as YAML (``0.1`` → float, ``[0, 1]`` → list, ``null`` → None)."""
    try:
        return yaml_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


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


def load_config(
    *configs: Union[str, os.PathLike, Mapping],
    overrides: Optional[Mapping[str, Any]] = None,
) -> Config:
    """Read, compose, merge, interpolate and validate a config.

    Args:
        *configs: YAML file paths or mappings, later ones win.
        overrides: dotted keys and values applied last (``{"model.init_args.lr": 0.01}``).

    Returns:
        The validated, frozen config.

    Raises:
        ConfigError: a key is unknown or a value breaks its constraint.
    """
    merged: dict = {}
    for src in configs:
        if isinstance(src, Mapping):
            layer = _compose(dict(src), Path.cwd(), "")
        else:
            path = Path(src)
            layer = _read_yaml(path, "--config")
            if not isinstance(layer, Mapping):
                raise ConfigError(f"`--config` must hold a mapping of config keys; got {type(layer).__name__} "
                                  f"in {str(path)!r}")
            layer = _compose(layer, path.parent, "")
        merged = deep_merge(merged, layer)
    for key, value in (overrides or {}).items():
        if isinstance(value, Mapping):
            value = _compose(dict(value), Path.cwd(), key)
        elif _is_yaml_path(value) and "." not in key and key in DICT_SECTIONS:
            value = _compose({key: value}, Path.cwd(), "")[key]
        existing = get_in(merged, key)
        if isinstance(value, Mapping) and isinstance(existing, Mapping):
            value = deep_merge(dict(existing), value)
        set_in(merged, key, value)
    merged = _interpolate(merged)
    return config_from_dict(merged)


def get_in(obj: Any, dotted: str, default: Any = None) -> Any:
    cur = obj
    for part in dotted.split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        else:
            return default
    return cur


def _nice_expected(text: str) -> str:
    """``Expected a typing.Literal['a', 'b']`` → ``must be one of a, b``; ``<class 'list'>`` → ``list``."""
    m = re.search(r"Literal\[(.*)\]", text)
    if m:
        return "must be one of " + ", ".join(v.strip().strip("'\"") for v in m.group(1).split(","))
    m = re.search(r"<class '([\w.]+)'>", text)
    if m:
        return f"must be of type {m.group(1)}"
    return text


def _format_parser_error(exc: BaseException) -> str:
    """Turn a jsonargparse error into one line naming key, constraint and value."""
    text = str(exc).strip()
    m = re.search(r"Group '([\w.]+)' does not accept option '([\w.]+)'", text)
    if m:
        section = _DEFAULTS.get(m.group(1))
        valid = ", ".join(f.name for f in dataclasses.fields(section)) if dataclasses.is_dataclass(section) else ""
        return f"unknown config key `{m.group(1)}.{m.group(2)}`; valid keys of `{m.group(1)}`: {valid}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "invalid config"
    head = lines[0]
    if head.startswith('Parser key "'):
        key = head[len('Parser key "'):].split('"')[0]
        detail = [ln for ln in lines[1:] if not ln.startswith(("Subtypes:", "Errors:", "Given value type"))]
        expected = [ln.lstrip("- ") for ln in detail if ln.lstrip("- ").startswith("Expected")]
        given = [ln for ln in detail if ln.startswith("Given value:")]
        got = given[0].split(":", 1)[1].strip() if given else ""
        if expected:
            exp = " or ".join(dict.fromkeys(_nice_expected(e.split(". Got value")[0]) for e in expected))
            if not got and ". Got value:" in expected[0]:
                got = expected[0].split(". Got value:", 1)[1].strip()
            return f"`{key}`: {exp}; got {got!r}" if got else f"`{key}`: {exp}"
        return f"`{key}`: " + " ".join(detail)
    if "not expected" in head or "unrecognized" in head.lower():
        return head.replace("Key ", "unknown config key ").rstrip(".") + (
            f" (valid top-level keys: {', '.join(f.name for f in dataclasses.fields(Config))})")
    return " ".join(lines[:3])


def config_from_dict(data: Mapping) -> Config:
    """Validate a plain mapping against the config types and return the frozen :class:`Config`."""
    parser = build_parser()
    unknown = [k for k in data if k not in _DEFAULTS]
    if unknown:
        raise ConfigError(f"unknown config key `{unknown[0]}`; valid top-level keys: "
                          f"{', '.join(_DEFAULTS)}")
    try:
        ns = parser.parse_object(dict(data))
        obj = parser.instantiate(ns) if hasattr(parser, "instantiate") else parser.instantiate_classes(ns)
    except (Exception, SystemExit) as exc:  # jsonargparse raises ArgumentError / ParserError
        raise ConfigError(_format_parser_error(exc)) from None
    kwargs = {}
    for f in dataclasses.fields(Config):
        value = obj.get(f.name) if hasattr(obj, "get") else getattr(obj, f.name)
        if hasattr(value, "as_dict"):
            value = value.as_dict()
        kwargs[f.name] = value
    cfg = Config(**kwargs)
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Checks that types alone cannot express (ranges, combinations)."""
    from tunecv import naming

    if cfg.name is not None:
        naming.validate_name(cfg.name, key="name")
    if not isinstance(cfg.devices, list) or not cfg.devices:
        raise ConfigError(f"`devices` must be a non-empty list such as [0] or [0, 2, 5, 6]; got {cfg.devices!r}")
    if cfg.num_nodes < 1:
        raise ConfigError(f"`num_nodes` must be >= 1; got {cfg.num_nodes}")
    if cfg.runs_per_device < 1:
        raise ConfigError(f"`runs_per_device` must be >= 1; got {cfg.runs_per_device}")
    _validate_executor(cfg)
    sp = cfg.split
    if sp.fold_method != "none" and sp.total_folds < 2:
        raise ConfigError(f"`split.total_folds` must be >= 2 for fold_method {sp.fold_method!r}; "
                          f"got {sp.total_folds}")
    if sp.fold_method == "none" and sp.total_folds < 1:
        raise ConfigError(f"`split.total_folds` must be >= 1; got {sp.total_folds}")
    n_folds = sp.total_folds if sp.fold_method != "none" else 1
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
    if not cfg.tune.heartbeat_grace > 0:
        raise ConfigError(f"`tune.heartbeat_grace` must be > 0 (seconds); got {cfg.tune.heartbeat_grace}")
    if cfg.tune.worker_id is not None and not str(cfg.tune.worker_id).strip():
        raise ConfigError(f"`tune.worker_id` must be a non-empty string or null; got {cfg.tune.worker_id!r}")
    if isinstance(cfg.tune.n_trials, int) and cfg.tune.n_trials < 1:
        raise ConfigError(f"`tune.n_trials` must be >= 1 or 'grid'; got {cfg.tune.n_trials}")
    for sec in ("model", "data"):
        spec = getattr(cfg, sec)
        if spec is not None and not isinstance(spec.get("class_path"), str):
            raise ConfigError(f"`{sec}` must have a `class_path` string (and optional `init_args`); "
                              f"got keys {sorted(spec)}")


def _validate_executor(cfg: Config) -> None:
    from tunecv.executors._registry import check_executor_name

    check_executor_name(cfg.executor)
    if cfg.local.threads_per_worker is not None and cfg.local.threads_per_worker < 1:
        raise ConfigError(f"`local.threads_per_worker` must be >= 1 or null; got {cfg.local.threads_per_worker}")
    sl = cfg.slurm
    for key in ("time", "cpus_per_job", "max_jobs"):
        if getattr(sl, key) < 1:
            raise ConfigError(f"`slurm.{key}` must be >= 1; got {getattr(sl, key)}")
    for key in ("gpus_per_job", "max_num_timeout", "signal_delay_s"):
        if getattr(sl, key) < 0:
            raise ConfigError(f"`slurm.{key}` must be >= 0; got {getattr(sl, key)}")
    if not sl.poll_interval > 0:
        raise ConfigError(f"`slurm.poll_interval` must be > 0 seconds; got {sl.poll_interval}")
    _validate_ray(cfg)


def _validate_ray(cfg: Config) -> None:
    ry = cfg.ray
    for key in ("num_cpus", "num_gpus"):
        value = getattr(ry, key)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"`ray.{key}` must be a number >= 0 (a fraction is allowed); got {value!r}")
    if ry.num_cpus == 0 and ry.num_gpus == 0:
        raise ConfigError("`ray.num_cpus` and `ray.num_gpus` must not both be 0: each run asks Ray for CPUs or GPUs; "
                          "got 0 and 0")
    if ry.max_retries < 0:
        raise ConfigError(f"`ray.max_retries` must be >= 0; got {ry.max_retries}")
    if ry.max_concurrent_runs is not None and ry.max_concurrent_runs < 1:
        raise ConfigError(f"`ray.max_concurrent_runs` must be >= 1 or null; got {ry.max_concurrent_runs}")
    if not ry.address.strip():
        raise ConfigError("`ray.address` must be local, auto, HOST:PORT or ray://HOST:PORT; got ''")
    if cfg.executor != "ray":
        return
    if cfg.runs_per_device > 1 and ry.num_gpus > 1:
        raise ConfigError(f"`ray.num_gpus` must be at most 1 when `runs_per_device` ({cfg.runs_per_device}) packs "
                          f"several runs on one GPU; got {ry.num_gpus}")
    accelerator = str(cfg.device_setting("accelerator")).lower()
    if accelerator in ("gpu", "cuda") and ry.num_gpus == 0:
        raise ConfigError(f"`ray.num_gpus` must be > 0 with accelerator {accelerator!r}: Ray gives a run only the GPUs "
                          f"it asks for; got 0")


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
        if dataclasses.is_dataclass(cur) and not isinstance(cur, type):
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
        raise ConfigError(f"`{key}` must be an importable dotted path such as my_pkg.models.Net; got {path!r}")
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


# -- command line ----------------------------------------------------------------------------------

def split_argv(argv: Sequence[str]) -> tuple[list[str], dict[str, Any], list[str]]:
    """Split command-line words into config files, dotted overrides and the rest (flags).

    Returns:
        ``(config_files, overrides, other)``.
    """
    configs: list[str] = []
    overrides: dict[str, Any] = {}
    other: list[str] = []
    i = 0
    words = list(argv)
    while i < len(words):
        word = words[i]
        if word == "--config" or word.startswith("--config="):
            if "=" in word:
                configs.append(word.split("=", 1)[1])
            else:
                if i + 1 >= len(words):
                    raise ConfigError("`--config` needs a YAML file path")
                configs.append(words[i + 1])
                i += 1
        elif word.startswith("--") and word[2:].split("=", 1)[0].split(".")[0] in _DEFAULTS:
            key, eq, value = word[2:].partition("=")
            if not eq:
                if i + 1 >= len(words) or (words[i + 1].startswith("--") and words[i + 1] != "--"):
                    raise ConfigError(f"`--{key}` needs a value")
                value = words[i + 1]
                i += 1
            overrides[key] = parse_value(value)
        else:
            other.append(word)
        i += 1
    return configs, overrides, other


def config_from_args(configs: Iterable[str], overrides: Mapping[str, Any]) -> Config:
    """:func:`load_config` for command-line input."""
    return load_config(*configs, overrides=overrides)


def dump_yaml(cfg: Config | Mapping) -> str:
    """The config as YAML, keys in declaration order."""
    data = cfg.to_dict() if isinstance(cfg, Config) else dict(cfg)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
