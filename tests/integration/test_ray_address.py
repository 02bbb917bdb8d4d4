"""``ray.address`` where no cluster answers: a one-line error at once (imports Ray; no cluster started)."""

from __future__ import annotations

import pytest
import yaml

from tests.integration.ray_cluster import unavailable_reason
from tunecv.cli import main

pytestmark = [pytest.mark.ray, pytest.mark.skipif(unavailable_reason() is not None,
                                                  reason=unavailable_reason() or "")]
BASE = {"accelerator": "cpu", "executor": "ray"}


def test_an_address_where_nothing_listens_is_a_one_line_error_at_once(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "cv.yaml"
    path.write_text(yaml.safe_dump({
        **BASE, "artifact_dir": str(tmp_path / "artifacts"), "strategy": "cv-parallel",
        "model": {"class_path": "tunecv.examples.digits.DigitsClassifier"},
        "data": {"class_path": "tunecv.examples.digits.DigitsDataModule", "init_args": {"limit": 100}},
        "ray": {"address": f"127.0.0.1:{port}"}}))
    assert main(["cv", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tunecv: error:") and "\n" not in err
    assert f"`ray.address` '127.0.0.1:{port}': no Ray cluster answers there" in err
    assert not (tmp_path / "artifacts").exists()
