"""Every runnable file in ``configs/`` runs, through the CLI, with tiny settings.

Each case is a config, the command its header comment gives, and the overrides that make it tiny: one
epoch, 2 folds, 1 seed, 2 trials, 300 digits. The GPU configs run too where enough GPUs exist
(marked ``gpu``); the multi-node config needs a launcher and is only loaded (tests/unit/test_configs.py).
A guard test keeps the table complete: a new config in ``configs/`` must be added here.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tunecv.cli import main
from tunecv.results import load_run_infos

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"

QUIET = {"trainer.enable_progress_bar": "false", "trainer.enable_model_summary": "false"}
TINY = {**QUIET, "trainer.max_epochs": "1", "cv.n_folds": "2", "cv.n_seeds": "1", "tune.n_trials": "2"}
DIGITS = {**TINY, "data.init_args.limit": "300"}

# Configs that only load here: they need a launcher (srun / torchrun) around them.
LOAD_ONLY = {"configs/slurm/multinode.yaml"}
# Owned and run by the tests of the plain-module feature.
ELSEWHERE = ("configs/plain/",)


def gpu_case(*values, gpus: int):
    return pytest.param(*values, marks=[pytest.mark.gpu, pytest.mark.skipif(
        _gpus() < gpus, reason=f"needs {gpus} GPUs")], id=f"{values[0]}:{values[1]}")


def _gpus() -> int:
    from tunecv.executors import gpu_count  # never initialises CUDA

    return gpu_count()


CASES = [
    pytest.param("configs/digits/train.yaml", "train", DIGITS, id="digits/train.yaml:train"),
    pytest.param("configs/digits/cv.yaml", "cv", DIGITS, id="digits/cv.yaml:cv"),
    pytest.param("configs/digits/tune.yaml", "tune", DIGITS, id="digits/tune.yaml:tune"),
    pytest.param("configs/digits/tune.yaml", "tune",
                 {**DIGITS, "tune.search_space": "configs/digits/space_implicit.toml",
                  "tune.retrain_and_test": "false"}, id="digits/space_implicit.toml:tune"),
    pytest.param("configs/digits/tune.yaml", "tune",
                 {**DIGITS, "tune.search_space": "configs/digits/space_grid.yaml", "tune.n_trials": "grid",
                  "cv.n_folds": "1", "tune.retrain_and_test": "false"}, id="digits/space_grid.yaml:grid"),
    pytest.param("configs/digits/tune_multiobjective.yaml", "tune", DIGITS, id="digits/tune_multiobjective.yaml"),
    pytest.param("configs/penguins/region_stratified.yaml", "cv", TINY, id="penguins/region_stratified.yaml:cv"),
    pytest.param("configs/digits/nested.yaml", "nested", {**DIGITS, "nested.n_folds": "2", "data.init_args.limit": "200"},
                 id="digits/nested.yaml:nested"),
    gpu_case("configs/gpu/ddp_fork_4gpus.yaml", "train", DIGITS, gpus=7),
    gpu_case("configs/gpu/ddp_fork_4gpus.yaml", "cv", DIGITS, gpus=7),
    gpu_case("configs/gpu/tune_parallel_4gpus.yaml", "tune", {**DIGITS, "tune.n_trials": "4"}, gpus=4),
    gpu_case("configs/slurm/tune_worker.yaml", "tune", DIGITS, gpus=1),
]


@pytest.fixture
def in_repo(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)  # configs name search spaces relative to the repository root
    monkeypatch.setenv("TUNECV_STORAGE", f"journal:///{tmp_path}/shared/tune.log")
    monkeypatch.setenv("WANDB_MODE", "disabled")


def _argv(config: str, command: str, overrides: dict[str, str], artifacts: Path) -> list[str]:
    argv = [command, "--config", config, "--artifact_dir", str(artifacts), "--name", "t"]
    for key, value in overrides.items():
        argv += [f"--{key}", value]
    return argv


def test_every_runnable_config_has_a_case():
    named = {p.values[0] for p in CASES}
    for path in sorted(CONFIGS.rglob("*.yaml")):
        rel = str(path.relative_to(REPO))
        if rel.startswith(ELSEWHERE) or rel in LOAD_ONLY or "hyperparameters:" in path.read_text():
            continue
        assert rel in named, f"{rel} is not run by any test: add it to CASES"
    spaces = {p.values[2].get("tune.search_space") for p in CASES}
    for space in ("configs/digits/space_implicit.toml", "configs/digits/space_grid.yaml"):
        assert space in spaces


@pytest.mark.slow
@pytest.mark.parametrize("config,command,overrides", CASES)
def test_config_runs(config, command, overrides, in_repo, tmp_path, capsys):
    artifacts = tmp_path / "artifacts"
    code = main(_argv(config, command, overrides, artifacts))
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    if command == "train":
        (run,) = (artifacts / "_runs").iterdir()
        assert (run / "run_info.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
        return
    folder = artifacts / ("_cross_validations/t" if command == "cv" else "t")
    if command == "nested":  # one table over the outer folds' tunes and their retrains
        df = pd.read_parquet(folder / "run_infos.parquet")
        assert sorted(df["outer_fold"].dropna().unique()) == [0, 1], df.columns
        return
    df = load_run_infos(folder / "run_infos.parquet")
    assert len(df) > 0 and (df["status"] == "completed").all(), df[["run_name", "status", "error"]]
    if command == "cv":
        assert len(df) == int(overrides["cv.n_folds"]) * int(overrides["cv.n_seeds"])
        assert df["score"].notna().all()
        return
    trials = df["trial"].nunique()
    if overrides.get("tune.n_trials") == "grid":
        assert trials == 6 and sorted(df["cv_name"]) == [f"t-cv{i}" for i in range(6)]
    else:
        assert trials == int(overrides["tune.n_trials"])
    if "multiobjective" in config:
        assert "is_pareto_optimal" in df.columns and df["is_pareto_optimal"].any()
    if config == "configs/digits/tune.yaml" and "tune.retrain_and_test" not in overrides:
        (retrain,) = folder.glob("t-retrain-*")
        assert (retrain / "run_info.json").is_file()
