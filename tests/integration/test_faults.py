"""The fault campaign's findings, each as a test: real processes, real signals, damaged files.

Nothing lost, nothing done twice: a resumed tune continues its sampler, two commands never run one name
at once, a damaged checkpoint is set aside, a signal stops a command with a line that says how to finish.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import ext_cfg
from tunecv import naming
from tunecv.cv import cross_validate
from tunecv.results import read_run_infos
from tunecv.tune import tune

SPACE = {"hyperparameters": {
    "model.init_args.lr": {"distribution": "loguniform", "low": 0.01, "high": 0.3},
    "model.init_args.hidden": [4, 8],
}}


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def tunecv(*args: str) -> list[str]:
    return [sys.executable, "-m", "tunecv", *args]


def cv_cfg(tmp_path: Path, sleep: float = 0.0, **extra) -> dict:
    cfg = ext_cfg(tmp_path, **{"split": {"fold_method": "kfold", "total_folds": 3}, **extra})
    cfg["trainer"]["max_epochs"] = 1
    cfg["data"]["init_args"]["sleep"] = sleep
    return cfg


def tune_cfg(tmp_path: Path, n_trials: int, **tune_keys) -> dict:
    cfg = cv_cfg(tmp_path, split={"fold_method": "kfold", "total_folds": 2})
    cfg["tune"] = {"search_space": str(write(tmp_path / "space.yaml", SPACE)), "n_trials": n_trials, **tune_keys}
    return cfg


def points(study: optuna.Study) -> list[tuple]:
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return [tuple(sorted(t.params.items())) for t in study.get_trials(states=done)]


# -- 1. a resumed tune continues its sampler -------------------------------------------------------------

def test_a_resumed_tune_proposes_no_point_again_and_a_fresh_one_reproduces(tmp_path, external_pkg):
    first = tune(tune_cfg(tmp_path, 3), name="t", progress=False)
    more = tune(tune_cfg(tmp_path, 6), name="t", resume=True, progress=False)
    seen = points(more.study)
    assert len(seen) == 6 and len(set(seen)) == 6  # the resume did not start the seeded stream again
    again = tune(tune_cfg(tmp_path, 3), name="t2", progress=False)
    assert points(again.study) == points(first.study)[:3]  # same seed, fresh tune: the same trials


# -- 2. one command per name ---------------------------------------------------------------------------

def race(cmds: list[list[str]], cwd: Path) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen(c, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        outs.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return outs


def test_two_cvs_racing_for_one_name_run_it_once(tmp_path, external_pkg):
    path = write(tmp_path / "c.yaml", cv_cfg(tmp_path, sleep=1.0))
    outs = race([tunecv("cv", "--config", str(path), "--name", "dup", "--quiet")] * 2, tmp_path)
    assert sorted(o.returncode for o in outs) == [0, 2], [o.stderr[-1500:] for o in outs]
    line = next(o for o in outs if o.returncode == 2).stderr.strip().splitlines()[-1]
    assert "a cv named 'dup'" in line and ("is being run by pid" in line or "exists" in line), \
        [o.stderr[-1500:] for o in outs]
    cv_dir = tmp_path / "artifacts" / "_cross_validations" / "dup"
    runs = [p for p in cv_dir.iterdir() if p.is_dir()]
    assert len(runs) == 3 and len(read_run_infos(cv_dir / "run_infos.parquet")) == 3
    assert not list(cv_dir.parent.glob(".dup.lock"))  # the winner let go of the name


@pytest.mark.parametrize("command", ["train", "tune"])
def test_a_name_held_by_a_live_process_is_refused_with_its_pid_and_host(tmp_path, external_pkg, command):
    cfg = tune_cfg(tmp_path, 2) if command == "tune" else cv_cfg(tmp_path)
    path = write(tmp_path / "c.yaml", cfg)
    parent = tmp_path / "artifacts" / ("_runs" if command == "train" else "")
    with naming.claim_name(parent, "dup", "run" if command == "train" else "tune"):  # held by this process
        out = subprocess.run(tunecv(command, "--config", str(path), "--name", "dup"), cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-1500:]
    line = out.stderr.strip().splitlines()[-1]
    what = "run" if command == "train" else "tune"
    assert f"a {what} named 'dup' is being run by pid {os.getpid()} on {socket.gethostname()}" in line, line


# -- 3. a damaged checkpoint is set aside ---------------------------------------------------------------

def test_a_truncated_last_checkpoint_is_set_aside_and_the_run_finishes(tmp_path, external_pkg):
    cfg = cv_cfg(tmp_path)
    cfg["trainer"]["max_epochs"] = 2
    cfg["checkpoint"] = {"monitor": "val/loss", "mode": "min", "save_top_k": 1}
    cross_validate(cfg, name="c", progress=False)
    cv_dir = tmp_path / "artifacts" / "_cross_validations" / "c"
    run = sorted(p for p in cv_dir.iterdir() if p.is_dir())[1]
    # as a crash mid-write leaves it: a last checkpoint cut short, no run_info.json
    (run / "run_info.json").unlink()
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:200])
    for _ in range(2):  # a second resume finds nothing damaged left
        result = cross_validate(cfg, name="c", resume=True, progress=False)
        assert result.n_completed == 3 and result.n_failed == 0
    aside = list((run / "checkpoints").glob("last.ckpt.damaged-*"))
    assert len(aside) == 1  # set aside once; the run went on from its valid best checkpoint


# -- 5. SIGINT / SIGTERM: 130 / 143 and the command that finishes; 8. nothing outlives the command -----------

def session_processes(sid: int) -> list[str]:
    """Processes still alive in session ``sid`` (a command started with ``start_new_session``)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(text.split(")")[0] + ")")
    return found


