"""The search space of a tune: which config keys vary, and how.

A search space is a YAML or TOML file with a top-level ``hyperparameters`` table. Its keys are dotted
config keys as on the command line (``model.init_args.lr``); its values are entries, either explicit
(``{distribution: loguniform, low: 1.0e-4, high: 0.1}``) or implicit (a list is a choice, a scalar a
constant, ``{low, high}`` a uniform, an int uniform when both bounds are ints). See ``docs/`` for the
file format; the distributions and their keys are the table ``DISTRIBUTIONS`` below, from which every
entry is validated.

Nested tables are flattened into dotted keys, so TOML's ``[hyperparameters.model.init_args]`` and
YAML's ``model: {init_args: {lr: ...}}`` work too. A mapping that has any entry key (``distribution``,
``low``, ``high``, ``n``, ``step``, ``choices``, ``value``) is an entry, any other mapping a level of
nesting; a constant that is itself a mapping must be written explicitly (``{distribution: constant,
value: {...}}``).

Names in Optuna: each entry is suggested under its dotted key, and Optuna records the value the config
receives, so a plain Optuna reader (``trial.params``, ``study.best_params``, ``trials_dataframe()``,
optuna-dashboard) sees the values the model used. A ``reversed_loguniform`` entry is recorded as a
``FloatDistribution(low, high)`` of the used value ``n - x``; the sampler still draws ``x`` log-uniformly
in ``[n-high, n-low]``: :func:`make_sampler` wraps it in :class:`_ReversedLogSampler`, which shows the
wrapped sampler every recorded ``n - x`` as ``x`` under its log distribution and turns its draws back.
:meth:`SearchSpace.params_from_trial` turns trial params into config values (the identity, except for
studies written before this change, whose reversed entries recorded ``x``) and
:meth:`SearchSpace.to_trial_params` goes back (for ``study.enqueue_trial``). A constant whose value is a
scalar is recorded in Optuna as a one-choice categorical (samplers skip it); any other constant only
reaches the config.

This module is light: optuna is imported inside the functions that need it.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import math
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import yaml

from tunecv import conditional
from tunecv.config import CLASS_SECTIONS, PRUNERS, SAMPLERS, Config, check_key, config_from_dict, set_in
from tunecv.errors import ConfigError, SearchSpaceError, one_of

if TYPE_CHECKING:
    import os

    import optuna

__all__ = [
    "DISTRIBUTIONS",
    "Param",
    "SearchSpace",
    "apply",
    "canonical_distribution",
    "load_search_space",
    "make_pruner",
    "make_sampler",
]

Scalar = Union[None, bool, int, float, str]
_SCALAR_TYPES = (type(None), bool, int, float, str)
_FINGERPRINT_FORMAT = 1
#: trial user attr where a tune keeps each run's own score (run index → score), for run_score_pruner
RUN_SCORES_ATTR = "run_scores"
#: ``tune.pruner: wilcoxon``'s p-value threshold for cvs of 7 runs or more (Optuna's default)
WILCOXON_P_THRESHOLD = 0.1


# -- the table of distributions ------------------------------------------------------------------------

@dataclass(frozen=True)
class _Type:
    """A value type an entry key accepts: a name for messages and a predicate."""

    name: str
    accepts: Callable[[Any], bool]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_plain(v: Any) -> bool:
    """JSON-like: what YAML, TOML, Optuna storages and ``config.yaml`` all hold."""
    if isinstance(v, Mapping):
        return all(isinstance(k, str) and _is_plain(x) for k, x in v.items())
    if isinstance(v, list):
        return all(_is_plain(x) for x in v)
    return isinstance(v, _SCALAR_TYPES) and not (isinstance(v, float) and not math.isfinite(v))


NUMBER = _Type("a finite number", _is_number)
INT = _Type("an int", _is_int)
LIST = _Type("a list", lambda v: isinstance(v, list))
PLAIN = _Type("a plain value (null, bool, number, string, list or mapping)", _is_plain)


@dataclass(frozen=True)
class _Spec:
    """What one distribution needs: required and optional keys with their types, and extra checks."""

    required: Mapping[str, _Type]
    optional: Mapping[str, _Type] = field(default_factory=dict)
    checks: tuple[Callable[[str, Mapping[str, Any]], Optional[str]], ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return ("distribution", *self.required, *self.optional)


# Each check gets the distribution name and the entry (defaults filled in) and returns a message or None.
def _low_below_high(dist: str, e: Mapping[str, Any]) -> Optional[str]:
    if not e["low"] < e["high"]:
        return f"`low` must be < `high`; got low={e['low']!r}, high={e['high']!r}"
    return None


def _log_low_positive(dist: str, e: Mapping[str, Any]) -> Optional[str]:
    if not e["low"] > 0:
        return f"{dist} needs `low` > 0 (log scale); got low={e['low']!r}"
    return None


def _reversed_range_positive(dist: str, e: Mapping[str, Any]) -> Optional[str]:
    if not e["n"] - e["high"] > 0:
        return (f"{dist} needs `n` - `high` > 0 (n - x with x log-uniform in [n-high, n-low]); "
                f"got n={e['n']!r}, high={e['high']!r}")
    return None


def _step_fits(dist: str, e: Mapping[str, Any]) -> Optional[str]:
    step = e.get("step")
    if step is None:
        return None
    if not step > 0:
        return f"`step` must be > 0; got step={step!r}"
    span = e["high"] - e["low"]
    n_steps = span / step
    if abs(n_steps - round(n_steps)) > 1e-8 * max(1.0, abs(n_steps)):
        return (f"`high` - `low` must be a multiple of `step`; got low={e['low']!r}, high={e['high']!r}, "
                f"step={step!r}")
    return None


def _choices_valid(dist: str, e: Mapping[str, Any]) -> Optional[str]:
    choices = e["choices"]
    if not choices:
        return "`choices` must be a non-empty list; got []"
    bad = [c for c in choices if not isinstance(c, _SCALAR_TYPES)]
    if bad:
        return (f"`choices` must be scalars (null, bool, number or string); got {bad[0]!r} "
                "(a list or mapping value needs one entry per config key)")
    kinds = {_kind(c) for c in choices} - {"null"}
    if len(kinds) > 1:
        return (f"`choices` must share one type (null may join any); got {', '.join(sorted(kinds))} in "
                f"{choices!r} (write them all as strings, or all as numbers)")
    if any(isinstance(c, float) and not math.isfinite(c) for c in choices):
        return f"`choices` must be finite numbers; got {choices!r}"
    if len(set(choices)) != len(choices):
        dup = next(c for i, c in enumerate(choices) if c in choices[:i])
        return f"`choices` must be distinct; got {dup!r} twice in {choices!r}"
    return None


def _kind(v: Scalar) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return "string"


#: distribution → its keys, their types and the checks an entry must pass.
DISTRIBUTIONS: dict[str, _Spec] = {
    "uniform": _Spec({"low": NUMBER, "high": NUMBER}, {"step": NUMBER}, (_low_below_high, _step_fits)),
    "loguniform": _Spec({"low": NUMBER, "high": NUMBER}, {}, (_low_below_high, _log_low_positive)),
    "reversed_loguniform": _Spec({"low": NUMBER, "high": NUMBER}, {"n": NUMBER},
                                 (_low_below_high, _reversed_range_positive)),
    "intuniform": _Spec({"low": INT, "high": INT}, {"step": INT}, (_low_below_high, _step_fits)),
    "choice": _Spec({"choices": LIST}, {}, (_choices_valid,)),
    "constant": _Spec({"value": PLAIN}),
}
# DARTS's guide spells some distributions differently (``value``, ``reversed-loguniform``); files written
# for it work unchanged. Hyphens and underscores are interchangeable in every name.
_ALIASES: dict[str, str] = {
    **{name: name for name in DISTRIBUTIONS},
    "value": "constant",
    "log_uniform": "loguniform",
    "int_uniform": "intuniform",
    "reversed_log_uniform": "reversed_loguniform",
}
_DEFAULTS: dict[str, dict[str, Any]] = {"reversed_loguniform": {"n": 1.0}}


def canonical_distribution(name: Any) -> Optional[str]:
    """The distribution a spelling names (``reversed-loguniform`` → ``reversed_loguniform``, ``value`` →
    ``constant``), or ``None`` when it names none."""
    if not isinstance(name, str):
        return None
    return _ALIASES.get(name.strip().lower().replace("-", "_"))
_FLOAT_KEYS = {"uniform": ("low", "high", "step"), "loguniform": ("low", "high"),
               "reversed_loguniform": ("low", "high", "n")}
_ENTRY_KEYS = frozenset({"distribution", "low", "high", "n", "step", "choices", "value", "when"})
_IMPLICIT_RANGE_KEYS = frozenset({"low", "high", "step"})
# Keys that tunecv sets itself for every run, or that configure the tune: they cannot vary per trial.
_RESERVED = {"name": "tunecv names every cv and run itself", "artifact_dir": "it fixes where the tune lives",
             "fold": "the cv sets it for each run", "seed": "the cv sets it for each run",
             "tune": "it configures the tune itself", "cv": "every trial must be scored the same way"}
_KEY_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


# -- one entry -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """One validated entry of a search space.

    Only the fields its distribution uses are set; the others are ``None``.

    Attributes:
        key: the dotted config key, also the parameter name in Optuna.
        distribution: one of ``DISTRIBUTIONS``.
        low: lower bound (uniform, loguniform, reversed_loguniform, intuniform).
        high: upper bound, inclusive for intuniform.
        n: reversed_loguniform only: the value is ``n - x``.
        choices: choice only, in file order.
        value: constant only.
        step: optional grid step of uniform or intuniform.
    """

    key: str
    distribution: str
    low: Optional[float] = None
    high: Optional[float] = None
    n: Optional[float] = None
    choices: Optional[tuple[Scalar, ...]] = None
    value: Any = None
    step: Optional[float] = None

    @property
    def is_discrete(self) -> bool:
        """Whether the entry is a choice or a constant (what a grid can enumerate)."""
        return self.distribution in ("choice", "constant")

    @property
    def recorded(self) -> bool:
        """Whether Optuna sees this entry (all but constants whose value is not a scalar)."""
        return self.distribution != "constant" or isinstance(self.value, _SCALAR_TYPES)

    def values(self) -> list[Any]:
        """Every value of a choice or constant, in order (what a grid enumerates).

        Raises:
            SearchSpaceError: the entry is continuous.
        """
        if self.distribution == "choice":
            return list(self.choices or ())
        if self.distribution == "constant":
            return [self.value]
        raise SearchSpaceError(f"`{self.key}` is {self.distribution}; only a choice or a constant has a "
                               "finite list of values")

    def optuna_distribution(self) -> Optional[optuna.distributions.BaseDistribution]:
        """The Optuna distribution of the value Optuna records, or ``None`` when it records nothing.

        For reversed_loguniform this is ``FloatDistribution(low, high)``, the range of the used value
        ``n - x``; :meth:`sampling_distribution` is the one the sampler draws ``x`` from.
        """
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        d = self.distribution
        if d == "uniform":
            return FloatDistribution(self.low, self.high, step=self.step)  # type: ignore[arg-type]
        if d == "loguniform":
            return FloatDistribution(self.low, self.high, log=True)  # type: ignore[arg-type]
        if d == "reversed_loguniform":
            return FloatDistribution(self.low, self.high)  # type: ignore[arg-type]
        if d == "intuniform":
            return IntDistribution(int(self.low), int(self.high), step=int(self.step or 1))  # type: ignore[arg-type]
        if d == "choice":
            return CategoricalDistribution(list(self.choices or ()))
        return CategoricalDistribution([self.value]) if self.recorded else None

    def suggest(self, trial: optuna.trial.BaseTrial) -> Any:
        """Ask ``trial`` for a value and return the value for the config (``n - x`` when reversed)."""
        d = self.distribution
        if d == "uniform":
            return trial.suggest_float(self.key, self.low, self.high, step=self.step)  # type: ignore[arg-type]
        if d == "loguniform":
            return trial.suggest_float(self.key, self.low, self.high, log=True)  # type: ignore[arg-type]
        if d == "reversed_loguniform":  # recorded as used; make_sampler's wrapper draws n - x, x log-uniform
            return trial.suggest_float(self.key, self.low, self.high)  # type: ignore[arg-type]
        if d == "intuniform":
            return trial.suggest_int(self.key, int(self.low), int(self.high),  # type: ignore[arg-type]
                                     step=int(self.step or 1))
        if d == "choice":
            return trial.suggest_categorical(self.key, list(self.choices or ()))
        if self.recorded:
            trial.suggest_categorical(self.key, [self.value])
        return _copy(self.value)

    def sampling_distribution(self) -> Optional[optuna.distributions.BaseDistribution]:
        """The distribution the sampler draws from: :meth:`optuna_distribution`, except for
        reversed_loguniform, whose sampler draws ``x`` log-uniform in ``[n-high, n-low]``."""
        if self.distribution == "reversed_loguniform":
            from optuna.distributions import FloatDistribution

            return FloatDistribution(*self._internal_range(), log=True)
        return self.optuna_distribution()

    def from_internal(self, x: Any) -> Any:
        """The used value of an ``x`` the sampler drew: ``n - x`` (kept within ``[low, high]``) if reversed."""
        if self.distribution != "reversed_loguniform":
            return x
        return min(max(self.n - x, self.low), self.high)  # type: ignore[operator, type-var]

    def to_internal(self, value: Any) -> Any:
        """The ``x`` of a used value: ``n - value`` if reversed (inverse of :meth:`from_internal`)."""
        if self.distribution != "reversed_loguniform":
            return value
        lo, hi = self._internal_range()
        return min(max(self.n - value, lo), hi)  # type: ignore[operator]

    def from_trial(self, value: Any, distribution: Any = None) -> Any:
        """The used value of what Optuna recorded. Since tunecv records used values this is ``value``;
        a reversed entry of an older study, recorded as ``x`` under the log distribution, gives ``n - x``."""
        if (self.distribution == "reversed_loguniform" and distribution is not None
                and getattr(distribution, "log", False)):
            return self.from_internal(value)
        return value

    def check_value(self, value: Any) -> Optional[str]:
        """Why ``value`` (a config value) is not one this entry can take, or ``None`` when it is."""
        d = self.distribution
        if d in ("uniform", "loguniform", "reversed_loguniform", "intuniform"):
            if d == "intuniform" and not _is_int(value):
                return f"must be an int in {self.describe()}; got {value!r}"
            if not _is_number(value) or not self.low <= value <= self.high:  # type: ignore[operator]
                return f"must be within {self.describe()}; got {value!r}"
            if self.step is not None:
                n_steps = (value - self.low) / self.step  # type: ignore[operator]
                if abs(n_steps - round(n_steps)) > 1e-8 * max(1.0, abs(n_steps)):
                    return f"must be on the grid of {self.describe()}; got {value!r}"
            return None
        if d == "choice":
            ok = isinstance(value, _SCALAR_TYPES) and any(_kind(value) == _kind(c) and value == c
                                                          for c in self.choices or ())
            return None if ok else f"must be one of {list(self.choices or ())!r}; got {value!r}"
        return None if value == self.value else f"is the constant {self.value!r}; got {value!r}"

    def to_dict(self) -> dict[str, Any]:
        """The entry in explicit form (``{distribution: ..., ...}``), only the keys it uses."""
        out: dict[str, Any] = {"distribution": self.distribution}
        for key in DISTRIBUTIONS[self.distribution].keys[1:]:
            value = getattr(self, key)
            if value is not None or key == "value":
                out[key] = list(value) if key == "choices" else _copy(value)
        return out

    def describe(self) -> str:
        """A short text such as ``loguniform(low=0.0001, high=0.1)``."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "distribution")
        return f"{self.distribution}({args})"

    def _internal_range(self) -> tuple[float, float]:
        return self.n - self.high, self.n - self.low  # type: ignore[operator]


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


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


