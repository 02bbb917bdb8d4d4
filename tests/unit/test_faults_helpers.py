"""Pure helpers of the fault handling: the finishing command line, resumed sampler seeds, name claims."""

from __future__ import annotations

import json
import os
import shlex
import socket

import pytest

from tunecv import naming
from tunecv.cli import resume_command
from tunecv.errors import ResumeError
from tunecv.tune import continued_seed


def test_the_finishing_command_resumes_by_name_and_never_resets():
    line = resume_command("cv", ["--config", "a b.yaml", "--reset", "--trainer.max_epochs", "3"], "brave-otter")
    assert shlex.split(line) == ["tunecv", "cv", "--config", "a b.yaml", "--trainer.max_epochs", "3",
                                 "--name", "brave-otter", "--resume"]
    named = resume_command("tune", ["--name=x", "--resume"], "x")
    assert shlex.split(named) == ["tunecv", "tune", "--name=x", "--resume"]


def test_a_fresh_tune_keeps_its_seed_and_a_resumed_one_continues():
    assert continued_seed(42, 0) == 42
    seeds = {continued_seed(42, n) for n in range(1, 50)}
    assert len(seeds) == 49 and 42 not in seeds
    assert continued_seed(42, 7) == continued_seed(42, 7)


def test_a_claim_is_exclusive_names_its_owner_and_is_released(tmp_path):
    with naming.claim_name(tmp_path, "dup", "cv") as claim:
        assert claim.held and (tmp_path / ".dup.lock").exists()
        with pytest.raises(ResumeError, match=f"a cv named 'dup' is being run by pid {os.getpid()} on "
                                              f"{socket.gethostname()}"):
            naming.claim_name(tmp_path, "dup", "cv")
    assert not (tmp_path / ".dup.lock").exists()
    naming.claim_name(tmp_path, "dup", "cv").release()  # free again


def test_a_command_that_loses_the_race_waits_for_the_winner_to_name_itself(tmp_path):
    """The winner writes its host and pid just after it took the lock; a loser that reads the lock file in
    between (CI saw it: "being run by another process") reads again until the owner is named."""
    import fcntl
    import threading

    path = naming.lock_path(tmp_path, "dup")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # locked, not yet written: the winner's state
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    owner = {"host": "node7", "pid": 4242, "kind": "cv", "name": "dup"}
    writer = threading.Timer(0.2, lambda: os.write(fd, json.dumps(owner).encode()))
    writer.start()
    try:
        with pytest.raises(ResumeError, match="a cv named 'dup' is being run by pid 4242 on node7"):
            naming.claim_name(tmp_path, "dup", "cv")
    finally:
        writer.join()
        os.close(fd)
