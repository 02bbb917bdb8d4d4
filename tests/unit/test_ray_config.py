"""The ``ray:`` config section and the weight of ``executor: ray`` (no Ray cluster needed here)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tunecv.cli import main
from tunecv.config import config_from_dict
from tunecv.errors import ConfigError
from tunecv.executors import _registry

BASE = {"accelerator": "cpu", "executor": "ray"}


def test_ray_is_a_registered_executor_with_its_defaults():
    assert "ray" in _registry.executor_names()
    ray = config_from_dict(BASE).ray
    assert (ray.address, ray.num_cpus, ray.num_gpus, ray.max_retries) == ("local", 1, 0, 1)
    assert ray.max_concurrent_runs is None and ray.runtime_env is None
    cfg = config_from_dict({**BASE, "ray": {"address": "auto", "num_gpus": 0.25, "runtime_env": {"env_vars": {"A": "1"}}}})
    assert cfg.ray.address == "auto" and cfg.ray.num_gpus == 0.25 and cfg.ray.runtime_env == {"env_vars": {"A": "1"}}


BAD = [
    ({"ray": {"num_cpus": -1}}, "`ray.num_cpus` must be a number >= 0", "-1"),
    ({"ray": {"num_gpus": -0.5}}, "`ray.num_gpus` must be a number >= 0", "-0.5"),
    ({"ray": {"num_cpus": 0, "num_gpus": 0}}, "`ray.num_cpus` and `ray.num_gpus` must not both be 0", "got 0"),
    ({"ray": {"max_retries": -1}}, "`ray.max_retries` must be >= 0", "-1"),
    ({"ray": {"max_concurrent_runs": 0}}, "`ray.max_concurrent_runs` must be >= 1 or null", "0"),
    ({"ray": {"address": " "}}, "`ray.address` must be local, auto, HOST:PORT or ray://HOST:PORT", "''"),
    ({"runs_per_device": 2, "ray": {"num_gpus": 2}}, "`ray.num_gpus` must be at most 1 when `runs_per_device`", "2"),
    ({"accelerator": "gpu"}, "`ray.num_gpus` must be > 0 with accelerator 'gpu'", "got 0"),
]


@pytest.mark.parametrize(("change", "message", "value"), BAD, ids=[m.split("`")[1] for _, m, _ in BAD])
def test_bad_ray_options_name_the_key_the_constraint_and_the_value(change, message, value):
    with pytest.raises(ConfigError) as err:
        config_from_dict({**BASE, **change})
    assert message in str(err.value) and value in str(err.value)


def test_the_cli_reports_a_bad_ray_option_in_one_line_with_exit_2(tmp_path, capsys):
    path = tmp_path / "cv.yaml"
    path.write_text(yaml.safe_dump({**BASE, "artifact_dir": str(tmp_path / "artifacts"),
                                    "ray": {"num_cpus": "two"}}))
    assert main(["cv", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tunecv: error:") and "\n" not in err and "ray.num_cpus" in err and "two" in err
    assert not (tmp_path / "artifacts").exists()


def test_help_and_the_executor_registry_do_not_import_ray():
    code = ("import sys, tunecv.cli as c, tunecv.executors as e; c.main(['--help']); c.main(['cv', '--help']);"
            "e._registry.executor_factory('ray');"
            "print('HEAVY', [m for m in ('ray', 'torch', 'lightning') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout

