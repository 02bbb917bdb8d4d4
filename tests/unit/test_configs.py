"""Every file in ``configs/`` loads: configs with ``load_config``, search spaces with ``SearchSpace``.

A search-space file is one with a top-level ``hyperparameters`` table; its keys are checked against the
config that names it (``tune.search_space``), else against ``train.yaml`` in the same folder. SLURM
templates must be valid bash and name configs that exist. Running the CPU configs is
``tests/integration/test_configs_run.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tunecv.config import Config, load_config
from tunecv.search_space import SearchSpace

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"


def _read(path: Path) -> object:
    if path.suffix == ".toml":
        return tomllib.loads(path.read_text())
    return yaml.safe_load(path.read_text())


def _is_space(path: Path) -> bool:
    data = _read(path)
    return isinstance(data, dict) and "hyperparameters" in data


ALL_FILES = sorted(p for p in CONFIGS.rglob("*") if p.is_file())
DATA_FILES = [p for p in ALL_FILES if p.suffix in (".yaml", ".yml", ".toml")]
SPACES = [p for p in DATA_FILES if _is_space(p)]
CONFIG_FILES = [p for p in DATA_FILES if p not in SPACES]
SBATCH = [p for p in ALL_FILES if p.suffix == ".sbatch"]


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.fixture(autouse=True)
def in_repo(monkeypatch, tmp_path):
    """Paths in configs are relative to the repository root; the shared-storage config reads an env var."""
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("TUNECV_STORAGE", f"journal:///{tmp_path}/tune.log")


def test_configs_folder_holds_only_known_kinds_of_files():
    assert CONFIG_FILES and SPACES and SBATCH
    unknown = [rel(p) for p in ALL_FILES if p not in DATA_FILES and p not in SBATCH]
    assert not unknown, f"files in configs/ that no test loads: {unknown}"


@pytest.mark.parametrize("path", CONFIG_FILES, ids=rel)
def test_config_loads(path):
    cfg = load_config(rel(path))
    assert isinstance(cfg, Config)
    assert cfg.model is not None and cfg.data is not None, "a config in configs/ must be runnable"
    assert isinstance(cfg.devices, list)
    if cfg.tune.search_space is not None:
        space = SearchSpace.from_file(cfg.tune.search_space)
        space.check_keys(cfg)


def _config_for(space: Path) -> Config:
    for path in CONFIG_FILES:
        cfg = load_config(rel(path))
        if cfg.tune.search_space and Path(cfg.tune.search_space).resolve() == space.resolve():
            return cfg
    sibling = space.parent / "train.yaml"
    assert sibling.is_file(), f"{rel(space)}: no config names it and there is no train.yaml next to it"
    return load_config(rel(sibling))


@pytest.mark.parametrize("path", SPACES, ids=rel)
def test_search_space_loads_and_names_config_keys(path):
    space = SearchSpace.from_file(path)
    assert len(space) > 0
    space.check_keys(_config_for(path))


def test_the_grid_space_is_a_grid_of_six():
    space = SearchSpace.from_file(CONFIGS / "digits" / "space_grid.yaml")
    assert space.is_grid_compatible
    assert space.grid_size() == 6


def test_explicit_and_implicit_spaces_cover_both_forms():
    explicit = yaml.safe_load((CONFIGS / "digits" / "space.yaml").read_text())["hyperparameters"]
    assert all(isinstance(v, dict) and "distribution" in v for v in explicit.values())
    implicit = tomllib.loads((CONFIGS / "digits" / "space_implicit.toml").read_text())["hyperparameters"]
    assert any(isinstance(v, list) for v in implicit.values())
    assert any(isinstance(v, dict) and "distribution" not in v for v in implicit.values())


def test_tune_yaml_is_train_yaml_plus_tune_settings():
    """The README's one-config tune repeats train.yaml's keys; only presentation and tune keys differ."""
    train = load_config("configs/digits/train.yaml").to_dict()
    tune = load_config("configs/digits/tune.yaml").to_dict()
    assert tune["tune"]["search_space"] == "configs/digits/space.yaml"
    assert tune["tune"]["pruner"] == "wilcoxon" and tune["tune"]["n_trials"] == 8
    for key in ("model", "data", "split", "accelerator", "devices", "early_stopping", "checkpoint", "cv"):
        assert tune[key] == train[key], key
    quiet = {"enable_progress_bar", "enable_model_summary"}
    assert {k: v for k, v in tune["trainer"].items() if k not in quiet} == train["trainer"]


def test_penguins_config_uses_region_stratified_folds():
    cfg = load_config("configs/penguins/region_stratified.yaml")
    assert cfg.model["class_path"].startswith("tunecv.examples.penguins.")
    assert cfg.split.fold_method == "region-stratified"
    assert (cfg.split.group_column, cfg.split.stratify_column, cfg.split.total_folds) == ("region", "species", 3)


def test_gpu_configs_say_what_the_docs_say():
    ddp = load_config("configs/gpu/ddp_fork_4gpus.yaml")
    assert (ddp.accelerator, ddp.strategy, ddp.devices) == ("gpu", "ddp_fork", [0, 2, 5, 6])
    parallel = load_config("configs/gpu/tune_parallel_4gpus.yaml")
    assert (parallel.accelerator, parallel.strategy, parallel.devices) == ("gpu", "tune-parallel", [0, 1, 2, 3])
    multi = load_config("configs/slurm/multinode.yaml")
    assert (multi.num_nodes, multi.devices, multi.strategy) == (2, [0, 1, 2, 3], "ddp")


def test_shared_storage_config_reads_the_storage_from_the_environment(monkeypatch):
    monkeypatch.setenv("TUNECV_STORAGE", "postgresql+psycopg://u:p@db:5432/tunecv")
    assert load_config("configs/slurm/tune_worker.yaml").tune.storage == "postgresql+psycopg://u:p@db:5432/tunecv"
    monkeypatch.delenv("TUNECV_STORAGE")
    with pytest.raises(Exception, match="TUNECV_STORAGE"):
        load_config("configs/slurm/tune_worker.yaml")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("path", SBATCH, ids=rel)
def test_sbatch_template_is_valid_bash_naming_existing_configs(path):
    subprocess.run(["bash", "-n", str(path)], check=True)
    text = path.read_text()
    assert text.startswith("#!/bin/bash\n")
    assert "#SBATCH" in text
    named = [w for w in text.split() if w.startswith("configs/") and w.endswith((".yaml", ".sbatch"))]
    assert named, f"{rel(path)} names no config"
    for word in named:
        assert (REPO / word).is_file(), f"{rel(path)} names {word}, which does not exist"