# -- the space -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchSpace:
    """The validated entries of a search-space file, in file order.

    Attributes:
        params: dotted config key → :class:`Param`.
        source: where it came from (the file path as given), used to prefix error messages.
    """

    params: dict[str, Param]
    source: str = "<dict>"
    tree: Optional[dict[str, Any]] = None
    raw: Optional[dict[str, Any]] = None

    @property
    def conditional(self) -> bool:
        """Whether parameters are active only under some choices (see :mod:`tunecv.conditional`); then
        ``params`` holds every parameter by its path name, and values are *flat values* (name → value,
        ``None`` where inactive), which :meth:`to_config` turns into config values."""
        return self.tree is not None

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike]) -> SearchSpace:
        """Read and validate a YAML (``.yaml``, ``.yml``, ``.json``) or TOML (``.toml``) file.

        Raises:
            SearchSpaceError: the file is missing, unreadable or malformed; one line naming the file,
                the key, the constraint and the value.
        """
        source = str(path)
        return cls.from_mapping(_read_file(Path(path), source), source)

    @classmethod
    def from_mapping(cls, mapping: Any, source: str = "<dict>") -> SearchSpace:
        """Validate a parsed document (a mapping with a ``hyperparameters`` table).

        Raises:
            SearchSpaceError: the mapping is malformed.
        """
        params, tree = _parse_document(mapping, source)
        raw = _copy(dict(mapping["hyperparameters"])) if tree is not None else None
        return cls(params, source, tree, raw)

    def __len__(self) -> int:
        return len(self.params)

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params.values())

    def check_keys(self, cfg: Config) -> None:
        """Check that every key is a settable key of ``cfg`` (before any training starts).

        Raises:
            SearchSpaceError: a key is not a config key; the message starts with the file name.
        """
        keys = conditional.also_keys(self.tree) if self.tree is not None else self.params
        for key in keys:
            if self.tree is not None and key in CLASS_SECTIONS:
                continue  # a whole class section, whose classes check_classes checks
            try:
                check_key(cfg, key)
            except ConfigError as exc:
                raise SearchSpaceError(f"{self.source}: {exc}") from None
        if self.tree is not None:
            conditional.check_classes(self.tree, self.source)

    def to_config(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The dotted config keys and values to set for a trial's values (the same mapping unless the space
        is conditional: then flat values become classes with their ``init_args``)."""
        if self.tree is None:
            return dict(values)
        return conditional.walk(self.tree, lambda p: _copy(values.get(p.key, conditional.UNKNOWN)))[1]

    def replay(self, get: Callable[[Param], Any]) -> dict[str, Any]:
        """The values (flat values when conditional) with ``get(param)`` for each active parameter."""
        if self.tree is None:
            return {key: get(p) for key, p in self.params.items()}
        flat = conditional.walk(self.tree, get)[0]
        return {key: flat.get(key) for key in self.params}

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Ask ``trial`` for every entry; returns dotted key → value to set into the config (conditional:
        flat values, see :meth:`to_config`)."""
        return self.replay(lambda p: p.suggest(trial))

    def params_from_trial(self, trial_params: Mapping[str, Any],
                          distributions: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        """Turn Optuna's ``trial.params`` into config values: the same values, plus the constants that
        Optuna does not record (filled in from the space). With the trial's ``distributions``, a
        reversed_loguniform entry of a study written before tunecv recorded used values (``x`` under a log
        distribution) becomes ``n - x``.

        Raises:
            SearchSpaceError: the trial has no value for a key of the space (the space changed).
        """
        if self.tree is not None:
            def get(p: Param) -> Any:
                if p.key in trial_params:
                    return p.from_internal(trial_params[p.key])
                if p.distribution == "constant":
                    return _copy(p.value)
                raise SearchSpaceError(f"{self.source}: the trial has no value for `{p.key}`; its parameters "
                                       f"are {', '.join(trial_params) or 'none'}")
            return self.replay(get)
        out: dict[str, Any] = {}
        for key, p in self.params.items():
            if key in trial_params:
                out[key] = p.from_trial(trial_params[key], (distributions or {}).get(key))
            elif p.distribution == "constant":
                out[key] = _copy(p.value)
            else:
                raise SearchSpaceError(f"{self.source}: the trial has no value for `{key}`; its parameters "
                                       f"are {', '.join(trial_params) or 'none'}")
        return out

    def to_trial_params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Config values → the params Optuna records (for ``study.enqueue_trial``); inverse of
        :meth:`params_from_trial`. Constants Optuna does not record are left out (conditional: so are
        inactive parameters and those missing from ``values``). Optuna records the used values."""
        if self.tree is not None:
            def known(p: Param) -> Any:
                v = values.get(p.key)
                return conditional.UNKNOWN if v is None or (isinstance(v, float) and math.isnan(v)) else v
            flat = conditional.walk(self.tree, known)[0]
            return {key: v for key, v in flat.items() if self.params[key].recorded}
        return {key: values[key] for key, p in self.params.items() if key in values and p.recorded}

    def optuna_distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Key → Optuna distribution of every entry Optuna records (for ``study.ask(fixed_distributions)``)."""
        out = {key: p.optuna_distribution() for key, p in self.params.items()}
        return {k: d for k, d in out.items() if d is not None}

    @property
    def is_grid_compatible(self) -> bool:
        """Whether every entry is a choice or a constant (and the space is not conditional)."""
        return self.tree is None and all(p.is_discrete for p in self.params.values())

    def grid_size(self) -> int:
        """How many points :meth:`grid` has (raises like :meth:`grid` when a key is continuous)."""
        self._require_grid("n_trials: grid")
        return math.prod(len(p.values()) for p in self.params.values())

    def grid(self, what: str = "n_trials: grid") -> list[dict[str, Any]]:
        """Every combination of choices and constants, each once.

        The order is deterministic: the product in file order, the first key varying slowest.

        Args:
            what: the setting that asked for a grid, for the error message.

        Raises:
            SearchSpaceError: an entry is continuous (names the first one).
        """
        self._require_grid(what)
        keys = list(self.params)
        return [dict(zip(keys, map(_copy, combo), strict=True))
                for combo in itertools.product(*(p.values() for p in self.params.values()))]

    def _require_grid(self, what: str) -> None:
        if self.tree is not None:
            raise SearchSpaceError(f"{self.source}: `{what}` needs a space without conditions; this one has a "
                                   "choice over classes or a `when:` (use a sampler such as tpe)")
        for key, p in self.params.items():
            if not p.is_discrete:
                raise SearchSpaceError(f"{self.source}: `{what}` needs every entry to be a choice or a "
                                       f"constant; `{key}` is {p.distribution}")

    def to_dict(self) -> dict[str, Any]:
        """The space in explicit form, in file order (``{"hyperparameters": {key: {distribution: ...}}}``);
        :meth:`from_mapping` reads it back (conditional: the table as written)."""
        if self.raw is not None:
            return {"hyperparameters": _copy(self.raw)}
        return {"hyperparameters": {key: p.to_dict() for key, p in self.params.items()}}

    def fingerprint(self) -> dict[str, Any]:
        """A canonical JSON-able description: explicit entries, keys sorted, bounds as floats.

        Two spaces that sample the same way have equal fingerprints. Store it with a tune and compare
        with :meth:`diff` on resume.
        """
        if self.raw is not None:  # conditional: the table as written reads back into the same space
            return {"format": _FINGERPRINT_FORMAT, "conditional": True, "hyperparameters": _copy(self.raw)}
        entries = self.to_dict()["hyperparameters"]
        return {"format": _FINGERPRINT_FORMAT, "hyperparameters": {k: entries[k] for k in sorted(entries)}}

    def diff(self, other: Union[SearchSpace, Mapping[str, Any]]) -> list[str]:
        """What changed from ``self`` to ``other`` (a space or a :meth:`fingerprint`); empty when nothing.

        Each line names a key: ``added `k`: loguniform(low=..., high=...)``, ``removed `k```,
        ``changed `k`: uniform(...) → loguniform(...)``.
        """
        if not isinstance(other, SearchSpace):
            other = SearchSpace.from_mapping({"hyperparameters": dict(other.get("hyperparameters", {}))},
                                             "<fingerprint>")
        lines = []
        for key, p in self.params.items():
            q = other.params.get(key)
            if q is None:
                lines.append(f"removed `{key}`: {p.describe()}")
            elif q.to_dict() != p.to_dict():
                lines.append(f"changed `{key}`: {p.describe()} → {q.describe()}")
        lines += [f"added `{key}`: {q.describe()}" for key, q in other.params.items() if key not in self.params]
        if not lines and self.fingerprint() != other.fingerprint():
            lines.append("changed the conditions (`when:`, `also:` or which class a parameter belongs to)")
        return lines


def load_search_space(path: Union[str, os.PathLike]) -> SearchSpace:
    """Same as :meth:`SearchSpace.from_file`."""
    return SearchSpace.from_file(path)


def apply(cfg: Config, values: Mapping[str, Any]) -> Config:
    """A copy of ``cfg`` with every dotted key of ``values`` set, validated once.

    Raises:
        ConfigError: the values make an invalid config (the message names the key).
    """
    data = cfg.to_dict()
    for key, value in values.items():
        set_in(data, key, _copy(value))
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise type(exc)(f"the search-space values {dict(values)!r} make an invalid config: {exc}") from None


# -- Optuna samplers and pruners -----------------------------------------------------------------------

def make_sampler(name: str, seed: Optional[int] = None, space: Optional[SearchSpace] = None,
                 n_objectives: int = 1, constraints_func: Optional[Callable[[Any], Any]] = None
                 ) -> optuna.samplers.BaseSampler:
    """The Optuna sampler named by ``tune.sampler``, seeded: the same seed and space give the same trials.

    Args:
        name: one of tpe, random, grid, cmaes, qmc, gp, nsga2.
        seed: the sampler's seed; ``None`` for a random one.
        space: the search space; required for ``grid`` (a ``GridSampler`` over :meth:`SearchSpace.grid`).
        n_objectives: the number of objectives; ``cmaes`` supports one.
        constraints_func: Optuna's ``constraints_func`` (``tune.constraints``): passed to tpe, nsga2 and gp,
            the samplers that take one (the config rejects the others).

    Raises:
        ConfigError: an unknown name, or a sampler that cannot serve this space or objective count.
        SearchSpaceError: ``grid`` with a continuous entry.
    """
    if name not in SAMPLERS:
        raise one_of("tune.sampler", name, SAMPLERS)
    if name == "grid":
        if space is None:
            raise ConfigError("`tune.sampler: grid` needs the search space (`tune.search_space`)")
        space._require_grid("tune.sampler: grid")
        grid = {key: p.values() for key, p in space.params.items() if p.recorded}
        return _ask_tell_grid_sampler()(grid, seed=seed)
    return _reversed_log_sampler(_make_sampler(name, seed, n_objectives, space, constraints_func), space)


def _make_sampler(name: str, seed: Optional[int], n_objectives: int, space: Optional[SearchSpace] = None,
                  constraints_func: Optional[Callable[[Any], Any]] = None) -> optuna.samplers.BaseSampler:
    import optuna

    samplers = optuna.samplers
    if name == "tpe":
        if space is not None and space.conditional:
            # TPE's own answer to define-by-run spaces: one model per group of parameters that appear together
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                           constraints_func=constraints_func)
        return samplers.TPESampler(seed=seed, constraints_func=constraints_func)
    if name == "random":
        return samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        if n_objectives > 1:
            raise ConfigError(f"`tune.sampler` cmaes optimizes one objective; got {n_objectives} objectives; "
                              "use one of tpe, random, grid, qmc, gp, nsga2")
        if importlib.util.find_spec("cmaes") is None:  # optuna imports it only at the second trial
            raise ConfigError("`tune.sampler` cmaes needs the cmaes package, which is not installed "
                              "(pip install cmaes); or use one of tpe, random, grid, qmc, gp, nsga2")
        return samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "qmc":
        return samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed,
                                   warn_asynchronous_seeding=False, warn_independent_sampling=False)
    if name == "gp":
        return samplers.GPSampler(seed=seed, warn_independent_sampling=False, constraints_func=constraints_func)
    return samplers.NSGAIISampler(seed=seed, constraints_func=constraints_func)


