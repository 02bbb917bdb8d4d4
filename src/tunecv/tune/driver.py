"""The driver of one tune (``TuneDriver``): open the study, ask a trial, start its cv, report its runs, prune,
tell, add the cv to the tune table, finish with the result and the retrain."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from tunecv import _trial_records as records
from tunecv import naming, search_space
from tunecv import pruning as _pruning
from tunecv._study_rebuild import rebuild_study
from tunecv.artifacts import workspace
from tunecv.artifacts.files import STORAGE_FILE
from tunecv.config import dump_yaml
from tunecv.cv import CrossValidation
from tunecv.errors import RunFailedError, StorageError
from tunecv.executors import Executor
from tunecv.progress import TuneProgress
from tunecv.scheduler import drive
from tunecv.terminator import ConvergenceStop
from tunecv.tune.plan import _constraints_func, _TunePlan, continued_seed
from tunecv.tune.result import TuneResult, _best_trial, _result, closing_lines
from tunecv.tune.retrain import _claim_retrain, _retrain
from tunecv.tune.scores import _BestWatch, _objective_value, _record_constraints, _run_score
from tunecv.tune.study import (
    CV_INDEX_ATTR,
    HEARTBEAT_EVERY,
    WORKER_ATTR,
    _check_space_unchanged,
    _Counts,
    _create_or_load,
    _finished_twin,
    _Heartbeat,
    _overflow,
    _requeue_stale,
    _space_exhausted,
    _StudyStorage,
    _wait_for_others,
    default_storage,
    open_storage,
    redact,
    worker_identity,
)
from tunecv.tune.table import _TuneTable

log = logging.getLogger("tunecv.tune")

MAX_CONSECUTIVE_FAILURES = 5


@dataclass
class TrialRun:
    """A trial of the study and the cv that evaluates it: what travels from one step of the driver to the next.

    Attributes:
        trial: the ``optuna.Trial`` (from ``study.ask``).
        trial_id: its id in the storage (Optuna's public storage API, looked up once).
        values: dotted config key → the value the trial's model uses.
        session: the trial's :class:`~tunecv.cv.CrossValidation`.
        recorder: reports the cv's finished runs to the trial.
    """

    trial: Any
    trial_id: int
    values: dict[str, Any]
    session: CrossValidation
    recorder: records.TrialRecorder

    @property
    def number(self) -> int:
        return self.trial.number


class TuneDriver:
    """Drives one tune: the tuning process alone talks to the study (workers only train).

    Its steps, in the order a trial meets them: :meth:`ask` (a trial, unless the tune is done), :meth:`start_cv`
    (its cv), :meth:`run_ended` (report a finished run, decide pruning), :meth:`cv_ended` (:meth:`tell` the
    trial, add the cv to the tune table), and at the end :meth:`finish` (the result, the retrain). The
    scheduler (:func:`tunecv.scheduler.drive`) calls ``ask``, ``run_ended`` and ``cv_ended``; a trial travels between
    them as a :class:`TrialRun`.

    Args:
        plan: the checked plan of the tune.
        executor: where the runs execute.
        progress: show a progress bar and one line per finished trial.
        own_executor: the driver shuts the executor down when the runs are over.
    """

    def __init__(self, plan: _TunePlan, executor: Executor, *, progress: bool, own_executor: bool) -> None:
        self.plan, self.cfg, self.executor = plan, plan.cfg, executor
        self.progress, self.own_executor = progress, own_executor
        self.trials: dict[int, TrialRun] = {}  # id(cv) -> the trial it evaluates, for the cvs in flight
        self.consecutive_failures = 0
        self.failures: list[str] = []  # "cv: why", for every failed trial
        self.duplicates_in_a_row = 0
        self.lock = threading.Lock()
        self.worker = worker_identity(self.cfg) if plan.shared else None
        self.grace = float(self.cfg.tune.heartbeat_grace)
        self.last_stale_check = 0.0
        self.damaged: Optional[str] = None  # why the tune's own optuna.db was set aside, if it was
        self.rebuilt = False  # the study was rebuilt from the tune's folder
        # set by open()
        self.study: Any = None
        self.store: _StudyStorage
        self.counts: _Counts
        self.table: _TuneTable
        self.budget: records.Budget
        self.heartbeat: _Heartbeat
        self.best_watch = _BestWatch(plan.directions)
        # in-run pruning and the convergence stop (tunecv.pruning, tunecv.terminator)
        self.epochs = _pruning.InRunPruning(self.cfg, plan.tune_name, plan.directions[0])
        self.convergence = ConvergenceStop(self.cfg.tune)
        self.reporter = TuneProgress(plan.tune_name, plan.n_trials, enabled=progress, directions=plan.directions,
                                     refresh_every=HEARTBEAT_EVERY)

    # -- opening ----------------------------------------------------------------------------------------------
    def open(self, held: contextlib.ExitStack) -> None:
        """Claim the tune's name (in ``held``), open its storage and study, and take over what a crash left."""
        plan = self.plan
        if not plan.shared:  # one command per tune name at a time (workers of a shared study share the name)
            held.enter_context(workspace.claimed("tune", plan.tune_name, plan.folder.parent, resume=plan.resume,
                                                 reset=plan.reset,
                                                 found=lambda: plan.folder if plan.folder.exists() else None))
        naming.announce("tune", plan.tune_name)
        created = self._open_study()
        self._enqueue(created)
        if plan.resume or plan.shared:
            requeued = _requeue_stale(self.store, all_running=not plan.shared, grace=self.grace, worker=self.worker)
            if requeued:
                log.info("re-queued trials left running by a crash: %s", requeued)
        self.reporter.refresh(self.study)
        self.counts = _Counts(self.study, plan.shared)
        self.table = _TuneTable(plan.folder, self.study)
        if plan.resume or plan.shared:
            self.table.repair()
            self.table.compact()
        self.last_stale_check = time.monotonic()
        self.budget = records.Budget(self.study, self.cfg.tune.timeout, self.cfg.tune.max_runs)
        self.heartbeat = _Heartbeat(self.store, every=min(HEARTBEAT_EVERY, self.grace / 4))

    def _open_study(self) -> bool:
        """Reset (``--reset``), open the storage, write the tune's config, create or load the study; whether
        it was created."""
        import optuna

        plan = self.plan
        url = self.cfg.tune.storage or default_storage(plan.folder)
        if plan.reset and plan.folder.exists():
            if plan.shared:
                with contextlib.suppress(Exception):
                    optuna.delete_study(study_name=plan.tune_name, storage=open_storage(url))
            workspace.discard([plan.folder])
        # a joining worker (the folder is there) rides out a server restart while it opens
        storage = open_storage(url, known=plan.folder.exists()) if plan.shared else None
        plan.folder.mkdir(parents=True, exist_ok=True)
        if storage is None:
            storage, study, created = self._open_own_study(url)
        else:
            study, created = _create_or_load(optuna, plan.tune_name, storage, plan.sampler, plan.pruner,
                                             plan.directions, url)
        workspace.snapshot(plan.folder, dump_yaml(self.cfg.replace(name=plan.tune_name)))
        # a study created on --resume replaces a lost one: the space is checked against the folder's record
        # before the trials are rebuilt in it
        _check_space_unchanged(study, plan.space, plan.folder, created and not plan.resume)
        rebuilt = created and plan.resume and self._rebuild(study, url)
        if (not created or rebuilt) and not plan.shared:
            # A seeded sampler built again would restart its stream and propose the same points again.
            study.sampler = search_space.make_sampler(plan.sampler_name, seed=continued_seed(plan.seed, len(study.trials)),
                                         space=plan.space, n_objectives=len(plan.directions),
                                         constraints_func=_constraints_func(self.cfg, plan.sampler_name))
        self.study, self.store = study, _StudyStorage(study, storage)
        self.rebuilt = rebuilt
        return created

    def _open_own_study(self, url: str) -> tuple[Any, Any, bool]:
        """Open the storage and the study of a tune that is their only user; on ``--resume``, a default
        ``optuna.db`` that cannot be opened (truncated, overwritten) is set aside for a new one, which
        :meth:`_rebuild` fills from the tune's folder."""
        import optuna

        plan = self.plan
        try:
            storage = open_storage(url)
            return (storage, *_create_or_load(optuna, plan.tune_name, storage, plan.sampler, plan.pruner,
                                              plan.directions, url))
        except StorageError as exc:
            path = plan.folder / STORAGE_FILE
            if not (plan.resume and self.cfg.tune.storage is None and path.is_file()):
                raise
            aside = path.with_name(f"{STORAGE_FILE}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(path, aside)
            for extra in ("-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    os.replace(f"{path}{extra}", f"{aside}{extra}")
            self.damaged = f"{exc} (set aside as {aside.name})"
        storage = open_storage(url)
        return (storage, *_create_or_load(optuna, plan.tune_name, storage, plan.sampler, plan.pruner,
                                          plan.directions, url))

    def _rebuild(self, study: Any, url: str) -> bool:
        """Fill a study created on ``--resume`` (the tune's own was missing or damaged) from the trials the
        tune's folder records; whether there were any. Says so in one line."""
        plan = self.plan

        def new_session(values: dict[str, Any], cv_name: str) -> CrossValidation:
            return CrossValidation(search_space.apply(self.cfg, plan.space.to_config(values)), cv_name, plan.folder / cv_name,
                                   resume=True)

        summary = rebuild_study(study, plan, plan.folder, new_session, _run_score, _objective_value)
        if summary is None:
            return False
        why = self.damaged or f"no study {self.plan.tune_name!r} in {redact(url)}"
        log.warning("the study of tune %s could not be opened (%s): rebuilt it from the tune's folder (trials: %s); "
                    "no finished run is trained again", self.plan.tune_name, why, summary)
        return True

    def _enqueue(self, created: bool) -> None:
        """A new study gets the grid's points, then the warm start's, in order (a rebuilt study those that
        no trial it holds has)."""
        if not created:
            return
        space = self.plan.space
        seen = [t.params or t.system_attrs.get("fixed_params") for t in self.study.get_trials(deepcopy=False)
                ] if self.rebuilt else []
        for point in self.plan.points or []:
            if space.to_trial_params(point) not in seen:
                self.study.enqueue_trial(space.to_trial_params(point), user_attrs={"grid": True})
        for values, source in self.plan.warm_points[:self.plan.n_trials]:
            if space.to_trial_params(values) not in seen:
                self.study.enqueue_trial(space.to_trial_params(values),
                                         user_attrs={records.WARM_START_ATTR: source}, skip_if_exists=False)

    # -- running ----------------------------------------------------------------------------------------------
    def run(self) -> TuneResult:
        """Run trials until the tune is done, then :meth:`finish`."""
        options = self.plan.where.drive_options(self.executor, "tune")
        with self.heartbeat, self.reporter:
            try:
                drive(self.executor, self.ask, quiet=True, **options, on_run_end=self.run_ended, on_session_end=self.cv_ended,
                      on_job_states=self.reporter.job_states if self.progress else None)
            finally:
                if self.own_executor:
                    self.executor.shutdown()
                self.budget.save()
        return self.finish()

    def limits(self) -> tuple[int, int]:
        """Runs of one cv in flight at once (``cv-parallel``: the executor's slots) and cvs in flight at once
        (``tune-parallel``: the executor's slots); 1 and 1 in series."""
        options = self.plan.where.drive_options(self.executor, "tune")
        return options["per_session"], options["max_sessions"]

    def ask(self) -> Optional[CrossValidation]:
        """The cv of a new trial, or ``None`` when this process starts no more (the scheduler's source)."""
        with self.lock:
            if self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                return None
            self._requeue_stale_now_and_then()
            while self._may_ask():
                trial = self._new_trial()
                if trial is None:
                    return None
                values = self.plan.space.suggest(trial)
                trial_id = self.store.trial_id(trial.number)
                if not self._is_duplicate(trial, trial_id):
                    return self.start_cv(trial, trial_id, values)
            return None

    def _requeue_stale_now_and_then(self) -> None:
        """Workers sharing a study take over trials whose worker stopped beating (a trial goes stale in
        ``grace``: no need to look often)."""
        if not self.plan.shared or time.monotonic() - self.last_stale_check < min(HEARTBEAT_EVERY, self.grace / 4):
            return
        self.last_stale_check = time.monotonic()
        mine = {tr.number for tr in self.trials.values()}
        requeued = _requeue_stale(self.store, all_running=False, grace=self.grace, worker=self.worker, mine=mine)
        if requeued:
            log.info("re-queued trials whose worker stopped beating: %s", requeued)

    def _may_ask(self) -> bool:
        """Whether a new trial may start: the study is short of ``n_trials``, the budget holds and the space
        has points left. Waits while only other workers' trials keep the study from ``n_trials``."""
        plan, counts = self.plan, self.counts
        while True:
            finished = counts.finished()
            if finished >= plan.n_trials or self.budget.exhausted(tr.session for tr in self.trials.values()):
                return False
            if self.convergence.converged(self.study):  # tune.stop_when
                return False
            live = counts.live()
            if finished + live >= plan.n_trials or (plan.points is not None and not counts.waiting()):
                if self.trials or not plan.shared or live == 0:
                    return False  # our own trials end this tune (or the grid has nothing left)
                # Trials of other workers are running: wait until they finish, or until one goes stale and
                # is queued again for us, instead of leaving with the study short.
                _wait_for_others(self.store, plan.n_trials, self.grace, self.worker)
                continue
            exhausted = _space_exhausted(self.study, plan.space, plan.points is not None, self.duplicates_in_a_row)
            if exhausted:
                log.warning("%s; the tune stops with %d finished trials", exhausted, finished)
                return False
            return True

    def _new_trial(self) -> Any:
        """A trial asked from the study, or ``None`` when it is past ``n_trials`` (a worker sharing the
        study raced us to the last one; the trial is told FAIL)."""
        from optuna.trial import TrialState

        trial = self.study.ask()
        self.counts.asked()
        if self.plan.shared and _overflow(self.study, trial, self.plan.n_trials):
            trial.set_user_attr("overflow", True)  # asked past n_trials by a racing worker
            self.study.tell(trial, state=TrialState.FAIL)
            return None
        return trial

    def _is_duplicate(self, trial: Any, trial_id: int) -> bool:
        """Whether the sampler proposed a point already evaluated: never trained twice, the trial is told FAIL."""
        from optuna.trial import TrialState

        twin = None if self.plan.points is not None else _finished_twin(self.store, trial, trial_id)
        if twin is None:
            self.duplicates_in_a_row = 0
            return False
        trial.set_user_attr("duplicate_of", twin)
        self.study.tell(trial, state=TrialState.FAIL)
        self.counts.told("fail")
        self.duplicates_in_a_row += 1
        return True

    def start_cv(self, trial: Any, trial_id: int, values: dict[str, Any]) -> CrossValidation:
        """The cv of a new trial: its folder and config written, the runs it kept from disk reported."""
        plan = self.plan
        self.heartbeat.add(trial_id)
        with self.store.batched():  # the trial's first records: one storage transaction
            if self.worker is not None:
                self.store.set_system_attr(trial_id, WORKER_ATTR, self.worker)
            trial.set_user_attr(records.CONFIG_VALUES_ATTR, values)
            cv_index = int(trial.user_attrs.get(CV_INDEX_ATTR, trial.number))
            if CV_INDEX_ATTR not in trial.user_attrs:
                trial.set_user_attr(CV_INDEX_ATTR, cv_index)
        cv_name = naming.cv_name(plan.tune_name, cv_index)
        trial_cfg = search_space.apply(self.cfg, plan.space.to_config(values))
        extra = {"tune_name": plan.tune_name, "trial": trial.number, "trial_state": "running", **values}
        session = CrossValidation(trial_cfg, cv_name, plan.folder / cv_name, resume=True,
                                  tracking={"group": plan.tune_name, "job_type": cv_name,
                                            "config": {"trial": trial.number, **values}},
                                  extra_columns=extra)
        recorder = records.TrialRecorder(trial, session, lambda row: _run_score(session, row), report=not plan.multi)
        self.trials[id(session)] = TrialRun(trial, trial_id, values, session, recorder)
        with self.store.batched():
            recorder.adopt()
        self.epochs.hook(self.study, trial, session)  # in-run pruning: each run gets its spec
        if _pruning.was_pruned_inside(session.rows.values()):  # a resumed trial whose run was pruned inside
            session.stop("pruned", completed_columns={"trial_state": "pruned"})
        (plan.folder / cv_name).mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            workspace.snapshot(plan.folder / cv_name, dump_yaml(trial_cfg.replace(name=cv_name)))
        self.reporter.started(cv_name, trial.number)
        return session

    def run_ended(self, session: CrossValidation, run: Any, row: dict) -> None:
        """Report a finished run to its trial and prune the cv when the pruner says so."""
        tr = self.trials[id(session)]
        with self.store.batched():  # the run's records: one storage transaction
            tr.recorder.run_ended(run.index, row)
            self.epochs.run_ended(tr.trial, run)  # the run's curve into its trial (in-run pruning)
        if self.budget.timeout is not None:  # per run only where a resume's tune.timeout counts on it
            self.budget.save()
        if row["status"] == "pruned" and not tr.session.done:  # pruned inside the run: the trial stops
            session.stop("pruned", completed_columns={"trial_state": "pruned"})
            log.info("%s pruned inside run %s at epoch %s", session.name, run.name, row.get("pruned_at_epoch"))
        elif self._should_prune(tr, row):
            session.stop("pruned", completed_columns={"trial_state": "pruned"})
            log.info("%s pruned after %d runs", session.name, len(session.rows))

    def _should_prune(self, tr: TrialRun, row: Mapping[str, Any]) -> bool:
        if self.plan.multi or self.cfg.tune.pruner == "none" or row["status"] != "completed":
            return False
        return not tr.session.done and tr.trial.should_prune()

    def cv_ended(self, session: CrossValidation) -> None:
        """Tell the trial of a finished cv, keep the best-trial record and the counts, add the cv to the table."""
        tr = self.trials.pop(id(session))
        state = self.tell(tr)
        self.budget.save()
        if self.best_watch.may_change(state, session):
            records.record_best(self.study, _best_trial(self.study, self.plan.directions), self.plan.directions)
            self.best_watch.update(self.study)
        if state == "fail":
            self.consecutive_failures += 1
            self.failures.append(f"{session.name}: {session.failure_summary() or 'no finite score'}")
        else:
            self.consecutive_failures = 0
        self.counts.told(state)
        self.heartbeat.remove(tr.trial_id)
        self.epochs.forget(tr.trial)
        self.table.add(session, tr.trial, state)
        self.reporter.finished(self.study, session, tr.trial, state, tr.values)

    def tell(self, tr: TrialRun) -> str:
        """Tell the study how the trial's cv ended; its state (``complete``, ``pruned`` or ``fail``)."""
        from optuna.trial import TrialState

        session, trial, multi = tr.session, tr.trial, self.plan.multi
        result = session.result()
        state: Any
        if result.n_completed == 0 and _pruning.was_pruned_inside(session.rows.values()):
            state, values = TrialState.PRUNED, None  # its first run was pruned inside itself
        elif result.n_completed == 0:
            state, values = TrialState.FAIL, None
            trial.set_user_attr("error", session.failure_summary()[:1000])
        elif multi:
            values = [_objective_value(result.run_infos, m) for m in self.cfg.tune.objectives or []]
            state = TrialState.COMPLETE if all(math.isfinite(v) for v in values) else TrialState.FAIL
        else:
            values = [result.score]
            state = TrialState.PRUNED if session.stopped is not None else TrialState.COMPLETE
            if not math.isfinite(result.score):
                state = TrialState.FAIL
        # everything is set before the tell: a finished trial cannot be changed. A pruned trial's value is its
        # last intermediate value, the cv score so far (see tunecv._trial_records).
        with self.store.batched():  # the trial's last records: one storage transaction
            tr.recorder.before_tell(result.score, result.score_is_unstable)
            if state == TrialState.COMPLETE and not multi:  # tune.stop_when: the trial's cv scores
                self.convergence.report(trial, tr.recorder.run_scores.values())
            _record_constraints(self.cfg, trial, result.run_infos)
        if state in (TrialState.PRUNED, TrialState.FAIL):
            self.study.tell(trial, state=state)
        else:
            self.study.tell(trial, values if multi else values[0])
        session.extra_columns["trial_state"] = state.name.lower()
        for row in session.rows.values():  # the cv's own table says how its trial ended, as the tune's does
            if row.get("trial") == trial.number:
                row["trial_state"] = state.name.lower()
        session.write()
        return state.name.lower()

    # -- finishing --------------------------------------------------------------------------------------------
    def finish(self) -> TuneResult:
        """The tune table compacted, the result (raises when too many trials in a row failed), the retrain."""
        plan = self.plan
        self.table.compact()
        if self.budget.reason:
            log.info("tune %s stopped starting new cvs: %s", plan.tune_name, self.budget.reason)
        if self.convergence.reason and not self.budget.reason:
            log.info("tune %s stopped starting new cvs: %s", plan.tune_name, self.convergence.reason)
        if self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            raise RunFailedError(f"tune {plan.tune_name!r} stopped after {MAX_CONSECUTIVE_FAILURES} trials in a row "
                                 f"failed: " + " | ".join(self.failures[-MAX_CONSECUTIVE_FAILURES:]))
        result = _result(plan.tune_name, plan.folder, self.study, plan.space, plan.directions)
        result.stopped_by = self.budget.reason or self.convergence.reason
        if (self.cfg.tune.retrain_and_test and result.best_trial is not None
                and _claim_retrain(self.study, plan.folder, plan.shared, plan.n_trials)):
            result.retrain = _retrain(self.cfg, plan.space, result, plan.folder, plan.tune_name)
        if self.progress:
            self.reporter.summary(result)  # the best, its interval against the runner-up, its parameters
            from rich.console import Console

            console = Console()
            for line in closing_lines(result):
                console.print(line, markup=False, highlight=False, soft_wrap=True)  # paths stay whole
        return result
