"""Pure helpers of the fault handling: the finishing command line, resumed sampler seeds, name claims."""

from __future__ import annotations

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
