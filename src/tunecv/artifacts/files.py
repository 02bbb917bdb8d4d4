"""Every file and folder name of the artifact tree, defined once.

A leaf: it imports nothing, so every module (executors and trackers included) may use these names.
The folder layout itself (``_runs``, ``_cross_validations``, ``{name}-{run_id}``) is
:mod:`tunecv.naming`'s.

Every level's folder::

    config.yaml                  the resolved config it ran with (CONFIG_FILE)

A run folder (``{run_name}-{run_id}``)::

    run_info.json                its result, and the jobs an executor ran it in (RUN_INFO_FILE)
    checkpoints/                 its checkpoints (CHECKPOINT_DIR), ``last.ckpt`` among them (LAST_CHECKPOINT)
    csv/                         its metrics (CSV_DIR): METRICS_FILE (Lightning's CSVLogger), earlier
                                 attempts of a resumed run as metrics.<k>.csv
    wandb/                       its W&B files (WANDB_DIR)
    slurm/                       submitit's files of its SLURM job (SLURM_DIR; a job of several runs: in the cv)
    epoch_scores.json            a tune's run: its score per epoch, and the epoch it was pruned at (EPOCH_SCORES_FILE)

A cv folder::

    run_infos.parquet            one row per run (RUN_INFOS_FILE)

A tune folder::

    run_infos.parquet            every run of every cv, compacted (RUN_INFOS_FILE)
    run_infos.parts/             one part per finished cv, not compacted yet (PARTS_DIR)
    .run_infos.lock              the compaction's lock (PARTS_LOCK_FILE)
    optuna.db                    the default Optuna storage (STORAGE_FILE)
    search_space.json            the search space's fingerprint (SPACE_FILE)
    .retrain.lock                which worker of a shared study retrains (RETRAIN_LOCK_FILE)

A nested folder::

    nested.json                  the outer folds' plan and results (NESTED_FILE)

``report/`` (REPORT_DIR) holds what ``tunecv report`` wrote into a folder.
"""

from __future__ import annotations

__all__ = [
    "CHECKPOINT_DIR",
    "CONFIG_FILE",
    "CSV_DIR",
    "EPOCH_SCORES_FILE",
    "LAST_CHECKPOINT",
    "METRICS_FILE",
    "NESTED_FILE",
    "PARTS_DIR",
    "PARTS_LOCK_FILE",
    "REPORT_DIR",
    "RETRAIN_LOCK_FILE",
    "RUN_INFOS_FILE",
    "RUN_INFO_FILE",
    "SLURM_DIR",
    "SPACE_FILE",
    "STORAGE_FILE",
    "WANDB_DIR",
]

CONFIG_FILE = "config.yaml"  # every level's folder: the resolved config it ran with
RUN_INFO_FILE = "run_info.json"  # the record of one run, in its folder
RUN_INFOS_FILE = "run_infos.parquet"  # the results table of a cv, tune or nested folder
PARTS_DIR = "run_infos.parts"  # a tune folder's table parts: one file per finished cv (tunecv.results)
PARTS_LOCK_FILE = ".run_infos.lock"  # held while a tune's parts are compacted
CHECKPOINT_DIR = "checkpoints"  # a run's checkpoints
LAST_CHECKPOINT = "last.ckpt"  # the checkpoint a resumed run continues from (Lightning's `save_last`)
CSV_DIR = "csv"  # a run's metrics CSV (Lightning's CSVLogger)
METRICS_FILE = "metrics.csv"  # the CSVLogger's file in CSV_DIR
WANDB_DIR = "wandb"  # a run's W&B files
SLURM_DIR = "slurm"  # submitit's files of a SLURM job
STORAGE_FILE = "optuna.db"  # a tune's default Optuna storage (SQLite)
SPACE_FILE = "search_space.json"  # a tune's search-space fingerprint
RETRAIN_LOCK_FILE = ".retrain.lock"  # which worker of a shared study retrains the best parameters
NESTED_FILE = "nested.json"  # a nested cv's plan and finished outer folds
EPOCH_SCORES_FILE = "epoch_scores.json"  # a tune's run: its score per epoch (tunecv.pruning)
REPORT_DIR = "report"  # what `tunecv report` wrote into a folder
