"""The command line starts a pool's fork server before parsing only when the command will use one."""

from __future__ import annotations

import pytest
import yaml

from tunecv import cli
from tunecv.executors import _pool


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    monkeypatch.setattr(_pool, "prestart_forkserver", lambda modules: calls.append(list(modules)) or True)
    return calls


def write(tmp_path, **cfg) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"class_path": "my_pkg.models.Net"},
                                    "data": {"class_path": "my_pkg.data.Data"}, **cfg}))
    return str(path)


def test_a_parallel_config_starts_the_server_with_the_model_modules(tmp_path, started):
    cli._prestart_pool(["--config", write(tmp_path, strategy="cv-parallel")])
    (modules,) = started
    assert {"torch", "lightning", "my_pkg.models", "my_pkg.data"} <= set(modules)


@pytest.mark.parametrize("args", [
    ["--strategy", "tune-parallel"], ["--strategy=cv-parallel"],
])
def test_an_override_counts(tmp_path, started, args):
    cli._prestart_pool(["--config", write(tmp_path), *args])
    assert len(started) == 1


@pytest.mark.parametrize("cfg, args", [
    ({}, []),                                                       # serial
    ({"strategy": "cv-parallel"}, ["--strategy", "auto"]),          # overridden back to serial
    ({"strategy": "cv-parallel", "executor": "slurm"}, []),         # not a local pool
    ({"strategy": "cv-parallel", "local": {"start_method": "spawn"}}, []),
    ({"strategy": "cv-parallel"}, ["--local.start_method", "fork"]),
    ({"strategy": "cv-parallel"}, ["--dry_run"]),                   # nothing runs
    ({"strategy": "cv-parallel"}, ["--print_config"]),
])
def test_no_server_where_no_local_forkserver_pool_runs(tmp_path, started, cfg, args):
    cli._prestart_pool(["--config", write(tmp_path, **cfg), *args])
    assert started == []


def test_an_unreadable_config_is_left_to_the_parser(tmp_path, started):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe strategy: cv-parallel")
    cli._prestart_pool(["--config", str(bad), "--strategy", "cv-parallel"])
    cli._prestart_pool(["--config", str(tmp_path / "missing.yaml")])
    assert started == []
