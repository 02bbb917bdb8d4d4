"""The public methods that replaced writes of private attributes from outside their object (issue #24):
``_SlurmJob.gives_up`` (the SLURM executor's grace for a result file) and ``executors._base.pin_device``."""

from __future__ import annotations

from types import SimpleNamespace

from tunecv.executors import _base
from tunecv.executors._slurm import RESULT_GRACE_S, _SlurmJob


def job() -> _SlurmJob:
    return _SlurmJob("run", executor=SimpleNamespace(_scancel=lambda ids: None),
                     submitit_job=SimpleNamespace(job_id="17"), folder=None)


def test_a_slurm_job_gone_without_a_result_gets_the_grace_period_and_a_live_one_starts_it_again():
    j = job()
    assert not j.gives_up(live=True, now=100.0)
    assert not j.gives_up(live=False, now=100.0)  # gone: the grace starts now
    assert not j.gives_up(live=False, now=100.0 + RESULT_GRACE_S / 2)
    assert not j.gives_up(live=True, now=100.0 + RESULT_GRACE_S)  # seen live again: the grace is over
    assert not j.gives_up(live=False, now=200.0)
    assert j.gives_up(live=False, now=200.0 + RESULT_GRACE_S)


def test_a_slurm_job_cancelled_here_gives_up_at_once():
    j = job()
    assert j.cancel()
    assert j.gives_up(live=False, now=5.0)


def test_pin_device_is_what_current_device_answers(monkeypatch):
    monkeypatch.delenv("TUNECV_DEVICE", raising=False)
    try:
        _base.pin_device(2)
        assert _base.current_device() == 2
    finally:
        _base.pin_device(None)
    assert _base.current_device() is None
