"""A bad config file or override is one line naming the full dotted key, the constraint and the value.

The key is found by bisecting the input, the constraint from the key's type: never from jsonargparse's
wording. (Parsing imports lightning: LightningCLI's parser.)
"""

from __future__ import annotations

import typing

import pytest
import yaml

from tunecv import config
from tunecv.config import load_config
from tunecv.errors import ConfigError

DIGITS = {"model": {"class_path": "tunecv.examples.digits.DigitsClassifier"},
          "data": {"class_path": "tunecv.examples.digits.DigitsDataModule"}}
ES = "lightning.pytorch.callbacks.EarlyStopping"

CASES = [
    ({"model": {"init_args": {"hidden_dim": "abc"}}}, "`model.init_args.hidden_dim` must be an int; got 'abc'"),
    ({"trainer": {"max_epochs": "two"}}, "`trainer.max_epochs` must be an int or null; got 'two'"),
    ({"trainer": {"callbacks": [{"class_path": ES, "init_args": {"monitor": "val/loss", "patiense": 3}}]}},
     f"unknown config key `trainer.callbacks[0].init_args.patiense`: {ES} takes no argument 'patiense'"),
    ({"split": {"fold_method": "regoin"}},
     "`split.fold_method` must be one of none, kfold, shuffle, stratified, region, region-stratified; got 'regoin'"),
    ({"split": {"foldmethod": "kfold"}}, "unknown config key `split.foldmethod`; valid keys of `split`: test_split"),
    ({"optimizer": {"class_path": "Adamm"}}, "`optimizer.class_path` must be importable; got 'torch.optim.Adamm'"),
    ({"model": {"class_path": "torch.nn.Linear"}},
     "`model.class_path` must name a subclass of lightning.pytorch.core.module.LightningModule; got 'torch.nn.Linear'"),
    ({"seed_everything": "often"}, "`seed_everything` must be true or false or an int; got 'often'"),
    ({"modle": {}}, "unknown config key `modle` in "),
]


def _merge(base: dict, change: dict) -> dict:
    out = dict(base)
    for key, value in change.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest.mark.parametrize(("change", "message"), CASES, ids=[m.split("`")[1] for _, m in CASES])
def test_a_bad_key_in_a_file_names_its_full_dotted_key(tmp_path, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_merge(DIGITS, change)))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_the_lists_of_options_are_derived_from_the_literals():
    assert typing.get_args(config.SamplerName) == config.SAMPLERS and "tpe" in config.SAMPLERS
    assert typing.get_args(config.PrunerName) == config.PRUNERS
    assert config.PARALLEL_STRATEGIES == ("cv-parallel", "tune-parallel")
    hints = typing.get_type_hints(config.SplitConfig)
    assert hints["test_split"] is config.TestSplit


def test_types_in_words():
    assert config._describe_type(typing.Optional[int]) == "an int or null"
    assert config._describe_type(typing.Literal["a", "b"]) == "one of a, b"
    assert config._describe_type(list[str]) == "a list of strings"


def test_shorthand_and_full_form_give_the_same_config():
    short = load_config(DIGITS, overrides={"model.hidden_dim": 8, "optimizer": "SGD", "optimizer.lr": 0.3})
    full = load_config(DIGITS, overrides={"model.init_args.hidden_dim": 8,
                                          "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.3}}})
    assert short == full and short.model["init_args"]["hidden_dim"] == 8
