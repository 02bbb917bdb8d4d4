"""A conditional tune over two model classes and two optimizers on the bundled digits."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import optuna
import yaml

from tunecv.cli import main
from tunecv.config import _resolve_class
from tunecv.results import read_run_infos
from tunecv.search_space import SearchSpace
from tunecv.tune import tune

REPO = Path(__file__).resolve().parents[2]
SPACE = REPO / "configs" / "digits" / "space_conditional.yaml"


def digits_cfg(tmp_path: Path, space: Path = SPACE, **tune_keys) -> dict:
    return {
        "artifact_dir": str(tmp_path / "artifacts"),
        "model": {"class_path": "tunecv.examples.digits.DigitsClassifier", "init_args": {"hidden_dim": 16}},
        "data": {"class_path": "tunecv.examples.digits.DigitsDataModule", "init_args": {"limit": 200}},
        "split": {"fold_method": "stratified", "total_folds": 2, "stratify_column": "label"},
        "trainer": {"max_epochs": 1, "enable_progress_bar": False, "enable_model_summary": False},
        "accelerator": "cpu", "devices": [0],
        "cv": {"n_seeds": 1, "n_folds": 1, "scoring_metric": ["val/acc:higher"]},
        "tune": {"search_space": str(space), "n_trials": 6, "seed": 3, **tune_keys},
    }


def test_conditional_tune_builds_each_class_with_exactly_its_arguments(tmp_path, capsys):
    res = tune(digits_cfg(tmp_path), name="c", progress=False)
    tdir = tmp_path / "artifacts" / "c"
    space = SearchSpace.from_file(SPACE)
    study = optuna.load_study(study_name="c", storage=f"sqlite:///{tdir / 'optuna.db'}")  # plain Optuna reads it
    assert len(study.trials) == 6
    df = read_run_infos(tdir / "run_infos.parquet")
    classes = set()
    for t in study.trials:
        values = t.user_attrs["config_values"]
        assert set(values) == set(space.params)
        active = {k for k, v in values.items() if v is not None}
        # only the parameters of the chosen classes exist in the trial (betas: a list constant, not recorded)
        assert set(t.params) == active - {"optimizer[AdamW].init_args.betas"}
        row = df[df["trial"] == t.number].iloc[0]
        for k, v in values.items():  # the tune's table: inactive parameters are empty
            assert (v is None) == (row[k] is None or (isinstance(row[k], float) and math.isnan(row[k]))), k
        run_cfg = yaml.safe_load((tdir / row.cv_name / f"{row.run_name}-{row.run_id}" / "config.yaml").read_text())
        for section in ("model", "optimizer", "lr_scheduler"):
            spec = run_cfg.get(section)
            if spec is None:
                assert section == "lr_scheduler" and values["optimizer.class_path"] == "torch.optim.AdamW"
                continue
            classes.add(spec["class_path"])
            label = spec["class_path"].rsplit(".", 1)[-1]
            prefix = (f"optimizer[SGD].lr_scheduler[{label}]" if section == "lr_scheduler" else f"{section}[{label}]")
            declared = {k.split(".init_args.")[-1]: k for k in space.params if k.startswith(prefix + ".init_args.")}
            # the resolved config holds the class's defaults too: its arguments and no other class's
            cls = _resolve_class(spec["class_path"], section)
            assert set(declared) <= set(spec["init_args"]) <= set(inspect.signature(cls).parameters), spec
            for arg, name in declared.items():
                assert spec["init_args"][arg] == values[name] or list(spec["init_args"][arg]) == values[name]
        assert ("gradient_clip_val" in run_cfg["trainer"]) == (values["optimizer.class_path"] == "torch.optim.AdamW")
    assert {"tunecv.examples.digits.DigitsClassifier", "tunecv.examples.digits.DigitsConvNet",
            "torch.optim.SGD", "torch.optim.AdamW"} <= classes
    assert res.best_params == study.trials[res.best_trial].user_attrs["config_values"]

    capsys.readouterr()
    assert main(["report", str(tdir), "--format", "json", "--no-plots"]) == 0
    summary = json.loads(capsys.readouterr().out)
    for entry in summary["leaderboard"]:  # the leaderboard shows no value for an inactive parameter
        sgd = entry["params"]["optimizer.class_path"] == "torch.optim.SGD"
        assert ("optimizer[AdamW].init_args.lr" in entry["params"]) == (not sgd)
        assert ("optimizer[SGD].init_args.momentum" in entry["params"]) == sgd


def test_an_argument_the_class_lacks_stops_the_tune_before_training(tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"hyperparameters": {"optimizer": [
        {"class_path": "torch.optim.SGD", "init_args": {"lr": [0.1], "weight_decay": [0.0, 0.1]}},
        {"class_path": "torch.optim.Adam", "init_args": {"momentum": {"low": 0.5, "high": 0.9}}}]}}))
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(digits_cfg(tmp_path, space)))
    assert main(["tune", "--config", str(path), "--name", "bad"]) == 2
    err = capsys.readouterr().err.strip()
    assert "`optimizer[Adam].init_args.momentum`: torch.optim.Adam takes no argument `momentum`; valid: " in err
    assert "betas" in err and "\n" not in err
    assert not (tmp_path / "artifacts").exists()


def test_a_constraint_half_the_space_breaks_never_gives_an_infeasible_best(tmp_path, capsys):
    # DigitsConvNet logs params/count: 350, 690, 1370, 2730 weights for 2, 4, 8, 16 channels
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"hyperparameters": {"model.init_args.channels": [2, 4, 8, 16]}}))
    cfg = digits_cfg(tmp_path, space, n_trials="grid", constraints=["params/count<=1000"])
    cfg["model"] = {"class_path": "tunecv.examples.digits.DigitsConvNet"}
    res = tune(cfg, name="k", progress=False)
    trials = {t.number: t for t in res.study.trials}
    feasible = {n: t.user_attrs["feasible"] for n, t in trials.items()}
    assert sorted(feasible.values()) == [False, False, True, True]
    assert feasible[res.best_trial] and res.best_params["model.init_args.channels"] in (2, 4)
    values = trials[res.best_trial].user_attrs["constraint_values"]
    assert len(values) == 1 and values[0] <= 0
    if hasattr(optuna.trial.Trial, "set_constraint"):  # Optuna >= 5: its own samplers read these
        assert all(any(k.endswith("params/count<=1000") for k in t.system_attrs) for t in trials.values())
    best_any = max(trials.values(), key=lambda t: t.value)
    record = res.study.user_attrs["tunecv:best_trial"]
    assert record["number"] == res.best_trial
    if not feasible[best_any.number]:
        assert "breaks tune.constraints" in record["reason"]
    capsys.readouterr()
    assert main(["report", str(tmp_path / "artifacts" / "k"), "--format", "json", "--no-plots"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["best"]["trial"] == res.best_trial
    marks = {e["trial"]: e["feasible"] for e in summary["leaderboard"]}
    assert marks == feasible
    assert main(["report", str(tmp_path / "artifacts" / "k"), "--no-plots"]) == 0
    assert capsys.readouterr().out.count("(infeasible)") == 2
