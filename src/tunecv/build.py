"""Object construction from a config: the model, the data module, callbacks, loggers and optimizers.

Part of the config layer (below ``train``): ``cv`` and ``tune`` build objects through this module to
surface every config error before anything is written, and ``train`` builds its run from it. Objects are
made the way LightningCLI makes them: ``{class_path, init_args}`` specs instantiated by jsonargparse, and
the ``optimizer:`` / ``lr_scheduler:`` sections turned into ``configure_optimizers`` by
``LightningCLI.configure_optimizers``.
"""

from __future__ import annotations

import functools
import logging
import os
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional, Union

from tunecv import user_cli
from tunecv.config import (
    Config,
    _annotation,
    _describe_type,
    _resolve_class,
    add_tunecv_keys,
    build_parser,
    init_parameters,
    load_config,
    one_line,
)
from tunecv.errors import ConfigError, Interrupted, TunecvError
from tunecv.placement import check_devices
from tunecv.user_cli import BuiltRun

if TYPE_CHECKING:
    from tunecv.executors import Executor

__all__ = ["BuiltRun", "as_config", "attach_optimizers", "build_objects", "build_run", "instantiate",
           "is_lightning_user_error", "validate_objects"]

log = logging.getLogger(__name__)


def as_config(config: Union[Config, Mapping, str, os.PathLike]) -> Config:
    """Accept a :class:`Config`, a mapping or a YAML path."""
    if isinstance(config, Config):
        return config
    return load_config(config)


def is_lightning_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of Lightning's errors about its configuration (``MisconfigurationException``)."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    return isinstance(exc, MisconfigurationException)


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def instantiate(spec: Any, base: type, key: str) -> Any:
    """Instantiate ``{class_path, init_args}`` (nested specs included) with jsonargparse."""
    from jsonargparse import ArgumentParser

    if isinstance(spec, str):
        spec = {"class_path": spec}
    if not isinstance(spec, Mapping) or "class_path" not in spec:
        raise ConfigError(f"`{key}` must be {{class_path: ..., init_args: {{...}}}}; got {spec!r}")
    extra = {k: v for k, v in spec.items() if k not in ("class_path", "init_args", "dict_kwargs")}
    if extra:  # LightningCLI's shorthand inside a free-form mapping: {class_path, lr: 0.1} sets init_args.lr
        spec = {"class_path": spec["class_path"], "init_args": {**dict(spec.get("init_args") or {}), **extra}}
    cls = _resolve_class(spec["class_path"], key.split(".")[0].split("[")[0])
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"`{key}.class_path` must name a subclass of {base.__module__}.{base.__qualname__}; "
                          f"got {spec['class_path']!r}")
    spec = {**spec, "class_path": f"{cls.__module__}.{cls.__qualname__}"}
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--obj", type=cls)
    try:
        ns = parser.parse_object({"obj": dict(spec)})
    except Interrupted:  # Ctrl-C or SIGTERM while parsing: the command stops, it is no bad config
        raise
    except (Exception, SystemExit):
        _blame_init_args(cls, dict(spec.get("init_args") or {}), key)
        raise ConfigError(f"`{key}` ({spec['class_path']}) has invalid init_args: {spec.get('init_args')!r}") from None
    try:
        init = parser.instantiate_classes(ns)
    except TunecvError:
        raise
    except Exception as exc:
        raise ConfigError(f"`{key}` ({spec['class_path']}) cannot be built: {type(exc).__name__}: "
                          f"{_first_line(exc)}") from None
    return init.obj


