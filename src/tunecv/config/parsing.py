"""Command line, files or mappings into a validated config: ``precheck``, ``parse_command``, ``load_config``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from tunecv import user_cli
from tunecv.config.command_line import (
    _check_utf8,
    _config_text,
    _find_cli,
    _named_cli,
    _read_config_value,
    _units,
    _unwrap_subcommands,
    yaml_dump,
    yaml_load,
)
from tunecv.config.diagnosis import _diagnose, one_line
from tunecv.config.parser import _trainer_defaults, add_tunecv_keys, build_parser
from tunecv.config.schema import (
    _DEFAULTS,
    DICT_SECTIONS,
    FIT_KEYS,
    FLAGS,
    Config,
    _config_hints,
    _dataclass_of,
    _make_config,
    _plain,
    config_keys,
)
from tunecv.config.validation import validate
from tunecv.errors import ConfigError, Interrupted


@dataclass(frozen=True)
class ParsedCommand:
    """What one ``tunecv train|cv|tune ...`` command line says: the config and the command flags."""

    config: Config
    flags: frozenset[str] = frozenset()


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
            data = yaml_load(words[i + 1]) or {}
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


def _parse(words: Sequence[str], prog: str = "tunecv") -> Config:
    cli = _find_cli(words)
    if cli is None:
        _check_utf8(words)
        parser = build_parser(prog=prog) if prog != "tunecv" else build_parser()
    else:
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


def _from_namespace(ns: Any, cli_parser: Any = None, cli: Optional[str] = None) -> Config:
    """The :class:`Config` of a parsed namespace (``trainer`` keeps only what differs from its defaults).

    With a project CLI's parser, the config is what that parser dumps (link targets left out: they are
    computed again at every parse), and the keys the project adds are kept in ``extra``.
    """
    extra: dict[str, Any] = {}
    if cli_parser is not None:
        data = yaml_load(cli_parser.dump(ns, skip_none=False, skip_link_targets=True, format="yaml"))
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


def dump_yaml(cfg: Config | Mapping) -> str:
    """The config as YAML, keys in declaration order."""
    data = cfg.to_dict() if isinstance(cfg, Config) else dict(cfg)
    return yaml_dump(data, sort_keys=False, default_flow_style=None, width=100)
