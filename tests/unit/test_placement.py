"""Placement has one owner: ``tunecv.placement`` resolves it once per command, executors report what they can do
through the ``Executor`` contract, and no other module reads the device settings to decide where a run goes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tunecv import executors, placement
from tunecv.config import load_config
from tunecv.errors import ConfigError
from tunecv.executors import DevicePoolExecutor, Executor, Job, SerialExecutor, _registry

SRC = Path(__file__).resolve().parents[2] / "src" / "tunecv"
# The config types the device keys (schema, defaults, help) and checks their ranges; executors turn their own
# sections into jobs.
OWNERS = {"placement.py", "config/schema.py", "config/validation.py"}
DEVICE_KEYS = set(placement.DEVICE_KEYS)
PARALLEL_MODES = {"cv-parallel", "tune-parallel"}


def modules(skip_owners: bool = True) -> list[tuple[str, ast.AST]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if skip_owners and (rel in OWNERS or rel.startswith("executors/")):
            continue
        out.append((rel, ast.parse(path.read_text(), filename=str(path))))
    return out


def placement_reads(tree: ast.AST) -> list[str]:
    """Where a module decides placement itself: a device setting read, the parallel modes compared or listed."""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "device_setting"
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in DEVICE_KEYS):
            found.append(f"{node.lineno}: device_setting({node.args[0].value!r})")
        elif isinstance(node, (ast.Name, ast.Attribute)) and getattr(node, "id", getattr(node, "attr", None)) in (
                "PARALLEL_STRATEGIES", "runs_per_device"):
            found.append(f"{node.lineno}: {getattr(node, 'id', getattr(node, 'attr', ''))}")
        elif isinstance(node, ast.Compare):
            for part in [node.left, *node.comparators]:
                if isinstance(part, ast.Constant) and part.value in PARALLEL_MODES:
                    found.append(f"{node.lineno}: compares with {part.value!r}")
    return found


def test_the_probe_finds_a_placement_decision():
    tree = ast.parse('if cfg.device_setting("strategy") == "cv-parallel" or x in PARALLEL_STRATEGIES:\n    pass\n')
    assert len(placement_reads(tree)) == 3


def test_no_module_but_placement_decides_where_a_run_goes():
    found = {rel: hits for rel, tree in modules() if (hits := placement_reads(tree))}
    assert not found, f"ask tunecv.placement instead: {found}"


def test_no_executor_is_recognised_by_its_class_or_probed_for_an_attribute():
    found = []
    for rel, tree in modules(skip_owners=False):
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            names = {getattr(a, "id", getattr(a, "attr", None)) for a in node.args}
            consts = {a.value for a in node.args if isinstance(a, ast.Constant)}
            if node.func.id == "isinstance" and names & {"DevicePoolExecutor", "SerialExecutor", "SlurmExecutor",
                                                         "RayExecutor"}:
                found.append(f"{rel}:{node.lineno} isinstance")
            if node.func.id in ("getattr", "hasattr") and consts & {"session_per_job", "pinned", "n_slots",
                                                                      "groups_sessions", "validate_in_job"}:
                found.append(f"{rel}:{node.lineno} {node.func.id}")
    assert not found, f"use the Executor contract's properties: {found}"


def test_only_the_job_itself_touches_its_future():
    found = [f"{rel}:{node.lineno}" for rel, tree in modules(skip_owners=False) if rel != "executors/_base.py"
             for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "_future"]
    assert not found, f"set a job's outcome through Job.set_result / set_exception / set_running_or_notify_cancel: {found}"


@pytest.mark.parametrize("level", ["cv.py", *(f"tune/{p.name}" for p in sorted((SRC / "tune").glob("*.py"))), "nested.py", "train.py", "build.py", "cli.py", "placement.py",
                                   "scheduler.py"])
def test_levels_import_executors_only_by_their_public_names(level):
    tree = ast.parse((SRC / level).read_text())
    private = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = ("." * node.level) + (node.module or "")
            names = [module] + [f"{module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        private += [n for n in names if "executors._" in n or n.endswith("executors._")]
    assert not private, f"{level} imports private executor modules: {private}"


# -- what placement resolves -------------------------------------------------------------------------------

def cfg(**kw):
    return load_config({"accelerator": "cpu", **kw})


def test_serial_placement_runs_each_run_alone_on_its_devices():
    where = placement.resolve(cfg(devices=[0, 1]))
    assert where.mode is None and not where.parallel
    assert where.planned_devices(2) == [[0, 1], [0, 1]]
    assert not where.runs_several_at_once("cv") and not where.runs_several_at_once("tune")


def test_the_trainer_strategy_sets_the_mode_and_auto_is_decided_for_a_pool(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    where = placement.resolve(load_config({"trainer": {"strategy": "tune-parallel"}}))
    assert where.mode == "tune-parallel" and where.accelerator == "cpu"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert placement.resolve(load_config({"strategy": "cv-parallel"})).accelerator == "gpu"
    assert placement.resolve(load_config({})).accelerator == "auto"  # one run alone: Lightning decides


@pytest.mark.parametrize("mode, cv_slots, tune_slots", [
    ("cv-parallel", {"per_session": 2, "pinned": True}, {"per_session": 2, "max_sessions": 1, "pinned": True}),
    ("tune-parallel", None, {"per_session": 1, "max_sessions": 2, "pinned": True}),
])
def test_slots_runs_per_session_and_sessions_at_once(mode, cv_slots, tune_slots):
    c = cfg(strategy=mode, devices=[0, 1])
    where = placement.resolve(c)
    with where.make_executor(c, "tune") as ex:
        assert isinstance(ex, DevicePoolExecutor) and ex.n_slots == 2 and ex.session_per_job is False
        assert where.drive_options(ex, "tune") == tune_slots
    if cv_slots is not None:
        with where.make_executor(c, "cv") as ex:
            assert where.drive_options(ex, "cv") == cv_slots
    else:  # a cv under tune-parallel runs its runs in series
        assert isinstance(where.make_executor(c, "cv"), SerialExecutor)


class _Grouping(SerialExecutor):
    name = "grouping"
    pinned = True
    groups_sessions = True


def grouping_from_config(cfg, *, parallel, accelerator):
    return _Grouping()


@pytest.mark.parametrize("mode, grouped", [("tune-parallel", True), ("cv-parallel", False), ("auto", False)])
def test_an_executor_that_groups_sessions_gets_one_job_per_cv_only_under_tune_parallel(monkeypatch, mode, grouped):
    monkeypatch.setitem(_registry.EXECUTORS, "grouping", f"{__name__}:grouping_from_config")
    c = cfg(strategy=mode, executor="grouping")
    ex = placement.resolve(c).make_executor(c, "tune")
    assert isinstance(ex, Executor) and ex.session_per_job is grouped
    assert ex.run_overrides() == {"devices": [0], "strategy": "auto", "num_nodes": 1}


def test_a_pinned_job_with_several_devices_trains_with_the_executors_ddp():
    assert executors.job_overrides(1, "ddp") == {"devices": [0], "strategy": "auto", "num_nodes": 1}
    assert executors.job_overrides(3, "ddp") == {"devices": [0, 1, 2], "strategy": "ddp", "num_nodes": 1}
    assert SerialExecutor().run_overrides() == {}  # not pinned: the run keeps the config's settings


def test_one_run_of_many_forks_ddp_and_one_run_alone_keeps_its_trainer_settings():
    with pytest.warns(UserWarning, match="ddp_fork"):
        assert placement.many_runs_config(cfg(strategy="ddp")).strategy == "ddp_fork"
    assert placement.trainer_device_kwargs(cfg(strategy="cv-parallel", devices=[0, 1])) == {
        "accelerator": "cpu", "strategy": "auto", "devices": 2, "num_nodes": 1}


def test_placement_errors_name_the_key():
    with pytest.raises(ConfigError, match="`strategy` tune-parallel runs the cvs of a tune"):
        placement.check_cv(cfg(strategy="tune-parallel"))
    with pytest.raises(ConfigError, match="exclude each other"):
        placement.check_tune(cfg(strategy="tune-parallel", trainer={"strategy": "cv-parallel"}))


def test_a_job_is_ended_only_through_its_own_methods():
    job = Job("f")
    assert job.set_running_or_notify_cancel() and job.running()
    job.set_result(3)
    assert job.done() and job.result() == 3
    failed = Job("g")
    failed.set_exception(ValueError("bad"))
    with pytest.raises(ValueError, match="bad"):
        failed.result()
