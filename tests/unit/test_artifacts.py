"""The artifact tree has one owner: every file name is defined once, in ``tunecv.artifacts.files``; one
workspace lifecycle (messages, claim, snapshot); one ``run_info.json`` writer; one ``folder_kind``."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from tunecv import artifacts, naming
from tunecv.artifacts import files, run_info, workspace
from tunecv.artifacts.kinds import folder_kind
from tunecv.errors import ConfigError, ResumeError

SRC = Path(artifacts.__file__).resolve().parents[2]
NAMES = {getattr(files, n) for n in files.__all__}
# names also used as words of tunecv's vocabulary (a logger kind, an executor, a command): a literal of
# these is a file name only where it is joined to a path, which `test_no_file_name_is_spelled_twice` checks
VOCABULARY = {files.CSV_DIR, files.WANDB_DIR, files.SLURM_DIR, files.REPORT_DIR}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def file_name_literals(src: Path = SRC) -> list[str]:
    """``file:line name`` of each string literal in ``src`` (f-string parts included, docstrings not) that
    spells a file name of the tree, outside ``tunecv/artifacts/files.py``."""
    found = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        if rel == "tunecv/artifacts/files.py":
            continue
        tree = ast.parse(path.read_text())
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in skip:
                continue
            text = node.value
            for name in NAMES - VOCABULARY:
                if name in text:
                    found.append(f"{rel}:{node.lineno} {name!r}")
            for name in VOCABULARY & NAMES:
                if text == name and _is_path_join(tree, node):
                    found.append(f"{rel}:{node.lineno} {name!r}")
    return found


def _is_path_join(tree: ast.AST, literal: ast.Constant) -> bool:
    """The literal is the right side of ``path / "name"``."""
    return any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div) and n.right is literal for n in ast.walk(tree))


def test_the_scan_finds_a_file_name_spelled_outside_artifacts(tmp_path):
    (tmp_path / "tunecv").mkdir()
    (tmp_path / "tunecv" / "a.py").write_text('"""Writes config.yaml."""\nP = "x" / "csv"\nQ = f"{P}/config.yaml"\n'
                                              'K = "csv"\n')
    assert file_name_literals(tmp_path) == ["tunecv/a.py:2 'csv'", "tunecv/a.py:3 'config.yaml'"]


def test_no_file_name_is_spelled_twice():
    """`grep '"config.yaml"' src/tunecv` finds one definition; the same for every file name of the tree."""
    assert file_name_literals() == [], "use the names of tunecv.artifacts.files"


def test_every_file_name_is_one_constant():
    values = [getattr(files, n) for n in files.__all__]
    assert len(values) == len(set(values))
    assert {getattr(artifacts, n) for n in files.__all__} == NAMES


# -- the workspace lifecycle --------------------------------------------------------------------------------

def test_the_messages_name_level_name_folder_and_both_flags(tmp_path):
    msg = str(workspace.exists_error("cv", "dup", tmp_path / "dup"))
    assert msg == (f"a cv named 'dup' exists in {tmp_path / 'dup'}; pass --resume to finish it or --reset to "
                   f"delete it and start over")
    assert "pass --resume to continue it" in str(workspace.exists_error("run", "r", tmp_path))
    assert str(workspace.needs_name("nested")) == ("--resume needs the `name` of the nested cv to finish "
                                                   "(--name NAME)")
    assert str(workspace.nothing_to_resume("tune", "t", tmp_path, "why")) == \
        f"nothing to resume: no tune named 't' in {tmp_path} (why)"


def test_choose_name_checks_a_given_name_and_generates_one_otherwise():
    assert workspace.choose_name("cv", "ok-1", resume=True, free=lambda: "unused") == "ok-1"
    assert workspace.choose_name("cv", None, resume=False, free=lambda: "fresh") == "fresh"
    with pytest.raises(ResumeError, match="--resume needs the `name` of the cv"):
        workspace.choose_name("cv", None, resume=True, free=lambda: "fresh")
    with pytest.raises(ConfigError, match="`name` must be a folder name"):
        workspace.choose_name("tune", "../x", resume=False, free=lambda: "fresh")


@pytest.mark.parametrize("kind", ["run", "cv", "tune", "nested"])
def test_check_on_disk_for_every_level(tmp_path, kind):
    where = tmp_path / "x"
    workspace.check_on_disk(kind, "x", None, tmp_path, resume=False, reset=False)
    workspace.check_on_disk(kind, "x", where, tmp_path, resume=True, reset=False)
    workspace.check_on_disk(kind, "x", where, tmp_path, resume=False, reset=True)
    with pytest.raises(ResumeError, match=f"named 'x' exists in {where}; pass --resume"):
        workspace.check_on_disk(kind, "x", where, tmp_path, resume=False, reset=False)
    with pytest.raises(ResumeError, match="nothing to resume"):
        workspace.check_on_disk(kind, "x", None, tmp_path, resume=True, reset=False)
    with pytest.raises(ResumeError, match=r"nothing to resume: .* \(not mine\)"):
        workspace.check_on_disk(kind, "x", where, tmp_path, resume=True, reset=False, resumable=False, why="not mine")


def test_claimed_checks_again_under_the_claim_and_announces(tmp_path):
    folder = tmp_path / "c"
    with workspace.claimed("cv", "c", tmp_path, found=lambda: None, resume=False, reset=False) as claim:
        assert claim.held and naming.current == {"kind": "cv", "name": "c"}
        with pytest.raises(ResumeError, match=f"a cv named 'c' is being run by pid {os.getpid()}"):
            naming.claim_name(tmp_path, "c", "cv")
    assert not naming.lock_path(tmp_path, "c").exists()
    folder.mkdir()
    with pytest.raises(ResumeError, match="a cv named 'c' exists"), \
            workspace.claimed("cv", "c", tmp_path, found=lambda: folder, resume=False, reset=False):
        pass
    with workspace.claimed("cv", "c", tmp_path, found=lambda: folder, resume=True, reset=False):
        pass


def test_discard_and_snapshot(tmp_path):
    folder = tmp_path / "a" / "b"
    assert workspace.snapshot(folder, "name: b\n") == folder / files.CONFIG_FILE
    assert workspace.read_snapshot(folder) == {"name": "b"}
    workspace.discard([folder, tmp_path / "missing"])
    assert not folder.exists()


def test_the_levels_share_the_lifecycle():
    """No level spells a resume message or claims a name by itself: they ask the workspace."""
    for module in ("cv", "tune", "nested", "train"):
        package = SRC / "tunecv" / module  # a level split into a package: all its modules
        files = sorted(package.glob("*.py")) if package.is_dir() else [SRC / "tunecv" / f"{module}.py"]
        text = "".join(f.read_text() for f in files)
        assert "nothing to resume: no" not in text and "delete it and start over" not in text, module
        assert "claim_name(" not in text, module


# -- run_info.json ------------------------------------------------------------------------------------------

def test_the_run_and_the_executor_keep_each_other_s_part(tmp_path):
    run_info.record_job(tmp_path, "slurm", "11", log="l", job_name="tunecv-x", job_folder=tmp_path / "slurm")
    run_info.write_result(tmp_path, {"name": "x", "status": "completed"})
    run_info.record_job(tmp_path, "slurm", "12", log="l2", job_name="tunecv-x", job_folder=tmp_path / "slurm",
                        runs=["a", "b"])
    data = run_info.read_run_info(tmp_path)
    assert data["status"] == "completed"
    assert data["executor"] == {"name": "slurm", "job_ids": ["11", "12"], "log": "l2", "job_name": "tunecv-x",
                                "folder": str(tmp_path / "slurm"), "runs": ["a", "b"]}
    run_info.write_result(tmp_path, None)  # a fresh attempt: no result, the jobs kept
    assert run_info.read_run_info(tmp_path) == {"executor": data["executor"]}
    assert run_info.executor_record(tmp_path)["job_ids"] == ["11", "12"]
    run_info.record_job(tmp_path, "ray", "r1", log="", job_name="n", job_folder=tmp_path)
    assert run_info.executor_record(tmp_path)["job_ids"] == ["r1"]  # another executor's entry is replaced


def test_no_record_reads_empty_and_a_result_alone_is_removed_on_restart(tmp_path):
    assert run_info.read_run_info(tmp_path) == {} and run_info.executor_record(tmp_path) == {}
    run_info.write_result(tmp_path, {"name": "x"})
    run_info.write_result(tmp_path, None)
    assert not (tmp_path / files.RUN_INFO_FILE).exists()
    (tmp_path / files.RUN_INFO_FILE).write_text("[1, 2]")
    assert run_info.read_run_info(tmp_path) == {}


def test_the_schema_holds_what_a_train_result_writes():
    from tunecv.train import TrainResult

    written = set(TrainResult(name="r", run_id="abcd1234", run_dir=Path("x")).to_json())
    assert written == set(run_info.RESULT_KEYS)
    assert run_info.RUN_INFO_VERSION == 1


def test_one_writer_of_run_info():
    """Only tunecv.artifacts.run_info writes run_info.json (train and the executors call it)."""
    users = [p.relative_to(SRC).as_posix() for p in sorted(SRC.rglob("*.py"))
             if "RUN_INFO_FILE" in p.read_text() and "atomic_write" in p.read_text()
             and not p.match("tunecv/artifacts/*.py")]
    assert users == []


# -- folder kinds -------------------------------------------------------------------------------------------

def test_folder_kind(tmp_path):
    assert folder_kind(tmp_path / "missing") is None
    assert folder_kind(tmp_path) is None
    cv = tmp_path / "cv"
    cv.mkdir()
    (cv / files.RUN_INFOS_FILE).write_bytes(b"")
    assert folder_kind(cv) == "cv"
    (cv / files.SPACE_FILE).write_text("{}")
    assert folder_kind(cv) == "tune"
    (cv / files.NESTED_FILE).write_text("{}")
    assert folder_kind(cv) == "nested"
    run = tmp_path / "r-abcd1234"
    (run / files.CSV_DIR).mkdir(parents=True)
    assert folder_kind(run) is None
    (run / files.CONFIG_FILE).write_text("")
    assert folder_kind(run) == "run"  # still training
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / files.STORAGE_FILE).write_bytes(b"")
    assert folder_kind(tmp_path / "t") == "tune"
