"""Test helper: read back what an offline wandb run recorded, from wandb's own ``run-<id>.wandb`` file.

wandb ships no reader for its transaction log in Python, so the tests decode it here (LevelDB log framing,
then wandb's own protobuf ``Record`` messages): what a dashboard would show, with no mock of wandb.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_LOG_HEADER = struct.Struct("<4sHB")  # ":W&B", magic 0xBEE1, version
_RECORD_HEADER = struct.Struct("<IHB")  # crc32, length, type (full / first / middle / last)
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _log_records(path: Path) -> Iterator[bytes]:
    """The records of a ``.wandb`` transaction log (LevelDB log format, 32 KiB blocks)."""
    data = path.read_bytes()
    if len(data) < _LOG_HEADER.size:
        return
    ident, magic, _ = _LOG_HEADER.unpack_from(data)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path} is not a wandb transaction log")
    pos, pending = _LOG_HEADER.size, b""
    while pos + _RECORD_HEADER.size <= len(data):
        room = _BLOCK - pos % _BLOCK
        if room < _RECORD_HEADER.size:  # the rest of a block too small for a header is padding
            pos += room
            continue
        _, length, kind = _RECORD_HEADER.unpack_from(data, pos)
        if kind == 0:  # zero padding
            pos += room
            continue
        chunk = data[pos + _RECORD_HEADER.size:pos + _RECORD_HEADER.size + length]
        pos += _RECORD_HEADER.size + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""


def read_offline_run(path: str | Path) -> dict[str, Any]:
    """What an offline wandb run recorded, read from its ``run-<id>.wandb`` file.

    Args:
        path: the ``.wandb`` file, or the ``offline-run-*`` folder holding it.

    Returns:
        ``id``, ``name``, ``group``, ``job_type``, ``project``, ``entity``, ``notes``, ``tags``, ``config``
        (the config keys logged at any time, values decoded from JSON), ``history_steps`` (the number of
        history rows logged), ``finished`` (an exit record was written) and ``exit_code``, and ``file``.

    Raises:
        ValueError: the file is not a wandb transaction log, or it holds no run record.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("run-*.wandb"))
        if not found:
            raise ValueError(f"no run-*.wandb file in {path}")
        path = found[0]
    out: dict[str, Any] = {"config": {}, "history_steps": 0, "finished": False, "exit_code": None,
                           "file": str(path)}
    seen_run = False
    for raw in _log_records(path):
        record = pb.Record()
        try:
            record.ParseFromString(raw)
        except Exception:  # a torn last record of a run that is still being written
            continue
        kind = record.WhichOneof("record_type")
        if kind == "run" and not seen_run:
            run = record.run
            seen_run = True
            out.update(id=run.run_id, name=run.display_name, group=run.run_group, job_type=run.job_type,
                       project=run.project, entity=run.entity, notes=run.notes, tags=list(run.tags))
            _update_config(out["config"], run.config)
        elif kind == "config":
            _update_config(out["config"], record.config)
        elif kind == "history":
            out["history_steps"] += 1
        elif kind == "exit":
            out["finished"], out["exit_code"] = True, record.exit.exit_code
    if not seen_run:
        raise ValueError(f"{path} holds no wandb run record")
    return out


def _update_config(config: dict[str, Any], record: Any) -> None:
    for item in record.update:
        if item.key == "_wandb":
            continue
        try:
            config[item.key] = json.loads(item.value_json)
        except ValueError:
            config[item.key] = item.value_json
    for item in record.remove:
        config.pop(item.key, None)
