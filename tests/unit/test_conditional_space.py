"""Conditional search spaces over classes (tunecv.conditional): parsing, names, sampling, checks."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pytest
import yaml

from tunecv.config import config_from_dict
from tunecv.errors import SearchSpaceError
from tunecv.search_space import SearchSpace, apply, make_sampler

SGD = {"class_path": "torch.optim.SGD",
       "init_args": {"lr": {"distribution": "loguniform", "low": 1.0e-3, "high": 0.3},
                     "momentum": {"low": 0.5, "high": 0.99}},
       "also": {"lr_scheduler": [{"class_path": "torch.optim.lr_scheduler.StepLR",
                                  "init_args": {"step_size": [2, 4]}},
                                 {"class_path": "torch.optim.lr_scheduler.ExponentialLR",
                                  "init_args": {"gamma": {"low": 0.8, "high": 0.99}}}]}}
ADAMW = {"class_path": "torch.optim.AdamW",
         "init_args": {"lr": {"distribution": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
                       "betas": {"distribution": "constant", "value": [0.9, 0.99]},
                       "weight_decay": [0.0, 0.01]}}
SPACE = {"hyperparameters": {
    "optimizer": {"distribution": "choice", "choices": [SGD, ADAMW]},
    "model.init_args.dropout": {"low": 0.0, "high": 0.5, "when": {"optimizer.class_path": "torch.optim.AdamW"}},
}}
ARGS = {"torch.optim.SGD": {"lr", "momentum"}, "torch.optim.AdamW": {"lr", "betas", "weight_decay"},
        "torch.optim.lr_scheduler.StepLR": {"step_size"}, "torch.optim.lr_scheduler.ExponentialLR": {"gamma"}}
CFG = {"model": {"class_path": "tunecv.examples.digits.DigitsClassifier"},
       "data": {"class_path": "tunecv.examples.digits.DigitsDataModule"}}


def active(params: dict) -> set[str]:
    """The names a trial must have, from the class it chose."""
    names = {"optimizer.class_path"}
    if params["optimizer.class_path"] == "torch.optim.SGD":
        names |= {"optimizer[SGD].init_args.lr", "optimizer[SGD].init_args.momentum",
                  "optimizer[SGD].lr_scheduler.class_path"}
        sched = params["optimizer[SGD].lr_scheduler.class_path"]
        names.add("optimizer[SGD].lr_scheduler[StepLR].init_args.step_size" if sched.endswith("StepLR")
                  else "optimizer[SGD].lr_scheduler[ExponentialLR].init_args.gamma")
    else:  # betas: a list constant, which Optuna does not record
        names |= {"optimizer[AdamW].init_args.lr", "optimizer[AdamW].init_args.weight_decay",
                  "model.init_args.dropout"}
    return names


def test_names_say_their_path_and_yaml_implicit_and_toml_agree(tmp_path: Path):
    space = SearchSpace.from_mapping(SPACE)
    assert space.conditional and not space.is_grid_compatible
    assert list(space.params) == [
        "optimizer.class_path", "optimizer[SGD].init_args.lr", "optimizer[SGD].init_args.momentum",
        "optimizer[SGD].lr_scheduler.class_path", "optimizer[SGD].lr_scheduler[StepLR].init_args.step_size",
        "optimizer[SGD].lr_scheduler[ExponentialLR].init_args.gamma", "optimizer[AdamW].init_args.lr",
        "optimizer[AdamW].init_args.betas", "optimizer[AdamW].init_args.weight_decay", "model.init_args.dropout"]
    implicit = {"hyperparameters": {"optimizer": [SGD, ADAMW],
                                    "model.init_args.dropout": SPACE["hyperparameters"]["model.init_args.dropout"]}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(implicit, sort_keys=False))
    toml = """
