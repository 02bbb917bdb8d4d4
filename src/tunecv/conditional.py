"""Conditional search spaces: choices over classes, each with its own arguments, and ``when:`` entries.

A search space becomes conditional when one of its entries is a choice whose options are classes
(mappings of ``class_path`` and ``init_args``) or carries a ``when:``::

    hyperparameters:
      optimizer:                        # the implicit form: a list of classes
        - class_path: torch.optim.SGD
          init_args:
            lr: {distribution: loguniform, low: 1.0e-3, high: 0.3}
            momentum: {low: 0.5, high: 0.99}
          also:                         # other config keys, set only when this option is chosen
            lr_scheduler: [{class_path: torch.optim.lr_scheduler.StepLR, init_args: {step_size: [2, 4]}}]
        - class_path: torch.optim.AdamW
          init_args: {lr: {distribution: loguniform, low: 1.0e-4, high: 1.0e-2}, weight_decay: [0.0, 0.01]}
      model.init_args.dropout: {low: 0.0, high: 0.5, when: {model.class_path: my.Net}}

Options nest to any depth: an ``init_args`` value may be a choice of classes again (or one class, a
mapping with ``class_path``). Every parameter is suggested to Optuna (define-by-run) only where it is
active, under a name that says its path: ``optimizer.class_path`` for the class,
``optimizer[SGD].init_args.momentum`` for an argument of one option (the label is the class's own name,
its full path when two options share one), ``optimizer[SGD].lr_scheduler.class_path`` for a key under
``also``. A ``when:`` entry keeps its config key as its name; ``when: {NAME: VALUE}`` (or a list of values)
makes it active only when the parameter NAME (declared before it) took one of them.

A tune records per trial every name of the space: the value where active, ``None`` where not (the user
attr ``config_values``, the tune table's columns, the report). :func:`walk` turns those *flat values*
into config values.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

from tunecv.config import _resolve_class
from tunecv.errors import ConfigError, SearchSpaceError

__all__ = ["ClassChoice", "Leaf", "Option", "When", "is_conditional", "parse_tree", "walk"]

#: what ``get`` returns for a parameter whose value is not known (the walk stops there)
UNKNOWN = object()
_OPTION_KEYS = ("class_path", "init_args", "also")


@dataclass(frozen=True)
class When:
    """Active only when the parameter ``name`` took one of ``values``."""

    name: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Leaf:
    """One entry (a :class:`~tunecv.search_space.Param`, named by its path), maybe conditional."""

    param: Any
    when: Optional[When] = None


@dataclass(frozen=True)
class Option:
    """One class of a :class:`ClassChoice`: its arguments and the other config keys it brings."""

    class_path: str
    label: str
    init_args: dict[str, Node]
    also: dict[str, Node]


@dataclass(frozen=True)
class ClassChoice:
    """A choice over classes. ``param`` is the categorical ``{name}.class_path``; ``section`` the top-level
    config key (short class names of ``optimizer`` / ``lr_scheduler`` resolve as in LightningCLI)."""

    name: str
    param: Any
    options: tuple[Option, ...]
    section: str
    when: Optional[When] = None


Node = Union[Leaf, ClassChoice]


def _is_class_mapping(v: Any) -> bool:
    return isinstance(v, Mapping) and "class_path" in v


def _class_options(raw: Any) -> Optional[list[Any]]:
    """The options when ``raw`` is a choice over classes (implicit list or explicit choice), else None."""
    if isinstance(raw, list) and raw and any(_is_class_mapping(c) for c in raw):
        return raw
    if isinstance(raw, Mapping) and isinstance(raw.get("choices"), list) and any(
            _is_class_mapping(c) for c in raw["choices"]):
        return raw["choices"]
    return None


def is_conditional(raw: Any) -> bool:
    """Whether a raw top-level entry makes the space conditional."""
    return _class_options(raw) is not None or (isinstance(raw, Mapping) and "when" in raw)


class _Parser:
    def __init__(self, source: str, parse_entry: Callable[[str, Any, str], Any]) -> None:
        self.source, self.parse_entry = source, parse_entry
        self.params: dict[str, Any] = {}

    def fail(self, name: str, msg: str) -> SearchSpaceError:
        return SearchSpaceError(f"{self.source}: `{name}`: {msg}")

    def add(self, param: Any) -> Any:
        if param.key in self.params:
            raise self.fail(param.key, "is given twice")
        self.params[param.key] = param
        return param

    def when(self, name: str, raw: Any) -> Optional[When]:
        if raw is None:
            return None
        if not (isinstance(raw, Mapping) and len(raw) == 1):
            raise self.fail(name, f"`when` must be a mapping of one earlier parameter to a value or a list of "
                                  f"values, such as {{optimizer.class_path: torch.optim.SGD}}; got {raw!r}")
        (ref, values), = raw.items()
        if ref not in self.params:
            raise self.fail(name, f"`when` names {ref!r}, which is not a parameter declared before it; "
                                  f"declared: {', '.join(self.params) or 'none'}")
        values = tuple(values) if isinstance(values, list) else (values,)
        for v in values:
            problem = self.params[ref].check_value(v)
            if problem:
                raise self.fail(name, f"`when`: `{ref}` {problem}")
        return When(ref, values)

    def node(self, name: str, raw: Any, section: str) -> Node:
        """The node of one entry whose parameters are named from ``name``."""
        when_raw = raw.get("when") if isinstance(raw, Mapping) else None
        if isinstance(raw, Mapping) and "when" in raw:
            raw = {k: v for k, v in raw.items() if k != "when"}
        when = self.when(name, when_raw)  # before this entry's own parameters: it may not name them
        options = _class_options(raw)
        if options is None and _is_class_mapping(raw):
            options = [raw]  # one class whose arguments vary
        if options is None:
            return Leaf(self.add(self.parse_entry(name, raw, self.source)), when)
        if isinstance(raw, Mapping) and "choices" in raw:
            extra = [k for k in raw if k not in ("distribution", "choices")]
            if extra or str(raw.get("distribution", "choice")).lower() != "choice":
                raise self.fail(name, f"a choice over classes takes `distribution: choice` and `choices` only; "
                                      f"got keys {', '.join(map(str, raw))}")
        bad = next((o for o in options if not _is_class_mapping(o)), None)
        if bad is not None:
            raise self.fail(name, f"every option of a choice over classes must be a mapping with `class_path` "
                                  f"(and `init_args`); got {bad!r}")
        paths = [str(o["class_path"]) for o in options]
        if len(set(paths)) != len(paths):
            raise self.fail(name, f"the classes of a choice must be distinct; got {paths}")
        short = [p.rsplit(".", 1)[-1] for p in paths]
        labels = [s if short.count(s) == 1 else p for s, p in zip(short, paths, strict=True)]
        param = self.add(self.parse_entry(f"{name}.class_path", {"distribution": "choice", "choices": paths},
                                          self.source))
        built = tuple(self.option(name, label, o, section) for label, o in zip(labels, options, strict=True))
        return ClassChoice(name, param, built, section, when)

    def option(self, name: str, label: str, raw: Mapping[str, Any], section: str) -> Option:
        prefix = f"{name}[{label}]"
        unknown = [k for k in raw if k not in _OPTION_KEYS]
        if unknown:
            raise self.fail(prefix, f"unknown key {unknown[0]!r} in an option; valid: {', '.join(_OPTION_KEYS)}")
        if not isinstance(raw["class_path"], str) or not raw["class_path"]:
            raise self.fail(prefix, f"`class_path` must be a string; got {raw['class_path']!r}")
        init_args, also = raw.get("init_args") or {}, raw.get("also") or {}
        for key, table in (("init_args", init_args), ("also", also)):
            if not isinstance(table, Mapping):
                raise self.fail(prefix, f"`{key}` must be a mapping; got {table!r}")
        args = {str(arg): self.node(f"{prefix}.init_args.{arg}", v, "") for arg, v in init_args.items()}
        extra = {}
        for key, v in also.items():
            if not isinstance(key, str) or key.split(".")[0] in ("name", "seed", "fold", "tune", "cv"):
                raise self.fail(prefix, f"`also` must name config keys that a trial may set; got {key!r}")
            extra[key] = self.node(f"{prefix}.{key}", v, key.split(".")[0])
        return Option(str(raw["class_path"]), label, args, extra)


def parse_tree(entries: list[tuple[str, Any]], source: str,
               parse_entry: Callable[[str, Any, str], Any]) -> tuple[dict[str, Node], dict[str, Any]]:
    """The tree of a conditional space (config key → node, in file order) and every parameter by name."""
    parser = _Parser(source, parse_entry)
    tree = {key: parser.node(key, raw, key.split(".")[0]) for key, raw in entries}
    return tree, parser.params


# -- walking a tree ----------------------------------------------------------------------------------------

def walk(tree: Mapping[str, Node], get: Callable[[Any], Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Visit the active parameters in order; ``get(param)`` gives each one's config value (or
    :data:`UNKNOWN`: the value and everything under it is left out).

    Returns:
        ``(flat, config)``: parameter name → value of every parameter visited, and dotted config key →
        config value (a class as ``{class_path, init_args}``).
    """
    flat: dict[str, Any] = {}
    config: dict[str, Any] = {}
    for key, node in tree.items():
        value = _value(node, get, flat, config)
        if value is not UNKNOWN:
            config[key] = value
    return flat, config