def _reversed_log_sampler(inner: Any, space: Optional[SearchSpace]) -> Any:
    """``inner`` itself, or wrapped so that it draws every reversed_loguniform entry as ``x`` (log-uniform in
    ``[n-high, n-low]``) while the study records the used value ``n - x`` (see the module's docstring)."""
    reversed_params = {k: p for k, p in (space.params if space is not None else {}).items()
                       if p.distribution == "reversed_loguniform"}
    if not reversed_params:
        return inner
    return _reversed_log_sampler_class()(inner, reversed_params)


# long: one class body (the sampler wrapper), defined where optuna is imported (a lazy heavy dependency)
@functools.cache
def _reversed_log_sampler_class() -> type:
    import copy

    from optuna.samplers import BaseSampler

    class ReversedLogSampler(BaseSampler):
        """A sampler that sees reversed_loguniform entries as their log-uniform ``x``.

        Optuna records the used value ``v = n - x`` under ``FloatDistribution(low, high)``, so that every
        reader sees what the model received. The wrapped sampler (TPE, CMA-ES, GP, ...) sees a view of the
        study in which each such value is ``x = n - v`` under ``FloatDistribution(n-high, n-low, log=True)``:
        it models and draws ``x`` in log space as the distribution says, and its draw ``x`` is turned into
        the used value ``n - x`` before Optuna records it. Values recorded under another distribution (a
        study from before this change recorded ``x`` itself under the log distribution) are shown as they are.
        """

        def __init__(self, inner: Any, params: Mapping[str, Param]) -> None:
            self.inner = inner
            self.params = dict(params)
            self.used = {k: p.optuna_distribution() for k, p in self.params.items()}
            self.drawn = {k: p.sampling_distribution() for k, p in self.params.items()}

        def __getattr__(self, name: str) -> Any:  # the inner sampler's own attributes (seed, rng, ...)
            if name == "inner":
                raise AttributeError(name)
            return getattr(self.inner, name)

        # -- views ----------------------------------------------------------------------------------------
        def _trial(self, trial: Any) -> Any:
            keys = [k for k in self.params if k in trial.distributions and trial.distributions[k] == self.used[k]]
            if not keys:
                return trial
            view = copy.copy(trial)
            params, dists = dict(trial.params), dict(trial.distributions)
            for k in keys:
                params[k] = self.params[k].to_internal(params[k])
                dists[k] = self.drawn[k]
            view.params, view.distributions = params, dists
            return view

        def _study(self, study: Any) -> Any:
            return _StudyView(study, self._trial)

        def _swap(self, space: Mapping[str, Any], source: Mapping[str, Any],
                  target: Mapping[str, Any]) -> dict[str, Any]:
            return {k: target[k] if k in self.params and d == source[k] else d for k, d in space.items()}

        # -- BaseSampler ----------------------------------------------------------------------------------
        # Optuna checks a relative search space against the distributions the trial suggests (the used
        # ones); the wrapped sampler works in the drawn ones.
        def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
            space = self.inner.infer_relative_search_space(self._study(study), self._trial(trial))
            return self._swap(space, self.drawn, self.used)

        def sample_relative(self, study: Any, trial: Any, search_space: Mapping[str, Any]) -> dict[str, Any]:
            inner_space = self._swap(search_space, self.used, self.drawn)
            drawn = self.inner.sample_relative(self._study(study), self._trial(trial), inner_space)
            return {k: self.params[k].from_internal(v) if k in self.params and inner_space.get(k) == self.drawn[k]
                    else v for k, v in drawn.items()}

        def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
            if param_name in self.params and param_distribution == self.used[param_name]:
                x = self.inner.sample_independent(self._study(study), self._trial(trial), param_name,
                                                  self.drawn[param_name])
                return self.params[param_name].from_internal(x)
            return self.inner.sample_independent(self._study(study), self._trial(trial), param_name,
                                                 param_distribution)

        def before_trial(self, study: Any, trial: Any) -> None:
            self.inner.before_trial(self._study(study), self._trial(trial))

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            self.inner.after_trial(self._study(study), self._trial(trial), state, values)

        def reseed_rng(self) -> None:
            self.inner.reseed_rng()

    return ReversedLogSampler


