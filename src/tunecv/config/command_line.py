"""The command line before the parser: its units, ``--config`` values as YAML, the project CLI it names."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import yaml

from tunecv.config.classes import _lightning_package
from tunecv.config.schema import _DEFAULTS, _plain
from tunecv.errors import ConfigError

# libyaml's loader and emitter where PyYAML has them: the same safe constructors and representers, run in C
# (a tune reads and writes each trial's config as YAML several times; the Python ones took ~0.1 s a read)
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SafeDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """libyaml's safe emitter with the representers registered on ``yaml.SafeDumper`` (jsonargparse adds its
    ``Namespace`` there; ``CSafeDumper`` has its own table and would not see them)."""


def yaml_dump(data: Any, **kwargs: Any) -> str:
    """``yaml.safe_dump(data, **kwargs)``, with libyaml where it is there."""
    if _SafeDumper is not yaml.SafeDumper:
        _SafeDumper.yaml_representers = {**yaml.SafeDumper.yaml_representers}
        _SafeDumper.yaml_multi_representers = {**yaml.SafeDumper.yaml_multi_representers}
    return yaml.dump(data, Dumper=_SafeDumper, **kwargs)


def yaml_load(text: Any) -> Any:
    """``yaml_load(text)``, with libyaml where it is there."""
    return yaml.load(text, Loader=SAFE_LOADER)


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


def _read_config_value(value: str) -> Any:
    path = Path(value)
    try:
        text = path.read_text(encoding="utf-8") if "\n" not in value and path.is_file() else value
    except OSError:
        return None
    try:
        return yaml_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"`--config` must be valid YAML{where}; got {value!r}: "
                          f"{getattr(exc, 'problem', exc)}") from None


def _config_text(data: Mapping) -> str:
    if not data:
        return "{}"
    return yaml_dump(_plain(dict(data)), sort_keys=False)


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
            data = yaml_load(text)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError):
            continue
        if isinstance(data, Mapping) and "cli" in data:
            found = data["cli"] if isinstance(data["cli"], str) else None
    return found


_PL_CLI = "pytorch_lightning.cli.LightningCLI"


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
                data = yaml_load(text)
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
        data = yaml_load(value)
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
        data = yaml_load(text)
    except yaml.YAMLError:
        return  # the parser reports it, with its line
    valid = list(valid_keys) if valid_keys is not None else list(_DEFAULTS)
    unknown = [k for k in data if str(k) not in valid] if isinstance(data, Mapping) else []
    if unknown:
        raise ConfigError(f"unknown config key `{unknown[0]}` in {source}; valid top-level keys: {', '.join(valid)}")


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
            data = yaml_load(text)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError):
            continue
        if isinstance(data, Mapping) and isinstance(data.get("fit"), Mapping):
            flat = {k: v for k, v in data.items() if k not in _SUBCOMMANDS}
            out[i + 1] = _config_text({**flat, **data["fit"]})
    return out