@pytest.mark.parametrize(("command", "signum", "strategy"), [
    ("cv", signal.SIGINT, "auto"),
    ("cv", signal.SIGTERM, "cv-parallel"),
    ("tune", signal.SIGINT, "auto"),
])
def test_a_signal_exits_128_plus_it_and_names_the_command_that_finishes(tmp_path, external_pkg, command, signum,
                                                                       strategy):
    cfg = tune_cfg(tmp_path, 3) if command == "tune" else cv_cfg(tmp_path)
    cfg["data"]["init_args"]["sleep"] = 0.6
    cfg["strategy"] = strategy
    if strategy == "cv-parallel":
        cfg["devices"] = [0, 1]
    path = write(tmp_path / "c.yaml", cfg)
    cv_dir = tmp_path / "artifacts" / ("_cross_validations/sig" if command == "cv" else "sig")
    proc = subprocess.Popen(tunecv(command, "--config", str(path), "--name", "sig"), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while not list(cv_dir.rglob("run_info.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signum)  # as a terminal's Ctrl-C or a scheduler's SIGTERM: the whole group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err[-2000:]
    assert session_processes(proc.pid) == []  # no worker, fork server or tracker outlives the command
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"tunecv: {'interrupted' if signum == signal.SIGINT else 'terminated'} "
                           f"({signal.Signals(signum).name})"), line
    words = shlex.split(line.split("finish with: ", 1)[1])
    assert words[:2] == ["tunecv", command] and words[-1] == "--resume" and "sig" in words
    assert "--name" in words and str(path) in words
    if (command, signum) != ("cv", signal.SIGINT):
        return
    # the printed command finishes the cv, here on a 2-worker pool: every run once, nothing left running
    words += ["--strategy", "cv-parallel", "--devices", "[0, 1]"]
    finish = subprocess.Popen(tunecv(*words[1:]), cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    _, err = finish.communicate(timeout=300)
    assert finish.returncode == 0, err[-2000:]
    assert session_processes(finish.pid) == []
    df = read_run_infos(cv_dir / "run_infos.parquet")
    assert df["run_name"].is_unique and set(df["status"]) == {"completed"} and len(df) == 3


# -- 4. a worker of a shared study never leaves it short --------------------------------------------------

def journal_study(path: Path, name: str) -> optuna.Study:
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(JournalFileBackend(str(path))))


def test_a_worker_waits_for_a_dead_workers_trial_and_finishes_the_study(tmp_path, external_pkg):
    journal = tmp_path / "journal.log"
    cfg = tune_cfg(tmp_path, 3, storage=f"journal://{journal}")
    cfg["data"]["init_args"]["sleep"] = 0.5
    path = write(tmp_path / "tune.yaml", cfg)
    tdir = tmp_path / "artifacts" / "sh"
    proc = subprocess.Popen(tunecv("tune", "--config", str(path), "--name", "sh", "--quiet"), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(tdir.rglob("run_info.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # mid-trial: its trial stays RUNNING in the study
    proc.wait()
    running = [t for t in journal_study(journal, "sh").trials if t.state == optuna.trial.TrialState.RUNNING]
    assert len(running) == 1
    # A second worker (another slot) runs what is left, then waits for the dead worker's trial to go
    # stale (tune.heartbeat_grace) and runs it too, instead of ending with the study short.
    cfg["tune"]["heartbeat_grace"] = 3.0
    cfg["data"]["init_args"]["sleep"] = 0.0
    tune(cfg, name="sh", progress=False)
    study = journal_study(journal, "sh")
    assert len(points(study)) == 3 and len(set(points(study))) == 3
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert any(t.user_attrs.get("requeued_from") == running[0].number for t in study.trials)
    df = read_run_infos(tdir / "run_infos.parquet")
    assert df["run_name"].is_unique and len(df) == 6 and set(df["status"]) == {"completed"}


def test_a_restarted_worker_takes_its_own_trial_back_at_once(tmp_path, external_pkg):
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "journal.log"
    cfg = tune_cfg(tmp_path, 2, storage=f"journal://{journal}", worker_id="node3-gpu1")
    cfg["tune"]["heartbeat_grace"] = 3600.0  # the heartbeat rule alone would wait an hour
    tune(tune_cfg(tmp_path, 1, storage=f"journal://{journal}", worker_id="node3-gpu1"), name="w", progress=False)
    study = optuna.load_study(study_name="w", storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))
    # the worker's earlier life died in the middle of trial 1: RUNNING, a fresh heartbeat, its slot
    dead = study.ask()
    dead.suggest_float("model.init_args.lr", 0.01, 0.3, log=True)
    dead.suggest_categorical("model.init_args.hidden", [4, 8])
    study._storage.set_trial_system_attr(dead._trial_id, "tunecv:heartbeat", time.time())
    study._storage.set_trial_system_attr(dead._trial_id, "tunecv:worker", "node3-gpu1")
    t0 = time.time()
    result = tune(cfg, name="w", progress=False)
    assert time.time() - t0 < 300
    states = [t.state for t in result.study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2 and optuna.trial.TrialState.RUNNING not in states
    assert any(t.user_attrs.get("requeued_from") == dead.number for t in result.study.trials)


# -- 9. CPU threads fit the cores that are free ------------------------------------------------------------

def _busy() -> None:
    while True:
        pass


def test_a_serial_run_on_a_busy_machine_gets_the_free_cores_and_the_key_overrides(tmp_path, external_pkg):
    import multiprocessing

    import torch

    from tunecv.executors import available_cpus

    extmodels = tmp_path / "outside" / "extmodels" / "__init__.py"
    extmodels.write_text(extmodels.read_text() + (
        "\n\nclass ThreadsNet(BlobNet):\n"
        "    def on_validation_epoch_end(self):\n"
        "        self.log('threads', float(torch.get_num_threads()))\n"))
    cfg = cv_cfg(tmp_path, cv={"n_seeds": 1, "n_folds": 1, "scoring_metric": ["val/acc"]})
    cfg["model"]["class_path"] = "extmodels.ThreadsNet"
    cpus = available_cpus()
    before = torch.get_num_threads()
    torch.set_num_threads(cpus)  # torch's own default: one thread per core
    hogs = [multiprocessing.get_context("fork").Process(target=_busy, daemon=True) for _ in range(cpus)]
    for h in hogs:
        h.start()
    try:
        time.sleep(0.3)
        busy = cross_validate(cfg, name="busy", progress=False)
        cfg["local"] = {"threads_per_worker": 2}
        forced = cross_validate(cfg, name="forced", progress=False)
    finally:
        for h in hogs:
            h.terminate()
            h.join()
        torch.set_num_threads(before)
    assert busy.run_infos["threads"].tolist() == [1.0]  # every core busy elsewhere: one thread, not cpus
    assert forced.run_infos["threads"].tolist() == [2.0]  # local.threads_per_worker wins
    assert torch.get_num_threads() == before


# -- 7. the pool pays the imports once: its fork server is a fork of the command ----------------------------

def test_the_fork_server_of_a_cv_parallel_command_is_a_fork_of_the_command(tmp_path, external_pkg):
    cfg = cv_cfg(tmp_path, strategy="cv-parallel", devices=[0, 1])
    path = write(tmp_path / "c.yaml", cfg)
    code = (
        "import multiprocessing.forkserver, sys\n"
        "from tunecv.cli import main\n"
        "if __name__ == '__main__':\n"
        f"    code = main(['cv', '--config', {str(path)!r}, '--name', 'lean', '--quiet'])\n"
        "    server = multiprocessing.forkserver._forkserver._forkserver_pid\n"  # ended at exit, not yet
        "    with open(f'/proc/{server}/cmdline') as a, open('/proc/self/cmdline') as b:\n"
        "        print(a.read() == b.read(), code)\n"
    )
    script = tmp_path / "driver.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    # not a second interpreter importing torch, lightning and the rest again: a copy of this process
    assert out.stdout.strip().splitlines()[-1] == "True 0", out.stderr[-2000:]
    df = read_run_infos(tmp_path / "artifacts" / "_cross_validations" / "lean" / "run_infos.parquet")
    assert len(df) == 3 and set(df["status"]) == {"completed"}
    # a data error is still one line, exit 2, before anything is written: from the pool's first worker
    bad = subprocess.run(tunecv("cv", "--config", str(path), "--name", "bad", "--split.fold_method", "stratified",
                                "--split.stratify_column", "nope"), cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2, bad.stderr[-2000:]
    line = bad.stderr.strip().splitlines()[-1]
    assert line.startswith("tunecv: error:") and "stratify_column" in line, line
    assert not (tmp_path / "artifacts" / "_cross_validations" / "bad").exists()
