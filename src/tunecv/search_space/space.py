"""The search space itself (:class:`SearchSpace`): its entries in file order, trial values to config
values and back, the grid of a discrete space, its fingerprint and diff (on ``--resume``), and
:func:`apply` of a trial's values to a config."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from tunecv import conditional
from tunecv.config import CLASS_SECTIONS, Config, check_key, config_from_dict, derive, set_in
from tunecv.errors import ConfigError, SearchSpaceError
from tunecv.search_space.distributions import Param, _copy
from tunecv.search_space.parsing import _parse_document, _read_file

if TYPE_CHECKING:
    import os

    import optuna

_FINGERPRINT_FORMAT = 1


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
    derived = derive(cfg, {key: _copy(value) for key, value in values.items()})  # model/data init args only
    if derived is not None:
        return derived
    data = cfg.to_dict()
    for key, value in values.items():
        set_in(data, key, _copy(value))
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise type(exc)(f"the search-space values {dict(values)!r} make an invalid config: {exc}") from None