def _blame_init_args(cls: type, init_args: dict, key: str) -> None:
    """Raise the one-line error of the first init argument that ``cls`` rejects (if one alone does)."""
    params = init_parameters(cls)
    for arg, value in init_args.items():
        if params is not None and arg not in params:
            raise ConfigError(f"unknown config key `{key}.init_args.{arg}`: {cls.__module__}.{cls.__qualname__} "
                              f"takes no argument {arg!r}; valid: {', '.join(sorted(params))}")
        from jsonargparse import ArgumentParser

        probe = ArgumentParser(exit_on_error=False)
        probe.add_argument("--obj", type=cls)
        try:
            probe.parse_object({"obj": {"class_path": f"{cls.__module__}.{cls.__qualname__}",
                                        "init_args": {arg: value}}})
        except Interrupted:  # Ctrl-C or SIGTERM while parsing: the command stops, it is no bad config
            raise
        except (Exception, SystemExit):
            tp = _annotation(cls, arg)
            raise ConfigError(f"`{key}.init_args.{arg}` must be {_describe_type(tp)}; got {value!r}") from None


def _spec(spec: Any) -> dict:
    return {"class_path": spec} if isinstance(spec, str) else dict(spec)


def attach_optimizers(model: Any, optimizer: Any, lr_scheduler: Any) -> None:
    """LightningCLI's ``optimizer:`` / ``lr_scheduler:`` sections: replace ``configure_optimizers``.

    The optimizer and scheduler are built as LightningCLI builds them, and returned in its format
    (``LightningCLI.configure_optimizers``: a ``lightning.pytorch.cli.ReduceLROnPlateau`` brings its
    ``monitor``).
    """
    if optimizer is None:
        if lr_scheduler is not None:
            raise ConfigError("`lr_scheduler` needs an `optimizer` section too (LightningCLI ignores it without one)")
        return
    from lightning.pytorch.cli import LightningCLI

    opt_spec = _spec(optimizer)
    opt_cls = _resolve_class(opt_spec["class_path"], "optimizer")
    opt_args = dict(opt_spec.get("init_args") or {})
    sched_cls, sched_args = None, {}
    if lr_scheduler is not None:
        sched_spec = _spec(lr_scheduler)
        sched_cls = _resolve_class(sched_spec["class_path"], "lr_scheduler")
        sched_args = dict(sched_spec.get("init_args") or {})

    def configure_optimizers(self: Any) -> Any:
        opt = opt_cls(self.parameters(), **opt_args)
        sched = sched_cls(opt, **sched_args) if sched_cls is not None else None
        return LightningCLI.configure_optimizers(self, opt, sched)

    functools.update_wrapper(configure_optimizers, LightningCLI.configure_optimizers)  # for is_overridden
    model.configure_optimizers = types.MethodType(configure_optimizers, model)


def build_objects(cfg: Config, *, folds: bool = False) -> tuple[Any, Any]:
    """The model and data module of a config, with the split of ``cfg.fold`` / ``cfg.seed`` prepared.

    Raises :class:`ConfigError` / :class:`DataError` for anything wrong, before any folder is made.
    """
    built = build_run(cfg, folds=folds, trainer_objects=False)
    return built.model, built.data


def build_run(cfg: Config, *, folds: bool = False, trainer_objects: bool = True) -> BuiltRun:
    """Everything one run is built from: model, data module, and the user's callbacks, loggers and
    other Trainer arguments (each instantiated afresh, as LightningCLI instantiates them).

    With ``cli`` set, the project's own LightningCLI builds them (its hooks, links and defaults apply).
    With ``folds``, a plain LightningDataModule is cut into ``cfg.fold`` of ``split`` (a cv's run).
    """
    if cfg.cli is not None:
        check_devices(cfg)
        try:
            built = user_cli.build_run(cfg.cli, cfg.to_dict(), add_tunecv_keys)
        except TunecvError:
            raise
        except Interrupted:
            raise
        except (Exception, SystemExit) as exc:
            raise ConfigError(f"the project's CLI ({cfg.cli}) cannot build the run: {type(exc).__name__}: "
                              f"{one_line(exc)}") from None
        if built.model is None:
            raise ConfigError(f"`model` must be set: the project's CLI ({cfg.cli}) built no model")
    else:
        model, data = _build_model_data(cfg)
        built = BuiltRun(model=model, data=data)
        if trainer_objects:
            built = _with_trainer_objects(built, cfg)
    built.data = _prepare_data(cfg, built.data, folds=folds)
    return built


