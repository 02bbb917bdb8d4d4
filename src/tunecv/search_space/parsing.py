"""Reading a search-space file: YAML or TOML, its ``hyperparameters`` table flattened into dotted keys,
each entry (explicit or implicit) validated against ``DISTRIBUTIONS`` into a :class:`Param`."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Optional

import yaml

from tunecv import conditional
from tunecv.errors import SearchSpaceError
from tunecv.search_space.distributions import (
    _DEFAULTS,
    DISTRIBUTIONS,
    INT,
    NUMBER,
    Param,
    _copy,
    _is_int,
    canonical_distribution,
)

_FLOAT_KEYS = {"uniform": ("low", "high", "step"), "loguniform": ("low", "high"),
               "reversed_loguniform": ("low", "high", "n")}
_ENTRY_KEYS = frozenset({"distribution", "low", "high", "n", "step", "choices", "value", "when"})
_IMPLICIT_RANGE_KEYS = frozenset({"low", "high", "step"})
# Keys that tunecv sets itself for every run, or that configure the tune: they cannot vary per trial.
_RESERVED = {"name": "tunecv names every cv and run itself", "artifact_dir": "it fixes where the tune lives",
             "fold": "the cv sets it for each run", "seed": "the cv sets it for each run",
             "tune": "it configures the tune itself", "cv": "every trial must be scored the same way"}
_KEY_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


# -- parsing -------------------------------------------------------------------------------------------

def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _parse_entry(key: str, raw: Any, source: str) -> Param:
    """Validate one entry (explicit or implicit) against ``DISTRIBUTIONS`` and build its :class:`Param`."""

    def fail(msg: str) -> SearchSpaceError:
        return SearchSpaceError(f"{source}: `{key}`: {msg}")

    if isinstance(raw, list):
        entry: dict[str, Any] = {"distribution": "choice", "choices": raw}
    elif not isinstance(raw, Mapping):
        entry = {"distribution": "constant", "value": raw}
    elif "distribution" in raw:
        entry = dict(raw)
    elif set(raw) <= _IMPLICIT_RANGE_KEYS and {"low", "high"} <= set(raw):
        ints = all(_is_int(raw.get(k)) for k in raw)
        entry = {"distribution": "intuniform" if ints else "uniform", **raw}
    else:
        raise fail(f"an entry without `distribution` must be a list (choice), a scalar (constant) or "
                   f"{{low, high}} (uniform); got keys {', '.join(map(str, raw))}; add `distribution: ...` "
                   f"(one of {', '.join(DISTRIBUTIONS)})")

    dist = canonical_distribution(entry["distribution"])
    if dist is None:
        raise fail(f"unknown distribution {entry['distribution']!r}; valid: {', '.join(DISTRIBUTIONS)} "
                   "(DARTS's `value` and `reversed-loguniform` work too; `-` and `_` are interchangeable)")
    entry["distribution"] = dist
    spec = DISTRIBUTIONS[dist]
    unknown = [k for k in entry if k not in spec.keys]
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} for {dist}; valid: {', '.join(spec.keys)}")
    missing = [k for k in spec.required if k not in entry]
    if missing:
        raise fail(f"{dist} needs `{missing[0]}`; required: {', '.join(spec.required)}")
    for k, typ in {**spec.required, **spec.optional}.items():
        if k in entry and not typ.accepts(entry[k]):
            hint = " (do not quote numbers)" if isinstance(entry[k], str) and typ in (NUMBER, INT) else ""
            raise fail(f"`{k}` must be {typ.name}; got {entry[k]!r} ({_type_name(entry[k])}){hint}")
    filled = {**_DEFAULTS.get(dist, {}), **entry}
    for check in spec.checks:
        msg = check(dist, filled)
        if msg:
            raise fail(msg)
    for k in _FLOAT_KEYS.get(dist, ()):
        if filled.get(k) is not None:
            filled[k] = float(filled[k])
    if dist == "intuniform" and filled.get("step") == 1:
        del filled["step"]  # the default: one canonical form for fingerprints
    if "choices" in filled:
        filled["choices"] = tuple(filled["choices"])
    if "value" in filled:
        filled["value"] = _copy(filled["value"])
    return Param(key=key, **filled)


def _check_key_syntax(key: Any, source: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise SearchSpaceError(f"{source}: {key!r} is not a dotted config key such as model.init_args.lr")
    top = key.split(".")[0]
    if top in _RESERVED:
        raise SearchSpaceError(f"{source}: `{key}` cannot be tuned: {_RESERVED[top]}; tune keys of "
                               "model, data, trainer, split, optimizer, lr_scheduler and the like")
    return key


def _flatten(table: Mapping[Any, Any], prefix: str, source: str) -> Iterator[tuple[str, Any]]:
    """``(dotted key, raw entry)`` pairs; mappings without entry keys are levels of nesting."""
    for k, v in table.items():
        if not isinstance(k, str):
            raise SearchSpaceError(f"{source}: {k!r} is not a dotted config key such as model.init_args.lr")
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, Mapping) and v and not (set(v) & _ENTRY_KEYS):
            yield from _flatten(v, key, source)
        elif isinstance(v, Mapping) and not v:
            raise SearchSpaceError(f"{source}: `{key}`: an entry must not be empty; write a list (choice), a "
                                   f"scalar (constant), {{low, high}} or {{distribution: ...}}")
        else:
            yield key, v


def _parse_document(doc: Any, source: str) -> tuple[dict[str, Param], Optional[dict[str, Any]]]:
    """The space's parameters by name, and its tree when it is conditional (see :mod:`tunecv.conditional`)."""
    example = "such as `hyperparameters: {model.init_args.lr: {distribution: loguniform, low: 1.0e-4, high: 0.1}}`"
    if doc is None or doc == {}:
        raise SearchSpaceError(f"{source}: the search space is empty; expected a `hyperparameters` table {example}")
    if not isinstance(doc, Mapping):
        raise SearchSpaceError(f"{source}: expected a mapping with a `hyperparameters` table {example}; got "
                               f"{_type_name(doc)}")
    if "hyperparameters" not in doc:
        raise SearchSpaceError(f"{source}: no `hyperparameters` table; found top-level keys "
                               f"{', '.join(map(str, doc))}; expected one {example}")
    extra = [k for k in doc if k != "hyperparameters"]
    if extra:
        raise SearchSpaceError(f"{source}: unknown top-level key {extra[0]!r}; valid: hyperparameters")
    table = doc["hyperparameters"]
    if not isinstance(table, Mapping):
        raise SearchSpaceError(f"{source}: `hyperparameters` must be a mapping of dotted config keys to "
                               f"entries; got {_type_name(table)}")
    if not table:
        raise SearchSpaceError(f"{source}: `hyperparameters` is empty; list at least one key {example}")
    entries: dict[str, Any] = {}
    for key, raw in _flatten(table, "", source):
        _check_key_syntax(key, source)
        if key in entries:
            raise SearchSpaceError(f"{source}: `{key}` is given twice (once nested, once dotted)")
        clash = next((p for p in entries if p.startswith(key + ".") or key.startswith(p + ".")), None)
        if clash:
            raise SearchSpaceError(f"{source}: `{key}` and `{clash}` overlap; one is inside the other")
        entries[key] = raw
    if any(conditional.is_conditional(raw) for raw in entries.values()):
        tree, params = conditional.parse_tree(list(entries.items()), source, _parse_entry)
        return params, tree
    return {key: _parse_entry(key, raw, source) for key, raw in entries.items()}, None


class _SpaceLoader(yaml.SafeLoader):
    """Safe YAML that reads ``1e-4`` as a float (YAML 1.1 wants ``1.0e-4``) and rejects duplicate keys."""


_SpaceLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"""),
    list("-+0123456789"),
)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    out: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_SpaceLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_SUFFIXES = {".yaml": "YAML", ".yml": "YAML", ".json": "YAML", ".toml": "TOML"}


def _read_file(path: Path, source: str) -> Any:
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise SearchSpaceError(f"`tune.search_space` must be a file ending in {', '.join(_SUFFIXES)}; got "
                               f"{source!r}")
    if not path.is_file():
        raise SearchSpaceError(f"`tune.search_space` must name an existing {fmt} file; got {source!r}")
    text = path.read_text(encoding="utf-8")
    if fmt == "TOML":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            msg = str(exc).splitlines()[0]
            if "at end of document" in msg:
                msg = msg.replace("at end of document", f"at end of document, line {len(text.splitlines())}")
            raise SearchSpaceError(f"{source}: invalid TOML: {msg}") from None
    try:
        return yaml.load(text, Loader=_SpaceLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SearchSpaceError(f"{source}: invalid YAML{where}: {problem}") from None
