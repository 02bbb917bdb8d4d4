"""The real-project corpus (issue 23): public LightningCLI projects run unchanged under tunecv.

Each folder of ``projects/`` is a real public project reproduced small and offline (see its README): its
entry point, configs, data module, model and callbacks. Per project, one runner (``projects/_runner.py``)
runs, from a copy of the project in ``tmp_path``, with the same tiny overrides:

(a) the project's own command (``python main.py fit --config ...``), exit 0;
(b) ``tunecv train --cli <entry> --config ...`` with the configs unchanged: the probe callback
    (``projects/_probe.py``, added on the command line of both runs) must record the same model, data
    module, optimizer, schedulers, user callbacks and loggers;
(c) ``tunecv tune`` of 2 trials over a model init argument, each trial a 2-fold, 1-seed cv (one more
    ``--config`` holding only tunecv's own keys): its two cvs are checked as cross-validations of the
    project, its runs as a tune's sweep. A separate ``tunecv cv`` would only train such a cv once more
    (``tunecv cv --cli`` itself runs in tests/integration/test_user_cli.py).

Projects run two at a time, in two runner processes that take one project after another (each limited to
one torch thread); a project's four tests wait for its project.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml

HERE = Path(__file__).parent
PROJECTS = HERE / "projects"
SRC = HERE.parent.parent / "src"
CPU = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.enable_progress_bar", "false"]


@dataclass(frozen=True)
class Project:
    slug: str
    cwd: str                  # where the commands run, inside the project folder
    kind: str                 # "file" (python ENTRY ...) or "module" (python -m ENTRY ...)
    entry: str
    cli: str                  # what `--cli` names for tunecv
    configs: tuple[str, ...]  # the project's --config files (none: its default_config_files)
    overrides: tuple[str, ...]
    probe: str                # _probe.Probe (lightning) or _probe.PLProbe (pytorch_lightning)
    metric: str               # cv.scoring_metric
    tuned: str                # the search space's key
    low: float
    high: float
    before_subcommand: bool = False  # a `fit:`-nested config goes before the subcommand
    env: dict = field(default_factory=dict)


WANDB = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
CASES = [
    Project("slurm_cifar", ".", "file", "main.py", "main.py", ("config/fit.yaml",),
            ("--trainer.max_epochs", "1", *CPU), "_probe.PLProbe", "val_loss:lower",
            "model.init_args.lr", 1e-3, 1e-1),
    Project("pictures", ".", "module", "src.cli", "src.cli", (),
            ("--trainer.max_epochs", "1", *CPU), "_probe.Probe", "val/loss:lower", "model.lr", 1e-3, 1e-1),
    Project("lightning_wandb", "lightning", "file", "lightning_cli.py", "lightning_cli.py", ("config.yaml",),
            ("--trainer.max_epochs", "1", "--trainer.strategy", "auto", "--trainer.precision", "32",
             "--data.batch_size", "32", *CPU), "_probe.Probe", "val_accuracy", "model.lr", 1e-4, 1e-2,
            before_subcommand=True, env=WANDB),
    Project("care_nl_ica", ".", "module", "care_nl_ica.cli", "care_nl_ica.cli",
            ("configs/config.yaml", "configs/cpu.yaml"),
            ("--trainer.max_epochs", "1", "--model.offline", "true", *CPU), "_probe.PLProbe", "val_loss:lower",
            "model.lr", 1e-4, 1e-2, env=WANDB),
    Project("distilbert_outcome", "src", "file", "classification_main.py", "classification_main.py", ("config.yaml",),
            ("--trainer.max_epochs", "1", "--trainer.precision", "32", *CPU), "_probe.Probe", "Val/AUROC",
            "model.lr", 1e-4, 1e-2, env=WANDB),
    Project("viquae", ".", "module", "meerqat.train.trainer", "meerqat.train.trainer",
            ("experiments/rc/viquae/config.yaml",), ("--trainer.max_epochs", "1", *CPU), "_probe.PLProbe",
            "eval/f1", "model.init_args.lr", 1e-4, 1e-2),
    Project("snn_detection", ".", "file", "main.py", "main.py", (),
            ("--trainer.max_epochs", "1", "--trainer.strategy", "auto", *CPU), "_probe.Probe", "map",
            "model.init_args.learning_rate", 1e-4, 1e-2),
    Project("ipv_detection", "lightning_modules", "file", "trainer.py", "trainer.py", ("configs/sent/default.yaml",),
            ("--trainer.max_epochs", "1", "--trainer.strategy", "auto", "--trainer.fast_dev_run", "false", *CPU),
            "_probe.PLProbe", "val_loss:lower", "model.init_args.learning_rate", 1e-4, 1e-2, env=WANDB),
]
BY_SLUG = {p.slug: p for p in CASES}


def _config_args(p: Project) -> list[str]:
    return [a for c in p.configs for a in ("--config", c)]


def steps(p: Project, work: Path) -> tuple[Path, list[dict]]:
    """The four steps of ``p``, run in a copy of the project under ``work``."""
    root = work / p.slug
    shutil.copytree(PROJECTS / p.slug, root, ignore=shutil.ignore_patterns("__pycache__"))
    cwd = str(root / p.cwd)
    probe = ["--trainer.callbacks+=" + p.probe]
    tunecv_file = work / "tunecv.yaml"
    tunecv_file.write_text(yaml.safe_dump({
        "cv": {"n_seeds": 1, "scoring_metric": [p.metric]},
        "split": {"fold_method": "kfold", "total_folds": 2},
    }))
    space = work / "space.yaml"
    space.write_text(yaml.safe_dump({"hyperparameters": {p.tuned: {"distribution": "loguniform",
                                                                    "low": p.low, "high": p.high}}}))
    tune_file = work / "tune.yaml"
    tune_file.write_text(yaml.safe_dump({"tune": {"n_trials": 2, "search_space": str(space), "sampler": "random"}}))
    if p.before_subcommand:  # python lightning_cli.py --config config.yaml fit ...
        own = [*_config_args(p), "fit", *p.overrides, *probe]
    else:
        own = ["fit", *_config_args(p), *p.overrides, *probe]
    common = ["--cli", p.cli, *_config_args(p)]
    art = str(work / "artifacts")
    out = [
        {"name": "fit", "kind": p.kind, "entry": p.entry, "argv": own,
         "probe_out": str(work / "probe_fit.json")},
        {"name": "train", "kind": "tunecv", "argv": ["train", *common, *p.overrides, *probe, "--artifact_dir", art,
                                                      "--name", "corpus-train"],
         "probe_out": str(work / "probe_train.json")},
        {"name": "tune", "kind": "tunecv", "argv": ["tune", *common, "--config", str(tunecv_file),
                                                     "--config", str(tune_file), *p.overrides,
                                                     "--artifact_dir", art, "--name", "corpus-tune"]},
    ]
    for s in out:
        s["cwd"] = cwd
        s["env"] = {**p.env, "PROBE_OUT": s.get("probe_out", os.devnull)}
    return root, out


class _Pool:
    """Runs every project, two at a time, on first demand: two runner processes (``_runner.py --serve``) take
    the next project from one queue, so torch, Lightning and tunecv import twice in all, not once per project
    (the runner purges the project's modules and restores the environment between steps and projects)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.done = {p.slug: threading.Event() for p in CASES}
        self.results: dict[str, dict] = {}
        self.logs: dict[str, str] = {}
        self.started = False
        self.lock = threading.Lock()

    def _spec(self, p: Project) -> Path:
        work = self.work / p.slug
        work.mkdir(parents=True)
        root, spec_steps = steps(p, work)
        for s in spec_steps:
            s["env"]["WANDB_DIR"] = str(work)
        spec = work / "spec.json"
        spec.write_text(json.dumps({"root": str(root), "steps": spec_steps, "results": str(work / "results.json"),
                                    "done": str(work / "done")}))
        return spec

    def _start(self, index: int) -> tuple[subprocess.Popen, Path]:
        # a fresh shell's environment: no PL_GLOBAL_SEED left by an earlier test's seed_everything
        base = {k: v for k, v in os.environ.items() if k != "PL_GLOBAL_SEED"}
        env = {**base, "PYTHONPATH": os.pathsep.join([str(SRC), str(PROJECTS)]),
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        log = self.work / f"runner{index}-{time.monotonic_ns()}.log"
        with log.open("w") as out:
            proc = subprocess.Popen([sys.executable, str(PROJECTS / "_runner.py"), "--serve"], env=env, text=True,
                                    stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)
        return proc, log

    def _one(self, p: Project, proc: subprocess.Popen, log: Path) -> None:
        spec = self._spec(p)
        offset = log.stat().st_size
        proc.stdin.write(f"{spec}\n")
        proc.stdin.flush()
        done, deadline = spec.parent / "done", time.monotonic() + 600
        while not done.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if not done.exists() and proc.poll() is None:  # a project stuck for 10 minutes: its runner goes
            proc.kill()
            proc.wait()
        with log.open(errors="replace") as fh:
            fh.seek(offset)
            self.logs[p.slug] = fh.read()[-6000:]
        results = spec.parent / "results.json"
        try:  # a runner that died mid-write leaves no whole file: the step then "did not run"
            self.results[p.slug] = json.loads(results.read_text()) if results.is_file() else {}
        except ValueError:
            self.results[p.slug] = {}

    def _worker(self, queue: list[Project], index: int) -> None:
        proc = log = None
        try:
            while True:
                with self.lock:
                    if not queue:
                        return
                    p = queue.pop(0)
                try:
                    if proc is None or proc.poll() is not None:  # first, or the last one died: a new runner
                        proc, log = self._start(index)
                    self._one(p, proc, log)
                finally:
                    self.done[p.slug].set()
        finally:
            if proc is not None and proc.poll() is None:
                proc.stdin.close()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def get(self, slug: str) -> tuple[dict, str]:
        with self.lock:
            if not self.started:
                self.started = True
                queue = list(CASES)
                for index in range(2):
                    threading.Thread(target=self._worker, args=(queue, index), daemon=True).start()
        self.done[slug].wait()
        return self.results.get(slug, {}), self.logs.get(slug, "")


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return _Pool(tmp_path_factory.mktemp("projects"))


def _step(pool: _Pool, slug: str, name: str) -> dict:
    results, log = pool.get(slug)
    assert name in results, f"{slug}: step {name} did not run\n{log}"
    result = results[name]
    assert result["rc"] == 0, f"{slug} {name}: exit {result['rc']}\n{result['error']}\n{log}"
    return result


def _user_callbacks(snapshot: dict) -> list:
    """The callbacks the user configured: not tunecv's, not the CLI's SaveConfigCallback, not the progress
    bars and model summaries Lightning adds by itself, nor Lightning's default ModelCheckpoint."""
    kept = []
    for name, attrs in snapshot["callbacks"]:
        short = name.rsplit(".", 1)[-1]
        if name.startswith("tunecv.") or short in ("SaveConfigCallback", "TQDMProgressBar", "RichProgressBar",
                                                     "ModelSummary", "RichModelSummary"):
            continue
        if short == "ModelCheckpoint" and dict(map(tuple, attrs)).get("monitor") is None:
            continue
        if short == "ModelCheckpoint":  # tunecv keeps a last checkpoint for --resume (docs/training.md)
            attrs = [a for a in attrs if a[0] not in ("save_last", "dirpath")]
        kept.append([name, attrs])
    return kept


def _lightning_default_logger(name: str, attrs: list) -> bool:
    return name.rsplit(".", 1)[-1] in ("CSVLogger", "TensorBoardLogger") and not attrs


@pytest.mark.parametrize("slug", [p.slug for p in CASES])
def test_the_project_s_own_fit_runs(pool, slug):
    result = _step(pool, slug, "fit")
    assert result["snapshot"] is not None, "the probe did not record the run"


@pytest.mark.parametrize("slug", [p.slug for p in CASES])
def test_tunecv_train_builds_what_the_project_s_cli_builds(pool, slug):
    own = _step(pool, slug, "fit")["snapshot"]
    ours = _step(pool, slug, "train")["snapshot"]
    assert ours is not None, "the probe given on tunecv's command line did not record the run"
    for key in ("model", "model_hparams", "datamodule", "datamodule_hparams", "datamodule_attrs", "optimizers",
                "schedulers"):
        assert ours[key] == own[key], key
    # a seed the project sets is the run's seed; LightningCLI's `seed_everything: true` (Lightning then seeds
    # 0) is tunecv's own seed, 42 (docs/training.md, "Coming from LightningCLI")
    assert ours["seed"] == (own["seed"] if own["seed"] != "0" else "42"), "seed"
    for key in ("trainer_class", "precision", "accumulate_grad_batches", "gradient_clip_val",
                "check_val_every_n_epoch", "max_epochs"):
        assert ours["trainer"][key] == own["trainer"][key], key
    # the user's callbacks, with their settings; tunecv may add its own checkpoint / early stopping only
    # where the user configured none
    own_cbs, our_cbs = _user_callbacks(own), _user_callbacks(ours)
    for cb in own_cbs:
        assert cb in our_cbs, f"{cb[0]} is missing or configured otherwise"
    own_kinds = {n.rsplit(".", 1)[-1] for n, _ in own_cbs}
    for name, _ in our_cbs:
        if [name, _] not in own_cbs:
            assert name.rsplit(".", 1)[-1] not in own_kinds, f"tunecv added a second {name}"
    # the user's loggers (not Lightning's default one), W&B init arguments included (tags, mode, entity)
    # (a run's name, id and group are tunecv's: one W&B run per run, docs/tracking.md)
    def identity_free(loggers: list) -> list:
        return [[n, [a for a in attrs if a[0] not in ("name", "id", "group", "job_type")]] for n, attrs in loggers]

    own_loggers = identity_free([lg for lg in own["loggers"] if not _lightning_default_logger(*lg)])
    for lg in own_loggers:
        assert lg in identity_free(ours["loggers"]), f"{lg[0]} is missing or built otherwise"


@pytest.mark.parametrize("slug", [p.slug for p in CASES])
def test_tunecv_cv_cross_validates_the_project(pool, slug):
    _step(pool, slug, "tune")
    tdir = pool.work / slug / "artifacts" / "corpus-tune"
    for index in (0, 1):  # each trial's cv: 2 folds of the project, its own run_infos.parquet
        infos = pd.read_parquet(tdir / f"corpus-tune-cv{index}" / "run_infos.parquet")
        assert len(infos) == 2 and sorted(infos["fold"]) == [0, 1]
        assert (infos["status"] == "completed").all(), infos["error"].tolist()
        metric = BY_SLUG[slug].metric.split(":")[0]
        assert metric in infos.columns and infos[metric].notna().all()


@pytest.mark.parametrize("slug", [p.slug for p in CASES])
def test_tunecv_tune_sweeps_a_model_argument(pool, slug):
    _step(pool, slug, "tune")
    infos = pd.read_parquet(pool.work / slug / "artifacts" / "corpus-tune" / "run_infos.parquet")  # every run
    assert len(infos) == 4 and (infos["status"] == "completed").all(), infos.get("error")
    p = BY_SLUG[slug]
    assert p.tuned in infos.columns and infos[p.tuned].nunique() == 2
    assert infos[p.tuned].between(p.low, p.high).all()
