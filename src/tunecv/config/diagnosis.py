"""A failed parse as one line: the unit and key found by bisecting the input, the constraint from its type."""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Optional, Union

import yaml

from tunecv.config.classes import (
    _SECTION_BASES,
    _annotation,
    _lightning_package,
    _resolve_class,
    import_class,
    init_parameters,
)
from tunecv.config.command_line import _config_text, _read_config_value, _units, yaml_load
from tunecv.config.parser import build_parser
from tunecv.config.schema import _DEFAULTS, CLASS_SECTIONS, _config_hints, _dataclass_of, _plain
from tunecv.errors import ConfigError, Interrupted


def one_line(exc: BaseException) -> str:
    """An exception's whole message on one line (jsonargparse's reasons span several)."""
    text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
    return text or type(exc).__name__


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


def _yaml_value(text: str) -> Any:
    try:
        return yaml_load(text) if text != "" else ""
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
            import lightning as L  # lazy: heavy; importing tunecv.config stays light

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