[[hyperparameters.optimizer]]
class_path = "torch.optim.SGD"
init_args = {lr = {distribution = "loguniform", low = 1.0e-3, high = 0.3}, momentum = {low = 0.5, high = 0.99}}
also = {lr_scheduler = [{class_path = "torch.optim.lr_scheduler.StepLR", init_args = {step_size = [2, 4]}}, {class_path = "torch.optim.lr_scheduler.ExponentialLR", init_args = {gamma = {low = 0.8, high = 0.99}}}]}
[[hyperparameters.optimizer]]
class_path = "torch.optim.AdamW"
init_args = {lr = {distribution = "loguniform", low = 1.0e-4, high = 1.0e-2}, betas = {distribution = "constant", value = [0.9, 0.99]}, weight_decay = [0.0, 0.01]}
[hyperparameters."model.init_args.dropout"]
low = 0.0
high = 0.5
when = {"optimizer.class_path" = "torch.optim.AdamW"}
"""
    (tmp_path / "s.toml").write_text(toml)
    for path in (tmp_path / "s.yaml", tmp_path / "s.toml"):
        other = SearchSpace.from_file(path)
        assert {k: p.to_dict() for k, p in other.params.items()} == {k: p.to_dict() for k, p in space.params.items()}
    assert space.diff(space.fingerprint()) == []  # the fingerprint reads back into the same space
    with pytest.raises(SearchSpaceError, match="needs a space without conditions"):
        space.grid()


def test_tpe_samples_only_active_parameters_and_values_round_trip():
    space = SearchSpace.from_mapping(SPACE)
    sampler = make_sampler("tpe", seed=0, space=space)
    assert sampler._multivariate and sampler._group
    study = optuna.create_study(sampler=sampler)
    seen = set()
    for _ in range(30):
        trial = study.ask()
        values = space.suggest(trial)
        assert set(trial.params) == active(trial.params)  # nothing sampled that the chosen classes lack
        assert {k for k, v in values.items() if v is not None} == active(trial.params) | (
            {"optimizer[AdamW].init_args.betas"} if "optimizer[AdamW].init_args.lr" in trial.params else set())
        cfg = space.to_config(values)
        opt = cfg["optimizer"]
        assert set(opt["init_args"]) == ARGS[opt["class_path"]]
        if "lr_scheduler" in cfg:
            assert opt["class_path"] == "torch.optim.SGD"
            assert set(cfg["lr_scheduler"]["init_args"]) == ARGS[cfg["lr_scheduler"]["class_path"]]
        assert ("model.init_args.dropout" in cfg) == (opt["class_path"] == "torch.optim.AdamW")
        assert space.params_from_trial(trial.params) == values
        assert space.to_trial_params(values) == trial.params
        seen.add(opt["class_path"])
        # a value that depends on the choice: SGD trials score better the higher their momentum
        study.tell(trial, values["optimizer[SGD].init_args.momentum"] or 0.0)
    assert seen == {"torch.optim.SGD", "torch.optim.AdamW"}
    built = apply(config_from_dict(CFG), space.to_config(values))
    assert built.optimizer["class_path"] in ARGS


def test_nested_choice_in_init_args_and_one_class_mapping():
    space = SearchSpace.from_mapping({"hyperparameters": {"model": [
        {"class_path": "tunecv.examples.plain.MLP",
         "init_args": {"hidden_dim": [8, 16]}},
        {"class_path": "tunecv.TaskModule",
         "init_args": {"net": [{"class_path": "tunecv.examples.plain.MLP", "init_args": {"dropout": [0.0, 0.2]}},
                               {"class_path": "tunecv.examples.plain.TwoHeadMLP"}]}}]}})
    name = "model[TaskModule].init_args.net[MLP].init_args.dropout"
    assert name in space.params and "model[TaskModule].init_args.net.class_path" in space.params
    values = space.replay(lambda p: p.values()[-1] if p.is_discrete else p.low)
    assert space.to_config(values)["model"] == {
        "class_path": "tunecv.TaskModule",
        "init_args": {"net": {"class_path": "tunecv.examples.plain.TwoHeadMLP", "init_args": {}}}}
    assert values[name] is None


@pytest.mark.parametrize(("bad", "needle"), [
    ({"optimizer": [{"class_path": "torch.optim.SGD", "init_args": {"betas": [[0.9, 0.99]]}}]}, "`choices` must be"),
    ({"optimizer": [{"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}, "extra": 1}]}, "unknown key 'extra'"),
    ({"optimizer": [{"class_path": "torch.optim.SGD"}, {"class_path": "torch.optim.SGD"}]}, "must be distinct"),
    ({"x.y": {"low": 0, "high": 1, "when": {"optimizer.class_path": "SGD"}}}, "not a parameter declared before"),
    ({"optimizer": [{"class_path": "torch.optim.SGD"}],
      "model.init_args.lr": {"low": 0.1, "high": 0.2, "when": {"optimizer.class_path": "Adam"}}}, "must be one of"),
    ({"optimizer": [{"class_path": "torch.optim.SGD"}, 3]}, "must be a mapping with `class_path`"),
])
def test_malformed_conditional_entries_are_one_line_errors(bad, needle):
    with pytest.raises(SearchSpaceError, match=needle) as info:
        SearchSpace.from_mapping({"hyperparameters": bad}, "s.yaml")
    assert "\n" not in str(info.value) and str(info.value).startswith("s.yaml: ")


def test_an_argument_the_class_does_not_take_names_the_class_and_the_valid_ones():
    space = SearchSpace.from_mapping({"hyperparameters": {"optimizer": [
        {"class_path": "torch.optim.AdamW", "init_args": {"betas": {"distribution": "constant", "value": [0.9, 0.9]}}},
        {"class_path": "SGD", "init_args": {"betas": {"distribution": "constant", "value": [0.9, 0.9]}}}]}},
        "s.yaml")
    with pytest.raises(SearchSpaceError) as info:
        space.check_keys(config_from_dict(CFG))
    msg = str(info.value)
    assert msg.startswith("s.yaml: `optimizer[SGD].init_args.betas`: SGD takes no argument `betas`; valid: params, lr, ")
    assert "momentum" in msg and "\n" not in msg
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SearchSpace.from_mapping({"hyperparameters": {"model": [
            {"class_path": "tunecv.examples.digits.DigitsClassifier", "init_args": {"hidden_dim": [8, 16]}},
            {"class_path": "tunecv.examples.digits.DigitsConvNet", "init_args": {"channels": [2, 4]}}]}}
        ).check_keys(config_from_dict(CFG))
    with pytest.raises(SearchSpaceError, match="DigitsConvNet takes no argument `hidden_dim`; valid: channels, kernel_size"):
        SearchSpace.from_mapping({"hyperparameters": {"model": [
            {"class_path": "tunecv.examples.digits.DigitsConvNet", "init_args": {"hidden_dim": [8, 16]}}]}}
        ).check_keys(config_from_dict(CFG))


def test_constraints_parse_and_reach_the_samplers_that_take_them():
    from tunecv.constraints import constraints_func, evaluate, parse_constraints
    from tunecv.errors import ConfigError

    cs = parse_constraints(["params/count<=5000", "val/acc >= 0.5"])
    assert [str(c) for c in cs] == ["params/count<=5000", "val/acc>=0.5"]
    import pandas as pd
    frame = pd.DataFrame({"status": ["completed", "completed", "failed"], "params/count": [4000.0, 6000.0, 1e9],
                          "val/acc": [0.4, 0.4, None]})
    assert evaluate(cs, frame) == pytest.approx([0.0, 0.1])
    assert evaluate(parse_constraints(["never/logged<=1"]), frame) == [float("inf")]
    for bad in (["params/count<5000"], ["x<=abc"], "x<=1", ["<=3"]):
        with pytest.raises(ConfigError, match=r"tune\.constraints"):
            parse_constraints(bad)
    with pytest.raises(ConfigError, match=r"tune\.constraints\[0\]"):
        config_from_dict({**CFG, "tune": {"constraints": ["val/acc=1"]}})
    func = constraints_func(2)
    with warnings.catch_warnings():  # deprecated from Optuna 5 on, where a tune sets Trial.set_constraint
        warnings.simplefilter("ignore", FutureWarning)
        for name in ("tpe", "nsga2", "gp"):
            assert make_sampler(name, seed=0, constraints_func=func)._constraints_func is func
