"""The command line forks a pool's fork server from itself right after parsing, only when a local pool runs."""

from __future__ import annotations

import pytest

from tunecv import cli, executors
from tunecv.config import Config
from tunecv.executors import LocalConfig, _forkserver


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], bool]]:
    calls: list[tuple[list[str], bool]] = []

    def fake(modules, *, from_this_process=False):
        calls.append((list(modules), from_this_process))
        return True

    monkeypatch.setattr(executors, "prestart_forkserver", fake)
    return calls


def config(**settings) -> Config:
    return Config(model={"class_path": "my_pkg.models.Net"}, data={"class_path": "my_pkg.data.Data"}, **settings)


@pytest.mark.parametrize("strategy", ["cv-parallel", "tune-parallel"])
def test_a_parallel_config_forks_the_server_from_the_driver_with_the_model_modules(started, strategy):
    assert cli._prestart_pool(config(strategy=strategy), set()) is True
    ((modules, from_this_process),) = started
    assert from_this_process
    assert {"torch", "lightning", "my_pkg.models", "my_pkg.data"} <= set(modules)


def test_the_trainer_strategy_counts(started):
    cli._prestart_pool(config(trainer={"strategy": "cv-parallel"}), set())
    assert len(started) == 1


@pytest.mark.parametrize("settings, flags", [
    ({}, set()),                                                           # serial
    ({"strategy": "cv-parallel", "executor": "slurm"}, set()),             # not a local pool
    ({"strategy": "cv-parallel", "executor": "ray"}, set()),
    ({"strategy": "cv-parallel", "local": LocalConfig(start_method="spawn")}, set()),
    ({"strategy": "cv-parallel", "local": LocalConfig(start_method="fork")}, set()),
    ({"strategy": "cv-parallel"}, {"--dry_run"}),                          # nothing runs
    ({"strategy": "cv-parallel"}, {"--print_config"}),
])
def test_no_server_where_no_local_forkserver_pool_runs(started, settings, flags):
    assert cli._prestart_pool(config(**settings), flags) is False
    assert started == []


def test_no_fork_while_another_thread_runs():
    import threading

    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert _forkserver.can_fork_server_here() is False  # its locks would be copied held, forever
    finally:
        stop.set()
        thread.join()


def test_no_fork_outside_the_main_thread():
    import threading

    seen = []
    thread = threading.Thread(target=lambda: seen.append(_forkserver.can_fork_server_here()))
    thread.start()
    thread.join()
    assert seen == [False]
