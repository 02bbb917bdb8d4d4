"""TaskModule without a Trainer: construction errors, output and target matching, loss calling conventions."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from tunecv.errors import ConfigError
from tunecv.task import TaskModule

REPO = Path(__file__).resolve().parents[2]
MLP = {"class_path": "tunecv.examples.plain.MLP", "init_args": {"in_features": 4, "hidden_dim": 8, "out_features": 3}}
TWO = {"class_path": "tunecv.examples.plain.TwoHeadMLP", "init_args": {"in_features": 4, "hidden_dim": 8,
                                                                        "n_classes": 3}}
CE = {"class_path": "torch.nn.CrossEntropyLoss"}
MSE = {"fn": "torch.nn.functional.mse_loss"}
CALLS: list[tuple[str, tuple, dict]] = []


# -- importable nets and regularizers used by the specs below -------------------------------------------------
class DictNet(nn.Module):
    def __init__(self, extra: bool = True) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.extra = extra

    def forward(self, x):
        out = {"digit": self.lin(x), "ink": self.lin(x).sum(1)}
        if self.extra:
            out["hidden"] = x
        return out


class ConstNet(nn.Module):
    """Returns whatever ``kind`` says, to test output matching."""

    def __init__(self, kind: str = "tensor") -> None:
        super().__init__()
        self.kind = kind
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        y = self.lin(x)
        return {"tensor": y, "tuple3": (y, y, y), "list2": [y, y.sum(1)], "str": "oops"}[self.kind]


def by_keyword(digit):
    CALLS.append(("by_keyword", (), {"digit": digit}))
    return digit.pow(2).mean()


def by_kwargs(**preds):
    CALLS.append(("by_kwargs", (), preds))
    return torch.tensor(1.0)


def by_position(a, b):
    CALLS.append(("by_position", (a, b), {}))
    return torch.tensor(2.0)


def needs_other(digit, scale):
    return digit.mean() * scale


def one_arg(x):
    return x.mean()


class ModuleRegularizer(nn.Module):
    def forward(self, ink):
        CALLS.append(("module", (), {"ink": ink}))
        return ink.abs().mean()


def make(**kw) -> TaskModule:
    args = {"net": TWO, "pred_names": ["digit", "ink"], "losses": {"digit": CE, "ink": MSE}}
    args.update(kw)
    return TaskModule(**args)


def batch(n: int = 5, as_dict: bool = True):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    digit = torch.randint(0, 3, (n,), generator=g)
    ink = torch.randn(n, generator=g)
    return (x, {"digit": digit, "ink": ink}) if as_dict else (x, digit, ink)


# -- construction -------------------------------------------------------------------------------------------
def test_prediction_without_a_loss_is_named():
    with pytest.raises(ConfigError, match=re.escape(
            "`model.init_args.losses` has no entry for prediction 'ink'; predictions: digit, ink")):
        make(losses={"digit": CE})


def test_misspelled_loss_becomes_a_regularizer_and_the_prediction_lacks_a_loss():
    with pytest.raises(ConfigError, match="no entry for prediction 'ink'"):
        make(losses={"digit": CE, "inc": MSE})


def test_metric_for_unknown_prediction_is_named():
    with pytest.raises(ConfigError, match=r"`model.init_args.metrics` has an entry for unknown prediction 'age'; "
                                          r"predictions: digit, ink"):
        make(metrics={"age": "torchmetrics.MeanAbsoluteError"})


@pytest.mark.parametrize(("losses", "message"), [
    ({"digit": CE, "ink": {"fn": "tunecv.examples.plain.logit_penalty"}}, r"losses.ink` .* must accept"),
    ({"digit": CE, "ink": MSE, "r": {"fn": "tests.unit.test_task.needs_other"}}, r"also requires scale"),
    ({"digit": CE, "ink": MSE, "r": {"fn": "tests.unit.test_task.one_arg"}}, r"or all 2 by position"),
    ({"digit": {"class_path": "torch.nn.CrossEntropyLoss", "fn": "x.y"}, "ink": MSE}, "exactly one of"),
    ({"digit": {"class_path": "torch.nn.CrossEntropyLoss", "wieght": 2}, "ink": MSE}, "unknown key 'wieght'"),
    ({"digit": {"class_path": "torch.nn.CrossEntropyLoss", "weight": "big"}, "ink": MSE}, "weight` must be a number"),
    ({"digit": {"fn": "torch.nn.CrossEntropyLoss", "init_args": {"label_smoothing": 0.1}}, "ink": MSE},
     "give it as `class_path`"),
    ({"digit": {"class_path": "torch.nn.CrossEntropyLoss", "init_args": {"smoothing": 0.1}}, "ink": MSE},
     r"`model.init_args.losses.digit.init_args.smoothing`: torch.nn.modules.loss.CrossEntropyLoss takes no argument"),
    ({"digit": "torch.nn.NoSuchLoss", "ink": MSE}, "must be importable"),
    (["digit", "ink"], "must map each prediction"),
])
def test_bad_loss_specs_are_one_line_errors(losses, message):
    with pytest.raises(ConfigError, match=message) as info:
        make(losses=losses)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("kw", "message"), [
    ({"pred_names": ["digit", "digit"]}, "must be unique"),
    ({"pred_names": []}, "at least one prediction"),
    ({"pred_names": ["loss", "ink"], "losses": {"loss": CE, "ink": MSE}}, "other than 'loss'"),
    ({"pred_names": ["a/b", "ink"]}, "without '/'"),
    ({"lr": 0.0}, "lr` must be > 0"),
    ({"warmup_steps": -1}, "warmup_steps` must be an int >= 0"),
    ({"net": {"class_path": "torch.nn.Linear", "init_args": {"in_feat": 4}}}, r"`model.init_args.net.init_args.in_feat`: .*Linear takes no argument .in_feat."),
    ({"net": {"class_path": "torch.optim.SGD"}}, "subclass of torch.nn"),
    ({"metrics": {"digit": [{"class_path": "torchmetrics.MeanAbsoluteError"},
                            {"class_path": "torchmetrics.MeanAbsoluteError"}]}}, "two metrics as 'MeanAbsoluteError'"),
    ({"metrics": {"digit": [{"class_path": "torch.nn.Linear"}]}}, "subclass of torchmetrics"),
    ({"metrics": {"digit": {"class_path": "torchmetrics.MeanAbsoluteError", "nmae": "x"}}}, "unknown key 'nmae'"),
])
def test_bad_construction_arguments_are_one_line_errors(kw, message):
    with pytest.raises(ConfigError, match=message) as info:
        make(**kw)
    assert "\n" not in str(info.value)


def test_hyperparameters_rebuild_the_same_module():
    model = make(metrics={"digit": {"class_path": "torchmetrics.classification.MulticlassAccuracy",
                                    "init_args": {"num_classes": 3}, "name": "acc"}}, warmup_steps=3)
    assert model.hparams["net"] == TWO and model.hparams["warmup_steps"] == 3
    again = TaskModule(**model.hparams)
    again.load_state_dict(model.state_dict())
    x = batch()[0]
    model.eval()
    again.eval()
    torch.testing.assert_close(model(x)["digit"], again(x)["digit"])
    assert again._metric_names[0][:2] == ("digit", "acc")


def test_a_module_instance_is_accepted_from_python_and_left_out_of_hparams():
    model = TaskModule(net=nn.Linear(4, 3), pred_names="y", losses={"y": nn.CrossEntropyLoss, "l1": by_kwargs})
    assert "net" not in model.hparams and model.pred_names == ["y"]
    x, t = batch()
    out = model.compute_losses((x, t["digit"]))
    torch.testing.assert_close(out.terms["y"], nn.functional.cross_entropy(out.preds["y"], t["digit"]))
    assert out.terms["l1"] == 1.0


# -- outputs and targets ------------------------------------------------------------------------------------
def test_outputs_match_by_order_and_by_name():
    x = batch()[0]
    tuple_out = make()(x)
    assert list(tuple_out) == ["digit", "ink"]
    assert tuple_out["digit"].shape == (5, 3) and tuple_out["ink"].shape == (5,)
    dict_out = make(net={"class_path": "tests.unit.test_task.DictNet"})(x)
    assert list(dict_out) == ["digit", "ink"]  # extra keys are ignored
    single = TaskModule(net=MLP, pred_names=["digit"], losses={"digit": CE})(x)
    assert list(single) == ["digit"]


@pytest.mark.parametrize(("kind", "names", "message"), [
    ("tensor", ["digit", "ink"], "returns one tensor but `model.init_args.pred_names` lists 2: digit, ink"),
    ("tuple3", ["digit", "ink"], "returns 3 outputs but `model.init_args.pred_names` lists 2"),
    ("list2", ["digit"], "returns 2 outputs but `model.init_args.pred_names` lists 1: digit"),
    ("str", ["digit"], "must return a tensor, a tuple or a dict; got str"),
])
def test_outputs_that_do_not_match_pred_names(kind, names, message):
    model = TaskModule(net={"class_path": "tests.unit.test_task.ConstNet", "init_args": {"kind": kind}},
                       pred_names=names, losses={n: MSE for n in names})
    with pytest.raises(ConfigError, match=re.escape(message)):
        model.compute_losses((batch()[0], {n: torch.zeros(5) for n in names}))


def test_dict_output_without_a_prediction_is_named():
    model = make(net={"class_path": "tests.unit.test_task.DictNet"}, pred_names=["digit", "age"],
                 losses={"digit": CE, "age": MSE})
    with pytest.raises(ConfigError, match=r"returns a dict without 'age' \(its keys: digit, ink, hidden\)"):
        model(batch()[0])


def test_targets_match_by_name_order_and_dict_batch():
    model = make()
    x, targets = batch()
    by_name = model.split_batch((x, {"ink": targets["ink"], "digit": targets["digit"], "id": 1}))[1]
    assert list(by_name) == ["digit", "ink"] and by_name["ink"] is targets["ink"]
    flat = model.split_batch(batch(as_dict=False))[1]
    torch.testing.assert_close(flat["digit"], targets["digit"])
    nested = model.split_batch((x, (targets["digit"], targets["ink"])))[1]
    assert nested["ink"] is targets["ink"]
    inputs, from_dict = model.split_batch({"x": x, **targets})
    assert inputs is x and from_dict["digit"] is targets["digit"]
    assert make(input_key="pixels").split_batch({"pixels": x, **targets})[0] is x
    single = TaskModule(net=MLP, pred_names=["digit"], losses={"digit": CE})
    assert single.split_batch((x, targets["digit"]))[1]["digit"] is targets["digit"]


@pytest.mark.parametrize(("b", "message"), [
    ("missing", "the batch has no target for prediction 'ink' (its targets: digit)"),
    ("three", "the batch has 3 targets but `model.init_args.pred_names` lists 2"),
    ("one", "the batch has one target but `model.init_args.pred_names` lists 2"),
    ("nokey", "a dict batch must hold its inputs under `model.init_args.input_key` ('x'); its keys: pixels"),
    ("bare", "a batch must be (inputs, targets)"),
])
def test_targets_that_do_not_match(b, message):
    x, t = batch()
    value = {"missing": (x, {"digit": t["digit"]}), "three": (x, t["digit"], t["ink"], t["ink"]),
             "one": (x, t["digit"]), "nokey": {"pixels": x}, "bare": x}[b]
    with pytest.raises(ConfigError, match=re.escape(message)):
        make().compute_losses(value)


# -- losses and regularizers ----------------------------------------------------------------------------------
def test_total_is_the_weighted_sum_of_terms_and_regularizers_get_predictions_their_way():
    CALLS.clear()
    model = make(losses={
        "digit": {**CE, "weight": 2.0},
        "ink": {"fn": "torch.nn.functional.smooth_l1_loss", "init_args": {"beta": 0.5}, "weight": 0.5},
        "kw": {"fn": "tests.unit.test_task.by_keyword", "weight": 0.1},
        "all": "tests.unit.test_task.by_kwargs",
        "pos": {"fn": "tests.unit.test_task.by_position", "weight": 3},
        "mod": {"class_path": "tests.unit.test_task.ModuleRegularizer"},
    })
    x, t = batch()
    out = model.compute_losses((x, t))
    assert list(out.terms) == ["digit", "ink", "kw", "all", "pos", "mod"]
    preds = out.preds
    torch.testing.assert_close(out.terms["digit"], 2 * nn.functional.cross_entropy(preds["digit"], t["digit"]))
    torch.testing.assert_close(out.terms["ink"], 0.5 * nn.functional.smooth_l1_loss(preds["ink"], t["ink"], beta=0.5))
    torch.testing.assert_close(out.terms["kw"], 0.1 * preds["digit"].pow(2).mean())
    torch.testing.assert_close(out.terms["pos"], torch.tensor(6.0))
    torch.testing.assert_close(out.loss, sum(out.terms.values()))
    calls = {name: (args, kwargs) for name, args, kwargs in CALLS}
    assert list(calls["by_keyword"][1]) == ["digit"]
    assert list(calls["by_kwargs"][1]) == ["digit", "ink"]
    assert calls["by_position"][0][0] is preds["digit"] and calls["by_position"][0][1] is preds["ink"]
    assert list(calls["module"][1]) == ["ink"]
    assert len(model.loss_modules) == 2  # CrossEntropyLoss and ModuleRegularizer move with the model
    out.loss.backward()
    assert model.net.body[0].weight.grad is not None


def test_a_loss_that_does_not_accept_its_prediction_fails_on_the_first_batch():
    model = make(losses={"digit": MSE, "ink": MSE})
    with pytest.raises(ConfigError, match=r"`model.init_args.losses.digit` \(torch.nn.functional.mse_loss\) does "
                                          r"not accept prediction 'digit' \(float32 \[5, 3\]\) with its target "
                                          r"\(int64 \[5\]\)") as info:
        model.compute_losses(batch())
    assert "\n" not in str(info.value)


def test_a_loss_that_would_broadcast_fails_on_the_first_batch():
    model = make()
    x, t = batch()
    with pytest.raises(ConfigError, match=r"losses.ink` .* would broadcast .*same shape"):
        model.compute_losses((x, {"digit": t["digit"], "ink": t["ink"][:, None]}))


def test_a_loss_must_return_a_scalar():
    model = make(losses={"digit": {**CE, "init_args": {"reduction": "none"}}, "ink": MSE})
    with pytest.raises(ConfigError, match=r"losses.digit` .* must return a scalar tensor; got float32 \[5\]"):
        model.compute_losses(batch())


def test_a_net_that_fails_on_the_first_batch_is_named():
    model = make(net={"class_path": "tunecv.examples.plain.TwoHeadMLP", "init_args": {"in_features": 7}})
    with pytest.raises(ConfigError, match=r"`model.init_args.net` fails on the first batch \(inputs float32 \[5, 4\]\)"):
        model.compute_losses(batch())


def test_a_metric_that_does_not_accept_its_prediction_fails_on_the_first_batch():
    model = make(metrics={"digit": [{"class_path": "torchmetrics.classification.MulticlassAccuracy",
                                     "init_args": {"num_classes": 3}},
                                    {"class_path": "torchmetrics.MeanAbsoluteError"}]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a Trainer
        with pytest.raises(ConfigError, match=r"`model.init_args.metrics.digit\[1\]` \(torchmetrics.MeanAbsoluteError\) "
                                              r"does not accept prediction 'digit' \(float32 \[5, 3\]\)"):
            model.validation_step(batch(), 0)


def test_after_the_first_batch_errors_are_not_rewritten():
    model = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.validation_step(batch(), 0)
    x, t = batch()
    with pytest.raises(RuntimeError):
        model.compute_losses((x, {"digit": t["digit"].float(), "ink": t["ink"]}))


def test_predict_step_returns_named_predictions():
    model = make()
    x, t = batch()
    assert list(model.predict_step((x, t), 0)) == ["digit", "ink"]
    assert model.predict_step(x, 0)["ink"].shape == (5,)
    assert model.predict_step({"x": x}, 0)["digit"].shape == (5, 3)


def test_default_optimizer_is_adam_with_lr_and_weight_decay():
    opt = make(lr=0.05, weight_decay=0.01).configure_optimizers()
    assert isinstance(opt, torch.optim.Adam)
    assert opt.param_groups[0]["lr"] == 0.05 and opt.param_groups[0]["weight_decay"] == 0.01


def test_docs_page_includes_only_existing_config_files():
    page = (REPO / "docs" / "plain-module.md").read_text()
    included = re.findall(r'--8<-- "([^"]+)"', page)
    assert {"configs/plain/train.yaml", "configs/plain/space.yaml", "configs/plain/two_heads.yaml"} <= set(included)
    for path in included:
        assert (REPO / path).is_file(), path
