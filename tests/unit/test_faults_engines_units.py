"""Units of the engines' faults (issue 28): retries of storage calls, full-disk detection, atomic writes."""

from __future__ import annotations

import errno
import logging

import pytest

from tunecv import _disk, _storage_retry
from tunecv._io import atomic_write, atomic_write_text
from tunecv.errors import StorageError


def flaky(failures: list[BaseException], value: str = "ok"):
    calls = []

    def fn():
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return value

    return fn, calls


def test_a_transient_error_is_retried_until_the_call_succeeds(caplog):
    fn, calls = flaky([RuntimeError("server closed the connection unexpectedly"),
                       RuntimeError("sqlite3.OperationalError: database is locked")])
    with caplog.at_level(logging.INFO, logger="tunecv.tune"):
        assert _storage_retry.call_with_retries(fn, "tell", "postgresql://db", budget=30) == "ok"
    assert len(calls) == 3
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if "retrying for up to 30 s" in m]) == 1 and any("is back after" in m for m in said)


def test_retries_give_up_after_their_budget_with_one_line():
    fn, calls = flaky([RuntimeError("connection refused")] * 1000)
    with pytest.raises(StorageError) as info:
        _storage_retry.call_with_retries(fn, "ask", "postgresql://u:***@db/x", budget=0.5)
    text = str(info.value)
    assert "\n" not in text and text.startswith("the storage postgresql://u:***@db/x could not be reached for 0 s")
    assert "giving up" in text and "--resume" in text and len(calls) >= 2


def test_an_error_that_is_not_transient_is_raised_at_once():
    fn, calls = flaky([ValueError("file is not a database")])
    with pytest.raises(ValueError):
        _storage_retry.call_with_retries(fn, "ask", "sqlite:///x", budget=30)
    assert len(calls) == 1


def test_the_proxy_retries_optuna_storage_calls(tmp_path):
    import optuna

    storage = _storage_retry.retrying(optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'o.db'}"), "o.db")
    assert isinstance(storage, optuna.storages.BaseStorage)
    study = optuna.create_study(study_name="s", storage=storage)
    inner = storage._inner
    original = inner.set_trial_user_attr
    failures = [RuntimeError("database is locked")]

    def once(*args, **kwargs):
        if failures:
            raise failures.pop()
        return original(*args, **kwargs)

    inner.set_trial_user_attr = once
    trial = study.ask()
    trial.set_user_attr("k", 1)
    study.tell(trial, 1.0)
    assert optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'o.db'}").trials[0].user_attrs == {"k": 1}


def test_an_atomic_write_that_meets_a_full_disk_leaves_the_old_file_and_names_the_path(tmp_path):
    path = tmp_path / "run_infos.parquet"
    atomic_write_text(path, "old")

    def full(fh):
        fh.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as info:
        atomic_write(path, full)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["run_infos.parquet"]


def test_a_full_disk_is_found_in_an_error_or_a_failed_run(tmp_path):
    err = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "a.ckpt"))
    assert _disk.full_disk_in(RuntimeError("saving failed"), tmp_path) is None
    wrapped = RuntimeError("saving failed")
    wrapped.__cause__ = err
    assert _disk.full_disk_in(wrapped, tmp_path).path == str(tmp_path / "a.ckpt")
    with pytest.raises(_disk.DiskFullError):
        _disk.check_run({"status": "failed", "error": f"OSError: [Errno 28] No space left on device: '{tmp_path}/x'"},
                        tmp_path)
    _disk.check_run({"status": "failed", "error": "ValueError: fold 1 is broken on purpose"}, tmp_path)
    # torch's bare message counts only where (next to) nothing is free: not here
    _disk.check_run({"status": "failed", "error": "RuntimeError: PytorchStreamWriter failed writing file data/0: "
                                                  "file write failed"}, tmp_path)


def test_a_full_disk_stops_with_one_line_naming_the_path_the_space_and_the_resume(tmp_path):
    with pytest.raises(_disk.DiskFullError) as info, _disk.stop_on_full_disk("cv", "c", tmp_path):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run_infos.parquet"))
    text = str(info.value)
    assert "\n" not in text and f"writing {tmp_path / 'run_infos.parquet'} (" in text and " free there)" in text
    assert text.rstrip().endswith("--name c --resume")


def test_opening_an_unreachable_server_fails_at_once_unless_the_tune_has_used_it(monkeypatch):
    """A wrong URL is said at once; a worker joining a tune whose server is restarting waits for it."""
    import time

    from tunecv.tune import open_storage

    pytest.importorskip("psycopg")
    url = "postgresql+psycopg://alice:s3cret@127.0.0.1:1/nowhere"
    monkeypatch.setenv(_storage_retry.RETRY_ENV, "1.5")
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        open_storage(url)
    assert "cannot be opened" in str(info.value) and time.monotonic() - started < 1.5
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        open_storage(url, known=True)
    assert time.monotonic() - started >= 1.5
    text = str(info.value)
    assert "could not be reached for 2 s" in text and "in opening" in text and "s3cret" not in text
