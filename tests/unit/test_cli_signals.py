"""The CLI's exit on a stop: Lightning's SIGTERMException is recognised by its type."""

from __future__ import annotations

import pytest

from tunecv import cli


def test_lightnings_sigterm_exception_exits_143(monkeypatch, capsys):
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    def run(command, rest):
        raise SIGTERMException()  # what Lightning's loops raise on SIGTERM (no exit code of its own)

    monkeypatch.setattr(cli, "_run", run)
    assert cli._main(["train", "--config", "c.yaml"]) == 143
    assert "terminated (SIGTERM)" in capsys.readouterr().err


def test_another_system_exit_is_not_a_stop(monkeypatch):
    def run(command, rest):
        raise SystemExit(3)

    monkeypatch.setattr(cli, "_run", run)
    with pytest.raises(SystemExit) as exited:
        cli._main(["train", "--config", "c.yaml"])
    assert exited.value.code == 3


def _fire(value):
    import os
    import signal

    from tests.unit._modules import Fuse

    os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, inside jsonargparse's parsing of init_args
    return Fuse()


def test_a_ctrl_c_while_a_model_is_built_stops_the_command_instead_of_failing_the_run():
    """A Ctrl-C (tunecv's handler raises Interrupted, a SystemExit) that lands while jsonargparse checks a
    model's init_args must stop the command (exit 130, finish with --resume), not be taken for a bad config:
    CI's fresh clone once recorded a run as failed with "has invalid init_args" and the cv went on, exit 0."""
    import lightning as L
    from jsonargparse.typing import register_type

    from tests.unit._modules import Fuse, FusedModule
    from tunecv.build import instantiate
    from tunecv.errors import Interrupted

    register_type(Fuse, serializer=lambda fuse: "fuse", deserializer=_fire)
    spec = {"class_path": f"{FusedModule.__module__}.FusedModule", "init_args": {"fuse": "lit"}}
    cli._install_signals()
    try:
        with pytest.raises(Interrupted) as stopped:
            instantiate(spec, L.LightningModule, "model")
        assert stopped.value.code == 130
    finally:
        cli._restore_signals()