class _StudyView:
    """A study whose trials are shown through ``show`` (everything else is the study's own)."""

    def __init__(self, study: Any, show: Callable[[Any], Any]) -> None:
        self._view_of, self._show = study, show

    def __getattr__(self, name: str) -> Any:
        return getattr(self._view_of, name)

    def _get_trials(self, *args: Any, **kwargs: Any) -> list[Any]:
        return [self._show(t) for t in self._view_of._get_trials(*args, **kwargs)]

    def get_trials(self, *args: Any, **kwargs: Any) -> list[Any]:
        return [self._show(t) for t in self._view_of.get_trials(*args, **kwargs)]

    @property
    def trials(self) -> list[Any]:
        return self.get_trials()


@functools.cache
def _ask_tell_grid_sampler() -> type:
    from optuna.samplers import GridSampler

    class AskTellGridSampler(GridSampler):
        """A ``GridSampler`` that also works with ask/tell.

        ``GridSampler.after_trial`` calls ``study.stop()`` once the grid is used up, which raises
        ``RuntimeError`` outside ``study.optimize``: the last ``study.tell`` of an ask/tell driver would
        fail (the trial's state is stored all the same). Outside ``optimize`` the driver stops by count.
        """

        def after_trial(self, study, trial, state, values):  # type: ignore[no-untyped-def]
            try:
                super().after_trial(study, trial, state, values)
            except RuntimeError as exc:
                if "Study.stop" not in str(exc):
                    raise

    return AskTellGridSampler


