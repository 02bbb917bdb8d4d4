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


# -- a user's own loggers: the run's identity on a spec, and on an instance -------------------------------

ID = tracking.RunIdentity(run_id="abcd1234", run_name="t-cv0-run-f0s42", group="t", job_type="t-cv0",
                          run_dir=Path("/runs/t-cv0-run-f0s42-abcd1234"))


@pytest.mark.parametrize("class_path", ["lightning.pytorch.loggers.WandbLogger", "pytorch_lightning.loggers.WandbLogger",
                                        "WandbLogger", "lightning.pytorch.loggers.wandb.WandbLogger"])
def test_run_logger_spec_gives_a_wandb_logger_the_run_identity(class_path):
    spec = {"class_path": class_path,
            "init_args": {"project": "mine", "save_dir": ".", "version": "fixed", "id": None, "log_model": False},
            "dict_kwargs": {"entity": "team", "tags": ["a"], "group": "theirs"}}
    out = tracking.run_logger_spec(spec, ID)
    assert out["class_path"] == class_path
    assert out["init_args"] == {"project": "mine", "save_dir": str(ID.run_dir), "version": None, "id": "abcd1234",
                                "name": "t-cv0-run-f0s42", "log_model": False}
    assert out["dict_kwargs"] == {"entity": "team", "tags": ["a"], "group": "t", "job_type": "t-cv0",
                                  "resume": "allow"}
    assert spec["init_args"]["version"] == "fixed"  # the caller's spec is left alone


def test_run_logger_spec_keeps_a_wandb_folder_the_user_chose_and_adds_tunecv_s_settings():
    ident = tracking.RunIdentity(**{**ID.__dict__, "wandb_defaults": {
        "project": "tunecv-proj", "entity": "ours", "config": {"lr": 1, "name": "x"}, "tags": ["cv"]}})
    out = tracking.run_logger_spec({"class_path": "WandbLogger", "save_dir": "/elsewhere",
                                    "dict_kwargs": {"config": {"lr": 2}, "tags": ["mine"]}}, ident)
    assert out["init_args"]["save_dir"] == "/elsewhere" and out["init_args"]["project"] == "tunecv-proj"
    assert out["dict_kwargs"]["config"] == {"lr": 2, "name": "x"} and out["dict_kwargs"]["tags"] == ["mine", "cv"]
    assert out["dict_kwargs"]["entity"] == "ours"


@pytest.mark.parametrize("class_path", ["lightning.pytorch.loggers.CSVLogger", "TensorBoardLogger",
                                        "pytorch_lightning.loggers.TensorBoardLogger"])
def test_run_logger_spec_gives_csv_and_tensorboard_a_version_per_run(class_path):
    out = tracking.run_logger_spec({"class_path": class_path, "init_args": {"save_dir": "logs",
                                                                           "name": "lightning_logs"}}, ID)
    assert out["init_args"] == {"save_dir": "logs", "name": "t", "version": "t-cv0-run-f0s42-abcd1234"}
    named = tracking.run_logger_spec({"class_path": class_path, "init_args": {"save_dir": "logs", "name": "exp"}}, ID)
    assert named["init_args"]["name"] == "exp"  # a name the user chose is kept


def test_run_logger_spec_mlflow_and_unknown_classes():
    out = tracking.run_logger_spec({"class_path": "lightning.pytorch.loggers.MLFlowLogger",
                                    "init_args": {"experiment_name": "e", "tags": {"k": "v"}, "run_id": "r1"}}, ID)
    assert out["init_args"] == {"experiment_name": "e", "run_name": "t-cv0-run-f0s42", "run_id": None,
                                "tags": {"k": "v", "group": "t", "job_type": "t-cv0", "run_id": "abcd1234"}}
    other = {"class_path": "my_pkg.loggers.Custom", "init_args": {"a": 1}}
    assert tracking.run_logger_spec(other, ID) == other
    assert tracking.logger_kind("my_pkg.loggers.Custom") is None


def test_logger_kind_of_subclasses_and_instances(tmp_path):
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    class MyWandb(WandbLogger):
        pass

    assert tracking.logger_kind(MyWandb) == "wandb"
    assert tracking.logger_kind(CSVLogger(tmp_path)) == "csv"


def test_apply_run_identity_to_built_loggers(tmp_path):
    pytest.importorskip("wandb")
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    wandb_lg = tracking.apply_run_identity(WandbLogger(project="mine", id="fixed"), ID)
    init = wandb_lg._wandb_init
    assert (init["id"], init["name"], init["group"], init["job_type"], init["dir"], init["project"]) == (
        "abcd1234", "t-cv0-run-f0s42", "t", "t-cv0", str(ID.run_dir), "mine")
    assert wandb_lg.version == "abcd1234"
    csv_lg = tracking.apply_run_identity(CSVLogger(tmp_path), ID)
    assert (csv_lg.name, csv_lg.version) == ("t", "t-cv0-run-f0s42-abcd1234")


def test_apply_run_identity_builds_the_logger_again_keeping_its_other_arguments(tmp_path):
    pytest.importorskip("wandb")
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    given = CSVLogger(tmp_path, name="mine", prefix="p", flush_logs_every_n_steps=7)
    csv_lg = tracking.apply_run_identity(given, ID)
    assert csv_lg is not given and type(csv_lg) is CSVLogger
    assert (csv_lg.save_dir, csv_lg.name, csv_lg.version) == (str(tmp_path), "mine", "t-cv0-run-f0s42-abcd1234")
    assert (csv_lg._prefix, csv_lg._flush_logs_every_n_steps) == ("p", 7)
    assert given.name == "mine" and given._version is None  # the given object is not changed
    wandb_given = WandbLogger(project="mine", prefix="w", log_model=False, notes="n", save_dir=str(tmp_path))
    wandb_lg = tracking.apply_run_identity(wandb_given, ID)
    assert wandb_lg is not wandb_given and wandb_lg._prefix == "w"
    assert (wandb_lg._wandb_init["name"], wandb_lg.version, wandb_lg.save_dir) == ("t-cv0-run-f0s42", "abcd1234",
                                                                           str(tmp_path))
    assert wandb_lg._wandb_init["notes"] == "n" and wandb_given._wandb_init.get("group") is None

    class OwnInit(CSVLogger):
        def __init__(self, where):
            super().__init__(where, name="own")

    own = OwnInit(tmp_path)
    assert tracking.apply_run_identity(own, ID) is own  # its arguments cannot be read back: left as it is
