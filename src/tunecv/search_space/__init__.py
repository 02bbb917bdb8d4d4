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

The package, one module per concept (each light: optuna is imported inside the functions that need it):

- :mod:`~tunecv.search_space.distributions`: ``DISTRIBUTIONS`` (keys, types, checks), their spellings,
  :class:`Param` (one validated entry);
- :mod:`~tunecv.search_space.parsing`: reading a YAML or TOML file, flattening and validating its entries;
- :mod:`~tunecv.search_space.space`: :class:`SearchSpace` (trial values ↔ config values, the grid,
  fingerprint and diff), :func:`load_search_space`, :func:`apply`;
- :mod:`~tunecv.search_space.samplers`: :func:`make_sampler` and the reversed_loguniform wrapper;
- :mod:`~tunecv.search_space.pruners`: :func:`make_pruner`, the per-run-score Wilcoxon pruner.
"""

from __future__ import annotations

from tunecv.search_space.distributions import (
    DISTRIBUTIONS,
    INT,
    LIST,
    NUMBER,
    PLAIN,
    Param,
    Scalar,
    canonical_distribution,
)
from tunecv.search_space.pruners import (
    RUN_SCORES_ATTR,
    WILCOXON_P_THRESHOLD,
    make_pruner,
    run_score_pruner,
    wilcoxon_p_threshold,
)
from tunecv.search_space.samplers import make_sampler
from tunecv.search_space.space import SearchSpace, apply, load_search_space

__all__ = [
    "DISTRIBUTIONS",
    "INT",
    "LIST",
    "NUMBER",
    "PLAIN",
    "RUN_SCORES_ATTR",
    "WILCOXON_P_THRESHOLD",
    "Param",
    "Scalar",
    "SearchSpace",
    "apply",
    "canonical_distribution",
    "load_search_space",
    "make_pruner",
    "make_sampler",
    "run_score_pruner",
    "wilcoxon_p_threshold",
]