def run_score_pruner(inner: Any) -> Any:
    """Wrap a pruner that compares instances (``WilcoxonPruner``) so that it sees each trial's per-run
    scores (user attr ``run_scores``, step = run index) instead of its intermediate values (the cv
    score so far). Trials without ``run_scores`` (tunes from before) are passed unchanged."""
    import optuna

    class RunScorePruner(optuna.pruners.BasePruner):
        """``inner`` applied to per-run scores: the paired (fold, seed) values the Wilcoxon test needs."""

        def __init__(self) -> None:
            self.inner = inner

        def prune(self, study: Any, trial: Any) -> bool:
            return bool(self.inner.prune(_RunScoreStudy(study), _as_run_scores(trial)))

    return RunScorePruner()


class _RunScoreStudy:
    """A read-only view of a study whose best trial shows its per-run scores as intermediate values."""

    def __init__(self, study: Any) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    @property
    def best_trial(self) -> Any:
        return _as_run_scores(self._study.best_trial)


def _as_run_scores(trial: Any) -> Any:
    from optuna.trial import TrialState, create_trial

    scores = trial.user_attrs.get(RUN_SCORES_ATTR)
    if not scores:
        return trial
    finished = trial.state != TrialState.RUNNING
    return create_trial(state=trial.state, values=trial.values if finished else None, params=trial.params,
                        distributions=trial.distributions, user_attrs=trial.user_attrs,
                        system_attrs=trial.system_attrs,
                        intermediate_values={int(k): float(v) for k, v in scores.items()})


