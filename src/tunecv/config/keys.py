"""Access by dotted key (``model.init_args.lr``): reading, setting and checking the keys of a config."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from tunecv.config.classes import import_class, init_parameters
from tunecv.config.parsing import config_from_dict
from tunecv.config.schema import _DEFAULTS, CLASS_SECTIONS, Config, _executor_sections
from tunecv.errors import ConfigError


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
        import lightning  # lazy: heavy; importing tunecv.config stays light

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
