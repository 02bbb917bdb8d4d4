"""Small bundled examples that run offline on CPU in seconds.

- :mod:`tunecv.examples.digits`: a classifier of scikit-learn's 8x8 digits.
- :mod:`tunecv.examples.penguins`: a species classifier of the Palmer penguins, whose ``island`` column
  gives natural groups for region folds.
- :mod:`tunecv.examples.diabetes`: a regressor of scikit-learn's diabetes progression data.
- :mod:`tunecv.examples.plain`: plain ``nn.Module`` nets (and a regularizer) for :class:`tunecv.TaskModule`,
  configured from YAML alone.
- :mod:`tunecv.examples.null`: a one-parameter model and a few scalars whose runs take milliseconds, for
  measuring tunecv's own orchestration (``benchmarks/bench_tune_scale.py``).
"""