def _active(when: Optional[When], flat: Mapping[str, Any]) -> bool:
    return when is None or (when.name in flat and any(_same(flat[when.name], v) for v in when.values))


def _same(a: Any, b: Any) -> bool:
    return (type(a) is type(b) and a == b) or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                             and not isinstance(a, bool) and not isinstance(b, bool) and a == b)


def _value(node: Node, get: Callable[[Any], Any], flat: dict[str, Any], config: dict[str, Any]) -> Any:
    if not _active(node.when, flat):
        return UNKNOWN
    value = get(node.param)
    if value is UNKNOWN:
        return UNKNOWN
    flat[node.param.key] = value
    if isinstance(node, Leaf):
        return value
    option = next(o for o in node.options if o.class_path == value)
    init_args = {}
    for arg, sub in option.init_args.items():
        v = _value(sub, get, flat, config)
        if v is not UNKNOWN:
            init_args[arg] = v
    for key, sub in option.also.items():
        v = _value(sub, get, flat, config)
        if v is not UNKNOWN:
            config[key] = v
    return {"class_path": value, "init_args": init_args}


# -- checks against the classes ----------------------------------------------------------------------------

def check_classes(tree: Mapping[str, Node], source: str) -> None:
    """Import every class of the tree and check each option's arguments against its ``__init__``.

    Raises:
        SearchSpaceError: a class cannot be imported, or an option gives an argument its class does not
            take (the message names the class and its valid arguments).
    """
    for node in _nodes(tree):
        if not isinstance(node, ClassChoice):
            continue
        for option in node.options:
            cls = _import(option.class_path, node.section, f"{source}: `{node.param.key}`")
            try:
                params = inspect.signature(cls).parameters
            except (TypeError, ValueError):
                continue
            if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
                continue
            valid = [n for n, p in params.items() if p.kind not in (inspect.Parameter.VAR_POSITIONAL,)]
            for arg in option.init_args:
                if arg not in valid:
                    raise SearchSpaceError(
                        f"{source}: `{node.name}[{option.label}].init_args.{arg}`: {option.class_path} takes no "
                        f"argument `{arg}`; valid: {', '.join(valid)}")


def _import(class_path: str, section: str, where: str) -> Any:
    try:
        return _resolve_class(class_path, section)
    except ConfigError as exc:
        raise SearchSpaceError(f"{where}: {exc}") from None


def _nodes(tree: Mapping[str, Node]) -> list[Node]:
    out: list[Node] = []
    for node in tree.values():
        out.append(node)
        if isinstance(node, ClassChoice):
            for option in node.options:
                out += _nodes(option.init_args) + _nodes(option.also)
    return out


def also_keys(tree: Mapping[str, Node]) -> list[str]:
    """Every top-level config key the tree sets: its own keys and those under ``also``."""
    keys = list(tree)
    for node in _nodes(tree):
        if isinstance(node, ClassChoice):
            for option in node.options:
                keys += [k for k in option.also if k not in keys]
    return keys