def wilcoxon_p_threshold(n_runs: int) -> float:
    """The p-value under which ``tune.pruner: wilcoxon`` prunes a trial whose cvs have ``n_runs`` runs.

    Optuna's default 0.1, raised for cvs of fewer than 7 runs to just above ``2 ** -ceil(n_runs / 2)``:
    the exact one-sided p-value of a trial that lost on every one of the first half of its runs. With 0.1
    a 5-run cv cannot be pruned before its 4th run (3 lost runs give p = 0.125), so pruning would save at
    most one run in five.
    """
    half = 2.0 ** -math.ceil(max(n_runs, 1) / 2)
    return max(WILCOXON_P_THRESHOLD, math.nextafter(half, 1.0))


def _cv_wilcoxon_pruner() -> Any:
    """Optuna's ``WilcoxonPruner`` with :func:`wilcoxon_p_threshold` of the best trial's run count (the runs
    of a complete cv); before a best trial exists it never prunes, as Optuna's."""
    import optuna

    def wilcoxon(p_threshold: float) -> Any:
        # tunecv chose this pruner and its threshold, not the user: Optuna's "experimental" warning would only
        # puzzle them at every tune.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.pruners.WilcoxonPruner(p_threshold=p_threshold)

    class CvWilcoxonPruner(optuna.pruners.BasePruner):
        """``WilcoxonPruner`` whose threshold follows the cv's size (see :func:`wilcoxon_p_threshold`)."""

        def __init__(self) -> None:
            self.n_runs: Optional[int] = None
            self.p_threshold = WILCOXON_P_THRESHOLD
            self.inner = wilcoxon(self.p_threshold)

        def prune(self, study: Any, trial: Any) -> bool:
            try:
                n_runs = len(study.best_trial.intermediate_values)
            except ValueError:  # no complete trial yet
                return False
            if n_runs != self.n_runs:
                self.n_runs = n_runs
                self.p_threshold = wilcoxon_p_threshold(n_runs)
                self.inner = wilcoxon(self.p_threshold)
            return bool(self.inner.prune(study, trial))

    return CvWilcoxonPruner()


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """The Optuna pruner named by ``tune.pruner``.

    A tune reports, after each run, the cv score so far as the intermediate value. ``median`` and
    ``percentile`` (keeps the best 25 %) compare those, wait for 2 finished trials and skip step 0;
    ``wilcoxon`` (p-value threshold: :func:`wilcoxon_p_threshold`) is made for cross-validation: it
    compares the per-run scores of a trial with those of the best trial on the same runs (user attr
    ``run_scores``, step = run index);
    ``hyperband`` and ``successive_halving`` use Optuna's defaults.

    Raises:
        ConfigError: an unknown name.
    """
    if name not in PRUNERS:
        raise one_of("tune.pruner", name, PRUNERS)
    import optuna

    pruners = optuna.pruners
    if name == "none":
        return pruners.NopPruner()
    if name == "median":
        return pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if name == "percentile":
        return pruners.PercentilePruner(25.0, n_startup_trials=2, n_warmup_steps=1)
    if name == "wilcoxon":
        return run_score_pruner(_cv_wilcoxon_pruner())
    if name == "hyperband":
        return pruners.HyperbandPruner()
    return pruners.SuccessiveHalvingPruner()
