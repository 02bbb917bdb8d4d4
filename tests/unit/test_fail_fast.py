"""The first minutes of a new user (issue 29): mistakes in tunecv's own keys and files fail fast and clear.

A mistake that tunecv can see without the model class is reported before torch and Lightning are imported
(one line, exit 2, ``--debug`` keeps the code); a missing ``--config`` file says so; the tune bar keeps its
elapsed time and ETA whole at 80 columns; third-party chatter is off unless ``--verbose``; the SLURM
tests' install hint names what ``.ci/run`` installs.
"""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tunecv import cli

ROOT = Path(__file__).resolve().parents[2]
TRAIN = str(ROOT / "configs" / "digits" / "train.yaml")
TUNE = str(ROOT / "configs" / "digits" / "tune.yaml")


def mistakes(tmp: Path) -> list[tuple[list[str], str]]:
    """Ten mistakes about tunecv's own keys and files, and a word of the line each must get."""
    (tmp / "broken.yaml").write_text("cv:\n  n_seeds: [1\n")
    (tmp / "unknown.yaml").write_text("cvv: {n_seeds: 2}\n")
    (tmp / "space.yaml").write_text("hyperparameters:\n  model.init_args.lr: {distribution: loguniform, low: 1.0, high: 0.1}\n")
    return [
        (["train", "--config", str(tmp / "nope.yaml")], "no such file"),
        (["train", "--config", str(tmp)], "is a directory"),
        (["train", "--config", str(tmp / "broken.yaml")], "valid YAML"),
        (["train", "--config", TRAIN, "--config", str(tmp / "unknown.yaml")], "cvv"),
        (["cv", "--config", TRAIN, "--cv.n_seed", "2"], "cv.n_seed"),
        (["cv", "--config", TRAIN, "--cv.n_seeds", "0"], "cv.n_seeds"),
        (["cv", "--config", TRAIN, "--split.fold_method", "kfoldx"], "split.fold_method"),
        (["cv", "--config", TRAIN, "--executor", "slurm", "--slurm.time", "0"], "slurm.time"),
        (["tune", "--config", TUNE, "--tune.sampler", "tpee"], "tune.sampler"),
        (["tune", "--config", TUNE, "--tune.search_space", str(tmp / "space.yaml")], "low"),
    ]


def test_mistakes_in_tunecvs_own_keys_and_files_fail_before_torch_and_lightning(tmp_path):
    code = ("import json, sys, contextlib, io; from tunecv import cli\n"
            "out = []\n"
            "for words in json.loads(sys.argv[1]):\n"
            "    err = io.StringIO()\n"
            "    with contextlib.redirect_stderr(err):\n"
            "        out.append([cli.main(words), err.getvalue()])\n"
            "heavy = [m for m in ('torch', 'lightning', 'optuna') if m in sys.modules]\n"
            "print(json.dumps({'out': out, 'heavy': heavy}))\n")
    cases = mistakes(tmp_path)
    proc = subprocess.run([sys.executable, "-c", code, json.dumps([w for w, _ in cases])], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    for (words, word), (rc, err) in zip(cases, result["out"]):
        assert rc == 2, (words, err)
        assert err.startswith("tunecv: error: ") and err.count("\n") == 1, (words, err)
        assert word in err, (words, err)
    assert result["heavy"] == []  # every one of them was reported before torch and lightning were imported


def test_a_missing_config_file_says_no_such_file(tmp_path, capsys):
    missing = tmp_path / "confg.yaml"
    assert cli.main(["train", "--config", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == f"tunecv: error: `--config` {str(missing)!r}: no such file\n"


def test_debug_keeps_the_exit_code_and_adds_the_traceback(tmp_path, capsys):
    assert cli.main(["train", "--config", str(tmp_path / "nope.yaml"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].endswith("no such file")


def test_verbose_is_a_flag(tmp_path, capsys):
    assert cli.main(["train", "--verbose", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert "--verbose" in cli.USAGE and "--verbose" in cli._command_help("train")


@pytest.mark.parametrize("message", ["GPU available: False, used: False", "TPU available: False, using: 0 TPU cores",
                                     "💡 Tip: For seamless cloud uploads and versioning, try installing litmodels",
                                     "A new study created in RDB with name: digits"])
def test_third_party_chatter_is_off_unless_verbose(monkeypatch, message):
    from tunecv import _chatter

    logger_name = ("optuna.storages._rdb.storage" if "study" in message
                   else "lightning.pytorch.utilities.rank_zero")
    logger = logging.getLogger(logger_name)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        monkeypatch.delenv(_chatter.ENV, raising=False)
        _chatter.install()
        logger.info(message)
        logger.info("`Trainer.fit` stopped: `max_epochs=1` reached.")
        assert stream.getvalue() == "`Trainer.fit` stopped: `max_epochs=1` reached.\n"
        _chatter.install(verbose_flag=True)
        logger.info(message)
        assert message in stream.getvalue()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        monkeypatch.delenv(_chatter.ENV, raising=False)


@pytest.mark.parametrize("width", [80, 100, 160])
def test_the_tune_bar_fits_its_width_with_elapsed_and_eta_whole(width):
    from rich.console import Console
    from rich.progress import Progress

    from tunecv.progress import LiveBar

    name = "a-long-tune-name-of-a-real-project"
    info = "pruned 12 failed 0 best 1.72668 | jobs: 2 running, 3 queued"
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None)
    progress = Progress(*LiveBar("tune", enabled=True, live=True).columns(width, name, 100), console=console)
    task = progress.add_task(name, total=100, completed=37, info=info)
    progress.tasks[0].start_time = progress.get_time() - 3725  # 1:02:05 elapsed
    progress.update(task, completed=37)
    console.print(progress.make_tasks_table(progress.tasks))
    (line,) = buf.getvalue().splitlines()
    assert len(line) <= width
    assert re.search(r" 1:02:05 eta (\d+:\d\d:\d\d|-:--:--)$", line), line
    assert line.startswith("tune a-long") and "37/100" in line


def test_the_slurm_skip_hint_names_what_ci_installs():
    from tests.slurm import cluster

    text = (ROOT / ".ci" / "run").read_text()
    line = next(ln for ln in text.splitlines() if "apt-get install" in ln and "slurm-wlm" in ln)
    following = text.splitlines()[text.splitlines().index(line) + 1]
    words = (line.rsplit("-qq", 1)[1] + " " + following).replace("\\", " ").replace(">/dev/null", " ").split()
    installed = [w for w in words if not w.startswith("-")]
    assert sorted(cluster.APT_PACKAGES) == sorted(installed)
    assert cluster.INSTALL_HINT.endswith(" ".join(cluster.APT_PACKAGES))
