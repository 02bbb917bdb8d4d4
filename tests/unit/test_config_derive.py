"""A trial's config derived from the parsed base config plus the sampled values (``tunecv.config.derive``, module ``derived``)
is the config the full parse gives; a value the full parse rejects is left to it (the one-line error)."""

from __future__ import annotations

import pytest

from tunecv import search_space
from tunecv.config import config_from_dict, derive, load_config, set_in
from tunecv.errors import ConfigError

BASE = {"model": {"class_path": "tunecv.examples.digits.DigitsClassifier", "init_args": {"hidden_dim": 32}},
        "data": {"class_path": "tunecv.examples.digits.DigitsDataModule", "init_args": {"limit": 200}},
        "trainer": {"max_epochs": 2}}


def _full(cfg, values):
    data = cfg.to_dict()
    for key, value in values.items():
        set_in(data, key, value)
    return config_from_dict(data)


@pytest.mark.parametrize("values", [
    {"model.init_args.lr": 0.0123, "model.init_args.hidden_dim": 64},
    {"model.init_args.lr": 1, "model.init_args.dropout": 0.25, "data.init_args.batch_size": 8},
    {"data.init_args.limit": 100},
])
def test_a_derived_config_is_the_fully_parsed_one(values):
    base = load_config(BASE)
    derived = derive(base, values)
    assert derived is not None
    assert derived.to_dict() == _full(base, values).to_dict()
    assert search_space.apply(base, values).to_dict() == derived.to_dict()


@pytest.mark.parametrize("values, message", [
    ({"model.init_args.hidden_dim": 64.5}, "`model.init_args.hidden_dim` must be an int; got 64.5"),
    ({"model.init_args.hidden_dim": "x"}, "`model.init_args.hidden_dim` must be an int; got 'x'"),
    ({"model.init_args.nope": 1}, "unknown config key `model.init_args.nope`"),
])
def test_a_bad_value_is_left_to_the_full_parse_and_its_one_line_error(values, message):
    base = load_config(BASE)
    assert derive(base, values) is None
    with pytest.raises(ConfigError) as info:
        search_space.apply(base, values)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_keys_outside_the_init_args_and_interpolation_take_the_full_parse():
    base = load_config(BASE)
    assert derive(base, {"trainer.max_epochs": 3}) is None
    assert derive(base, {"model.class_path": "tunecv.examples.digits.DigitsClassifier"}) is None
    assert derive(base, {"model.init_args.lr": "${oc.env:LR,0.1}"}) is None
    assert search_space.apply(base, {"trainer.max_epochs": 3}).trainer["max_epochs"] == 3
