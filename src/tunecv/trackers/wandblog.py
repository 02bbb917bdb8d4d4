"""``logging.trackers: wandb``: one W&B run per training run (run id = run_id, name = run_name, group,
job_type), when ``logging.wandb_project`` is set or the user's ``trainer.logger`` holds a WandbLogger."""

from __future__ import annotations

import logging

from tunecv import tracking
from tunecv.trackers import Tracker

log = logging.getLogger("tunecv.train")


class WandbTracker(Tracker):
    """tunecv's WandbLogger (unless the user has one), a user's WandbLogger started as tunecv's own, and the
    W&B run finished with the run's exit status, so that the next run in this process starts clean."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.user_wandb = None
        self.user_has_wandb = False

    def select(self, run, user_loggers):
        kept = []
        for lg in user_loggers:
            if tracking.logger_kind(lg) == "wandb":
                self.user_has_wandb = True
                if self.user_wandb is not None:  # wandb.run is one per process: a second would log into the same run
                    log.warning("run %s: only the first WandbLogger of trainer.logger is used", run.run_name)
                    continue
                self.user_wandb = lg
            kept.append(lg)
        return kept

    def loggers(self, run, user_loggers, package):
        if not self.cfg.logging.wandb_project or self.user_wandb is not None:
            return []
        d = run.wandb_defaults
        made = tracking.wandb_logger(
            project=d["project"], entity=d.get("entity"), run_id=run.run_id, run_name=run.run_name,
            group=run.group, job_type=run.job_type, save_dir=run.run_dir, config=d.get("config"),
            tags=d.get("tags"), package=package)
        return [] if made is None else [made]  # None: wandb could not start; the run goes on without it

    def start(self, run, trainer, loggers):
        if self.user_wandb is None:
            return
        started = tracking.start_wandb(self.user_wandb)  # built again, in tunecv's mode: a new object
        at = next(i for i, lg in enumerate(loggers) if lg is self.user_wandb)
        if started is None:
            del loggers[at]  # wandb cannot start: the run goes on without it
        else:
            loggers[at] = self.user_wandb = started
        trainer.loggers = list(loggers)

    def finish(self, run, exit_code):
        if self.cfg.logging.wandb_project or self.user_has_wandb:
            tracking.finish_wandb(exit_code)
