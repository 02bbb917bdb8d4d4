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