def _with_trainer_objects(built: BuiltRun, cfg: Config) -> BuiltRun:
    """``trainer.callbacks``, ``trainer.logger`` and ``trainer.plugins`` instantiated as LightningCLI does:
    parsed against ``Trainer``'s own signature, then ``instantiate_classes``."""
    section = {k: v for k, v in (cfg.trainer or {}).items() if k in ("callbacks", "logger", "plugins")}
    if not section:
        return built
    parser = build_parser()
    try:
        ns = parser.parse_object({"trainer": section})
        trainer = parser.instantiate_classes(ns).trainer
    except Interrupted:
        raise
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"`trainer` callbacks / logger / plugins cannot be built: {one_line(exc)}") from None
    callbacks = trainer.get("callbacks")
    built.callbacks = [] if callbacks is None else (list(callbacks) if isinstance(callbacks, list) else [callbacks])
    logger = trainer.get("logger")
    if logger is False:
        built.trainer["logger"] = False
    elif logger not in (None, True):
        built.loggers = list(logger) if isinstance(logger, list) else [logger]
    if trainer.get("plugins") is not None:
        built.trainer["plugins"] = trainer["plugins"]
    return built


def _prepare_data(cfg: Config, data: Any, *, folds: bool) -> Any:
    """A SplitDataModule gets its split; under a cv a plain LightningDataModule is cut into folds."""
    from tunecv.data import SplitDataModule  # lazy: lightning and torch, only once a data module is prepared

    if isinstance(data, SplitDataModule):
        data.configure_split(cfg.split, cfg.fold, cfg.seed)
        data.prepare_split()
        return data
    if folds and data is not None:
        from tunecv import fold_data  # lazy: lightning and torch, for a plain LightningDataModule

        data = fold_data.for_run(data, cfg.split, cfg.fold, cfg.seed)
        if isinstance(data, fold_data.FoldedBase):
            data.prepare_fold()  # data errors (labels, groups, iterable datasets) before any run starts
    return data


def _build_model_data(cfg: Config) -> tuple[Any, Any]:
    import lightning as L

    if cfg.model is None:
        raise ConfigError("`model` must be set: {class_path: my_pkg.MyLightningModule, init_args: {...}}")
    if cfg.data is None:
        raise ConfigError("`data` must be set: {class_path: my_pkg.MyDataModule, init_args: {...}}")
    check_devices(cfg)
    try:
        model = instantiate(cfg.model, L.LightningModule, "model")
        data = instantiate(cfg.data, L.LightningDataModule, "data")
    except TunecvError:
        raise
    except Exception as exc:
        if is_lightning_user_error(exc):
            raise ConfigError(f"`model`/`data`: {_first_line(exc)}") from None
        raise
    attach_optimizers(model, cfg.optimizer, cfg.lr_scheduler)
    return model, data


# -- before the runs of a cv or a tune ----------------------------------------------------------------------

def validate_objects(cfg: Config, executor: Optional[Executor] = None) -> None:
    """Build the model and data of ``cfg`` once, so that every config or data error surfaces first.

    On an executor with ``validate_in_job`` (a local device pool) this is its first job: its worker starts
    from the fork server that imported torch, lightning and the model's module, so this process (the
    driver) never imports them itself, and a short cv-parallel pays those imports once instead of twice.
    """
    if executor is not None and executor.validate_in_job:
        executor.submit(_build_objects, cfg).result()
    else:
        _build_objects(cfg)


def _build_objects(cfg: Config) -> None:
    """Job body: build the model and data of ``cfg`` as a cv's first run would (raises what a bad config or
    data raises)."""
    _, data = build_objects(cfg, folds=True)
    if data is None:
        raise ConfigError("`data` must be set for cv and tune: a LightningDataModule ({class_path: ..., "
                          "init_args: {...}}), whose fit data tunecv cuts into folds")
