"""tunecv.tracking without training: wandb mode, the WANDB_* environment, reading offline run files."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests import wandb_log
from tunecv import tracking

BLOCK = 32768


def write_wandb_log(path: Path, payloads: list[bytes]) -> None:
    """A transaction log in the LevelDB log format wandb uses (records split across 32 KiB blocks)."""
    out = bytearray(struct.pack("<4sHB", b":W&B", 0xBEE1, 0))
    for payload in payloads:
        first = True
        while True:
            room = BLOCK - len(out) % BLOCK
            if room < 7:
                out += b"\0" * room
                continue
            chunk, payload = payload[:room - 7], payload[room - 7:]
            last = not payload
            kind = 1 if first and last else 2 if first else 4 if last else 3
            out += struct.pack("<IHB", 0, len(chunk), kind) + chunk
            first = False
            if last:
                break
    path.write_bytes(bytes(out))


@pytest.mark.parametrize(("env", "netrc", "expected"), [
    ({"WANDB_MODE": "offline"}, None, "offline"),
    ({"WANDB_MODE": "dryrun"}, None, "offline"),
    ({"WANDB_MODE": "disabled"}, None, "disabled"),
    ({"WANDB_MODE": "online"}, None, "online"),
    ({"WANDB_API_KEY": "k" * 40}, None, "online"),
    ({}, "machine api.wandb.ai\n  login user\n  password secret\n", "online"),
    ({}, None, "offline"),
])
def test_wandb_mode(env, netrc, expected, monkeypatch, tmp_path):
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    netrc_file = tmp_path / "netrc"
    if netrc is not None:
        netrc_file.write_text(netrc)
    monkeypatch.setenv("NETRC", str(netrc_file))
    assert tracking.wandb_mode() == expected


def test_log_records_survive_block_boundaries(tmp_path):
    payloads = [b"a" * 10, b"b" * (BLOCK - 30), b"c" * 5, b"d" * (2 * BLOCK + 123), b"e"]
    path = tmp_path / "run-x.wandb"
    write_wandb_log(path, payloads)
    assert list(wandb_log._log_records(path)) == payloads


def test_log_records_reject_other_files(tmp_path):
    path = tmp_path / "run-x.wandb"
    path.write_bytes(b"not a wandb log at all")
    with pytest.raises(ValueError, match="not a wandb transaction log"):
        list(wandb_log._log_records(path))


def test_read_offline_run_decodes_run_config_history_and_exit(tmp_path):
    from wandb.proto import wandb_internal_pb2 as pb

    run = pb.Record()
    run.run.run_id, run.run.display_name = "abcd1234", "t-cv0-run-f0s42"
    run.run.run_group, run.run.job_type, run.run.project = "t", "t-cv0", "proj"
    item = run.run.config.update.add()
    item.key, item.value_json = "model", json.dumps({"init_args": {"lr": 0.01}})
    config = pb.Record()
    item = config.config.update.add()
    item.key, item.value_json = "trial", "3"
    history = pb.Record()
    history.history.item.add(key="val/loss", value_json="0.5")
    exit_ = pb.Record()
    exit_.exit.exit_code = 0
    folder = tmp_path / "wandb" / "offline-run-20260101_000000-abcd1234"
    folder.mkdir(parents=True)
    write_wandb_log(folder / "run-abcd1234.wandb",
                    [r.SerializeToString() for r in (run, config, history, history, exit_)])

    assert tracking.offline_runs(tmp_path) == [folder]
    logged = wandb_log.read_offline_run(folder)
    assert (logged["id"], logged["name"], logged["group"], logged["job_type"], logged["project"]) == (
        "abcd1234", "t-cv0-run-f0s42", "t", "t-cv0", "proj")
    assert logged["config"] == {"model": {"init_args": {"lr": 0.01}}, "trial": 3}
    assert logged["history_steps"] == 2 and logged["finished"] and logged["exit_code"] == 0


def test_offline_runs_of_a_folder_without_wandb(tmp_path):
    assert tracking.offline_runs(tmp_path) == []


def test_finish_restores_the_wandb_environment_of_before_the_run(monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    monkeypatch.setenv("WANDB_RUN_GROUP", "user-level")
    monkeypatch.delenv("WANDB_NOTES", raising=False)
    monkeypatch.setitem(tracking._state, "env_before_run", tracking._wandb_env())
    for var in tracking._PER_RUN_VARS:  # what wandb_logger does when a run starts
        os.environ.pop(var, None)
    os.environ["WANDB_NOTES"] = "set during the run"
    os.environ["WANDB_PROJECT"] = "changed during the run"
    tracking.finish_wandb()
    assert os.environ.get("WANDB_NOTES") is None
    assert os.environ["WANDB_PROJECT"] == "mine" and os.environ["WANDB_RUN_GROUP"] == "user-level"
    assert tracking._state["env_before_run"] is None


def test_init_timeout_from_environment(monkeypatch):
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "7")
    assert tracking._init_timeout(None) == 7.0
    assert tracking._init_timeout(2) == 2.0
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "soon")
    assert tracking._init_timeout(None) == tracking.DEFAULT_INIT_TIMEOUT


def test_importing_tracking_and_report_leaves_wandb_unimported():
    heavy = "('wandb', 'lightning', 'torch', 'optuna', 'matplotlib')"
    code = ("import sys, tunecv.tracking, tunecv.report; "
            f"print(sorted(m for m in {heavy} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.strip() == "[]"
