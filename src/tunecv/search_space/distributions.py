"""The distributions of a search space: each one's keys, types and checks (``DISTRIBUTIONS``), their
spellings, and one validated entry (:class:`Param`) with its Optuna distribution and suggestion."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Union

from tunecv.errors import SearchSpaceError

if TYPE_CHECKING:
    import optuna

Scalar = Union[None, bool, int, float, str]
_SCALAR_TYPES = (type(None), bool, int, float, str)


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
