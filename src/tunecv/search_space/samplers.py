"""The Optuna samplers of ``tune.sampler`` (:func:`make_sampler`), seeded; the wrapper that draws
reversed_loguniform entries log-uniformly while the study records the used value; grid under ask/tell."""

from __future__ import annotations

import functools
import importlib.util
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Optional

from tunecv.config import SAMPLERS
from tunecv.errors import ConfigError, one_of
from tunecv.search_space.distributions import Param
from tunecv.search_space.space import SearchSpace

if TYPE_CHECKING:
    import optuna


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
