"""The ``slurm`` executor: each job one SLURM job, submitted with submitit.

``executor: slurm`` submits each run of a cv (or of the cvs of a tune) as one SLURM job with the
resources of the ``slurm:`` section (partition, time, GPUs, CPUs, memory, account, qos, extra sbatch
options). The driver (``tunecv cv`` / ``tunecv tune``) may run on a login node; its state is the artifact
folder:

- each job's id is recorded in its run's ``run_info.json`` (key ``executor``) and its submitit files
  (the pickled call, the logs, the result) live in ``{run folder}/slurm/``; the job is named
  ``tunecv-{run folder name}``;
- a job ended by preemption or by its time limit is requeued (submitit's ``Checkpointable``: SLURM
  signals the job ``signal_delay_s`` seconds before the limit, the job requeues itself), at most
  ``max_num_timeout`` times for time limits; a job requeued by an administrator (``scontrol requeue``)
  starts again too. Either way the call starts from the top and the run finds its folder by name and
  continues from its ``last`` checkpoint;
- a killed driver loses nothing: ``--resume`` asks :meth:`SlurmExecutor.reattach` for each unfinished
  run, which follows the job still queued or running (found by its recorded id, else by its name)
  instead of submitting a second one;
- a job that fails is a failed run: the run's own error when it got that far, else the job's final
  SLURM state and the path of its log.

Job states come from ``squeue`` (and ``sacct`` for jobs that ``squeue`` has forgotten, where the cluster
keeps accounting); a job's result from the result file submitit writes. Stopping the driver (Ctrl-C,
SIGTERM) leaves the jobs running: ``--resume`` collects them; ``scancel --name tunecv-...`` cancels them.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import submitit

from tunecv.artifacts.files import SLURM_DIR
from tunecv.artifacts.run_info import executor_record, record_job
from tunecv.errors import ConfigError, TunecvError
from tunecv.executors._base import Executor, Job, function_name, job_overrides

__all__ = ["SlurmExecutor", "SlurmJobError", "from_config", "job_states"]

LOG_DIR = SLURM_DIR

LIVE_STATES = frozenset({
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
    "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "RESV_DEL_HOLD", "STOPPED",
})
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"})
# A job that left no result file although SLURM says it ended: wait this long for a slow shared disk.
RESULT_GRACE_S = 5.0
# Between two looks at the queue, how often the result files of running jobs are looked for (one stat
# per running job): the driver learns a job's result within this, not within poll_interval.
RESULT_POLL_S = 0.1


class SlurmJobError(TunecvError):
    """A SLURM job ended without a result (cancelled, failed, timed out, node failure, ...).

    Attributes:
        job_id: the SLURM job id.
        state: its final SLURM state (``CANCELLED``, ``TIMEOUT``, ...).
        log: the path of its log file.
    """

    def __init__(self, message: str, job_id: str = "", state: str = "", log: str = "") -> None:
        super().__init__(message, job_id, state, log)
        self.job_id, self.state, self.log = job_id, state, log

    def __str__(self) -> str:
        return str(self.args[0])


# SLURM end states that have a cause worth saying in the run's error (``sacct --helpstate``).
END_STATE_CAUSES = {
    "OUT_OF_MEMORY": "killed (out of memory?): the job went over its memory limit (`slurm.mem`, --mem); "
                     "SLURM's cgroup killed it",
    "TIMEOUT": "killed at its time limit (`slurm.time`)",
    "NODE_FAIL": "lost with its node (NODE_FAIL)",
    "PREEMPTED": "preempted",
}


def ended_message(job_id: str, name: str, state: str, reason: str, log: str) -> str:
    """The error of a SLURM job that ended without a result: its state, what the state means, its log."""
    cause = END_STATE_CAUSES.get(state)
    why = f" ({reason})" if reason and reason != "None" else ""
    if cause:
        return f"SLURM job {job_id} ({name}) {cause}: ended {state}{why} without a result; its log: {log}"
    return f"SLURM job {job_id} ({name}) ended {state}{why} without a result; its log: {log}"


class _SubmititExecutor(submitit.SlurmExecutor):
    """submitit's SLURM executor, whose jobs run :mod:`tunecv.executors._slurm_job` (submitit's runner, then
    an exit that skips the interpreter's teardown once the result is written)."""

    @property
    def _submitit_command_str(self) -> str:
        return " ".join([self.python, "-u -m tunecv.executors._slurm_job", shlex.quote(str(self.folder))])


class SlurmCall(submitit.helpers.Checkpointable):
    """What a SLURM job runs: ``fn(*args, **kwargs)``; requeued as it is on preemption or time limit.

    The call starts from the top on the next attempt: a run finds its folder by name and continues
    from its ``last`` checkpoint.
    """

    def __call__(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        # Use the CPUs the job was given, not every core of the node (torch's default where SLURM does not
        # confine the job with cgroups), unless the submitting environment chose a thread count.
        call_start = time.time()
        cpus = os.environ.get("SLURM_CPUS_PER_TASK")
        if cpus and cpus.isdigit():
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ.setdefault(name, cpus)
        # one line in the job's log: when its Python started and when the call began (after submitit's own
        # imports and unpickling the call), so that a slow job start can be told from a slow run
        _timeline(python_start=_process_start_time(), call_start=call_start)
        try:
            return fn(*args, **kwargs)
        finally:
            _timeline(call_end=time.time())


TIMELINE_PREFIX = "tunecv-timeline"


def _timeline(**stamps: Optional[float]) -> None:
    """Write ``tunecv-timeline key=unix time ...`` to the job's log (stderr)."""
    items = " ".join(f"{k}={v:.3f}" for k, v in stamps.items() if v is not None)
    sys.stderr.write(f"{TIMELINE_PREFIX} {items}\n")
    sys.stderr.flush()


def _process_start_time() -> Optional[float]:
    """When this process started (unix time, 10 ms resolution), from ``/proc``; ``None`` elsewhere.

    Its age (uptime less its start in clock ticks since boot) subtracted from now: the boot time in
    ``/proc/stat`` is whole seconds and drifts from the wall clock on a VM.
    """
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - (uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def read_timeline(log: Any) -> dict[str, float]:
    """The ``tunecv-timeline`` stamps a job wrote to its log (the last attempt's, for a requeued job)."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(log).read_text(errors="replace").splitlines():
            if line.startswith(TIMELINE_PREFIX + " "):
                for item in line.split()[1:]:
                    key, _, value = item.partition("=")
                    with contextlib.suppress(ValueError):
                        out[key] = float(value)
    return out


class _SlurmJob(Job):
    """A :class:`Job` that is one SLURM job."""

    def __init__(self, name: str, executor: SlurmExecutor, submitit_job: Any, folder: Optional[Path]) -> None:
        super().__init__(name)
        self.job_id: str = submitit_job.job_id
        self.submitit_job = submitit_job
        self.folder = folder
        self.slurm_state = "PENDING"
        self.reason = ""
        self._executor = executor
        self._ended_at: Optional[float] = None
        self._cancelled = False  # this executor cancelled it: once ended, no result is coming
        # unix times seen by the driver: before sbatch, after it, when the driver saw the result
        self.times: dict[str, float] = {}
        # the names of the run folders the job runs, in the order of its calls (None: not known)
        self.folders: Optional[list[str]] = None

    @property
    def state(self) -> str:
        if self.done():
            return "finished"
        return "running" if self.slurm_state in RUNNING_STATES else "queued"

    @property
    def log(self) -> str:
        return str(self.submitit_job.paths.stdout)

    def cancel(self) -> bool:
        """Cancel the SLURM job (``scancel``); it then ends as a failed job."""
        if self.done():
            return False
        self._cancelled = True
        self._executor._scancel([self.job_id])
        return True

    def gives_up(self, live: bool, now: float) -> bool:
        """Whether this job, seen ``live`` (or not) at ``now`` with no result file, has ended without a result: at
        once when this executor cancelled it (it was stopped before its result), else once it has been gone for
        ``RESULT_GRACE_S`` (a slow disk may still bring the file)."""
        if live:
            self._ended_at = None
            return False
        if self._ended_at is None:
            self._ended_at = now
        return self._cancelled or now - self._ended_at >= RESULT_GRACE_S

    def __repr__(self) -> str:
        return f"<SlurmJob {self.job_id} {self.name} {self.slurm_state.lower()}>"


class SlurmExecutor(Executor):
    """Runs each job as one SLURM job, submitted with submitit, watched with ``squeue``.

    Args:
        log_folder: where jobs submitted with :meth:`submit` keep their submitit files (a run's job keeps
            them in its own folder, see :meth:`submit_run`).
        parameters: submitit's SLURM parameters (``partition``, ``time`` in minutes, ``cpus_per_task``,
            ``gres``, ``mem``, ``account``, ``qos``, ``ntasks_per_node``, ``signal_delay_s``, ``setup``,
            ``additional_parameters``).
        n_slots: jobs queued or running at once.
        overrides: the device settings each run takes inside its job (see ``run_overrides``).
        max_num_timeout: how many times a job is requeued after hitting its time limit.
        python: the interpreter of the jobs (default: this one; the job must import tunecv and the model).
        poll_interval: seconds between two looks at the queue.
    """

    name = "slurm"
    pinned = True
    # under tune-parallel each trial's cv is one job (its runs one after the other: one Python start, one
    # `import torch, lightning` per cv; tunecv.placement decides); under cv-parallel each run is one job
    groups_sessions = True

    def __init__(
        self,
        log_folder: str | os.PathLike,
        parameters: Optional[Mapping[str, Any]] = None,
        *,
        n_slots: int = 32,
        overrides: Optional[Mapping[str, Any]] = None,
        max_num_timeout: int = 3,
        python: Optional[str] = None,
        poll_interval: float = 1.0,
    ) -> None:
        self._submitit = submitit
        self.log_folder = Path(log_folder)
        self.parameters = dict(parameters or {})
        self.n_slots = n_slots
        self._overrides = dict(overrides or job_overrides(1))
        self.max_num_timeout = max_num_timeout
        self.python = python or shlex.quote(sys.executable)
        self.poll_interval = poll_interval
        self.n_tasks = int(self.parameters.get("ntasks_per_node") or 1)
        self._lock = threading.Lock()
        self._jobs: dict[str, _SlurmJob] = {}
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._shut_down = False
        self.submitted: list[str] = []  # ids of the jobs this executor submitted (not re-attached ones)

    # -- the Executor API ---------------------------------------------------------------------------
    def run_overrides(self) -> dict[str, Any]:
        return dict(self._overrides)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
        return self._submit(self.log_folder, f"tunecv-{function_name(fn).rsplit('.', 1)[-1]}", [],
                            fn, args, kwargs)

    def submit_run(self, folder: Any, fn: Callable[..., Any], /, *args: Any) -> Job:
        return self.submit_runs([folder], fn, *args)

    def submit_runs(self, folders: Sequence[Any], fn: Callable[..., Any], /, *args: Any) -> Job:
        """One job for the runs in ``folders`` (``fn`` runs them all): recorded in each run's folder.

        A single run keeps its submitit files in ``{run folder}/slurm/``; a job of several runs (the cv of a
        tune-parallel trial) in ``{cv folder}/slurm/``. The job is named after the first run's folder.
        """
        folders = [Path(f) for f in folders]
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
        log_folder = folders[0] / LOG_DIR if len(folders) == 1 else folders[0].parent / LOG_DIR
        return self._submit(log_folder, job_name(folders[0]), folders, fn, args, {})

    def reattach(self, folder: Any) -> Optional[Job]:
        folder = Path(folder)
        if not folder.is_dir():
            return None
        entry = executor_record(folder)
        mine = entry.get("name") == self.name
        ids = [str(i) for i in entry.get("job_ids", [])] if mine else []
        name = str(entry.get("job_name") or job_name(folder)) if mine else job_name(folder)
        log_folder = Path(entry["folder"]) if mine and entry.get("folder") else folder / LOG_DIR
        live = self._live_ids_by_name(name)
        candidates = [i for i in ids[-1:] if i] + [i for i in live if i not in ids[-1:]]
        for job_id in candidates:
            state, _ = self.query([job_id]).get(job_id, ("", ""))
            if state in LIVE_STATES:
                sjob = self._submitit_job(log_folder, job_id)
                job = _SlurmJob(f"{name} (job {job_id})", self, sjob, folder)
                job.slurm_state = state
                if job_id in ids and entry.get("runs"):
                    job.folders = [str(r) for r in entry["runs"]]
                if job_id not in ids:
                    _record_job(folder, self.name, job_id, job.log, name, log_folder)
                self._track(job)
                return job
        return None

    def shutdown(self, cancel_pending: bool = True, kill: bool = False) -> None:
        """Stop watching the jobs. The SLURM jobs themselves go on (``--resume`` re-attaches to them)."""
        with self._lock:
            self._shut_down = True
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def __repr__(self) -> str:
        return f"SlurmExecutor(n_slots={self.n_slots}, {self.parameters})"

    # -- submitting -----------------------------------------------------------------------------------
    def _submitit_executor(self, folder: Path, name: str) -> Any:
        ex = _SubmititExecutor(folder=str(folder), max_num_timeout=self.max_num_timeout, python=self.python)
        # the first line of the job script stamps when SLURM started it (see read_timeline)
        setup = [f'echo "{TIMELINE_PREFIX} batch_start=$(date +%s.%N)" >&2', *self.parameters.get("setup", [])]
        ex.update_parameters(**{**self.parameters, "setup": setup, "job_name": name})
        return ex

    def _submitit_job(self, folder: Path, job_id: str) -> Any:
        return self._submitit.SlurmJob(folder=str(folder), job_id=job_id, tasks=tuple(range(self.n_tasks)))

    def _submit(self, log_folder: Path, name: str, folders: Sequence[Path], fn: Callable[..., Any],
                args: tuple, kwargs: dict) -> Job:
        with self._lock:
            if self._shut_down:
                raise RuntimeError("cannot submit a job to an executor that was shut down")
        ex = self._submitit_executor(log_folder, name)
        call = SlurmCall()
        submitted = time.time()
        try:
            sjob = ex.submit(call, fn, tuple(args), dict(kwargs))
        except Exception as exc:
            raise SlurmJobError(f"sbatch refused the job {name}: {exc}".strip()) from exc
        job = _SlurmJob(name, self, sjob, folders[0] if folders else None)
        job.times.update(submit=submitted, sbatch_done=time.time())
        self.submitted.append(job.job_id)
        job.folders = [f.name for f in folders]
        for folder in folders:
            _record_job(folder, self.name, job.job_id, job.log, name, log_folder, job.folders)
        self._track(job)
        return job

    def _track(self, job: _SlurmJob) -> None:
        with self._lock:
            self._jobs[job.job_id] = job
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._watch, name="tunecv-slurm-watch", daemon=True)
                self._thread.start()

    # -- watching -------------------------------------------------------------------------------------
    def _watch(self) -> None:
        next_query = 0.0
        while not self._stop.is_set():
            with self._lock:
                jobs = list(self._jobs.values())
            if not jobs:
                with self._lock:
                    if not self._jobs:
                        self._thread = None
                        return
                continue
            now = time.monotonic()
            try:
                if now >= next_query:  # the queue, every poll_interval
                    next_query = now + self.poll_interval
                    self._refresh(jobs)
                else:  # in between, only the result files of the running jobs (one stat each)
                    for job in jobs:
                        if job.slurm_state in RUNNING_STATES and self._result_file(job).exists():
                            self._finish(job)
            except Exception as exc:  # pragma: no cover - a scheduler hiccup: try again at the next poll
                sys.stderr.write(f"tunecv: could not read the SLURM queue: {exc}\n")
            self._stop.wait(min(self.poll_interval, RESULT_POLL_S))

    def _result_file(self, job: _SlurmJob) -> Path:
        return job.submitit_job.task(0).paths.result_pickle if self.n_tasks > 1 else \
            job.submitit_job.paths.result_pickle

    def _refresh(self, jobs: Sequence[_SlurmJob]) -> None:
        states = self.query([j.job_id for j in jobs])
        now = time.monotonic()
        for job in jobs:
            state, reason = states.get(job.job_id, ("", ""))
            if state:
                job.slurm_state, job.reason = state, reason
            if not job.running() and state in RUNNING_STATES:
                job.set_running_or_notify_cancel()
            if self._result_file(job).exists():  # written once, when the call returned or raised
                self._finish(job)
                continue
            # ended (or forgotten by SLURM) without a result: give a slow disk a moment, then fail (at once
            # for a job cancelled here: it was stopped before its result)
            if job.gives_up(state in LIVE_STATES, now):
                final = state or "UNKNOWN"
                self._fail(job, SlurmJobError(ended_message(job.job_id, job.name, final, job.reason, job.log),
                                              job.job_id, final, job.log))

    def _finish(self, job: _SlurmJob) -> None:
        sjob = job.submitit_job.task(0) if self.n_tasks > 1 else job.submitit_job
        try:
            outcome, value = sjob._get_outcome_and_result()
        except Exception as exc:
            self._fail(job, SlurmJobError(f"SLURM job {job.job_id} ({job.name}) left an unreadable result: "
                                          f"{exc}; its log: {job.log}", job.job_id, "COMPLETED", job.log))
            return
        job.times["noticed"] = time.time()
        if outcome == "success":
            self._settle(job, lambda: job.set_result(value))
        else:
            error = SlurmJobError(f"SLURM job {job.job_id} ({job.name}) failed: {_last_line(value)}; its log: "
                                  f"{job.log}", job.job_id, "FAILED", job.log)
            self._fail(job, error)

    def _fail(self, job: _SlurmJob, error: BaseException) -> None:
        self._settle(job, lambda: job.set_exception(error))

    def _settle(self, job: _SlurmJob, set_outcome: Callable[[], None]) -> None:
        with self._lock:
            self._jobs.pop(job.job_id, None)
        if not job.done():
            if not job.running():
                job.set_running_or_notify_cancel()
            set_outcome()

    # -- talking to SLURM -----------------------------------------------------------------------------
    def query(self, job_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """``{job id: (state, reason)}`` for the jobs SLURM still knows (see :func:`query_states`)."""
        return query_states(job_ids)

    def _live_ids_by_name(self, name: str) -> list[str]:
        out = _run(["squeue", "-h", "--name", name, "-o", "%i"])
        return [line.strip() for line in (out or "").splitlines() if line.strip()]

    def _scancel(self, job_ids: Sequence[str]) -> None:
        _run(["scancel", *job_ids])


def query_states(job_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``{job id: (state, reason)}`` for the jobs SLURM still knows (``squeue``, else ``sacct``)."""
    if not job_ids:
        return {}
    out = _run(["squeue", "-h", "--states=all", "-j", ",".join(job_ids), "-o", "%i|%T|%r"])
    states: dict[str, tuple[str, str]] = {}
    if out is None and len(job_ids) > 1:  # one id SLURM no longer knows fails the whole call
        for job_id in job_ids:
            states.update(query_states([job_id]))
        return states
    for line in (out or "").splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0] in job_ids:
            states[parts[0]] = (parts[1].strip().upper(), parts[2].strip() if len(parts) > 2 else "")
    missing = [j for j in job_ids if j not in states]
    if missing:  # purged from the controller's memory: ask the accounting database, where there is one
        acct = _run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(missing)])
        for line in (acct or "").splitlines():
            parts = line.strip().split("|")
            if len(parts) >= 2 and parts[0] in missing:
                states[parts[0]] = (parts[1].split()[0].upper(), "")
    return states


def job_states(folders: Sequence[Path]) -> dict[Path, str]:
    """``queued`` / ``running`` / ``finished``, or the final SLURM state in lower case (``cancelled``,
    ``timeout``, ...), of the last job recorded in each run folder (for ``tunecv report``)."""
    last: dict[str, Path] = {}
    for folder in folders:
        entry = executor_record(folder)
        ids = [str(i) for i in entry.get("job_ids", [])]
        if ids:
            last[ids[-1]] = Path(folder)
    if not last:
        return {}
    found = query_states(list(last))
    out: dict[Path, str] = {}
    for job_id, folder in last.items():
        state = found.get(job_id, ("", ""))[0]
        if state in RUNNING_STATES:
            out[folder] = "running"
        elif state in LIVE_STATES:
            out[folder] = "queued"
        elif state == "COMPLETED":
            out[folder] = "finished"
        elif state:
            out[folder] = state.lower()
    return out


def job_name(folder: Path) -> str:
    """The SLURM job name of the run in ``folder``: unique, so a lost job id can be found by name."""
    return f"tunecv-{Path(folder).name}"


def _record_job(folder: Path, executor: str, job_id: str, log: str, name: str, log_folder: Path,
                runs: Optional[Sequence[str]] = None) -> None:
    """Add the job to the ``executor`` entry of the run's ``run_info.json`` (train keeps that entry):
    its id, its log, its name, the folder of its submitit files and the run folders it runs, in order
    (what ``reattach`` needs)."""
    record_job(folder, executor, job_id, log=log, job_name=name, job_folder=log_folder, runs=runs)


def _run(cmd: list[str]) -> Optional[str]:
    """A SLURM command's stdout, or ``None`` when it failed."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _last_line(trace: Any) -> str:
    lines = [line for line in str(trace).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else str(trace)


# -- the registry's entry point -------------------------------------------------------------------------

def from_config(cfg: Any, *, parallel: bool, accelerator: str) -> SlurmExecutor:
    """The ``slurm`` executor for a :class:`~tunecv.config.Config` (its ``slurm:`` section).

    With ``cv-parallel`` / ``tune-parallel`` up to ``slurm.max_jobs`` jobs are queued at once, else one.
    A job asks for ``slurm.gpus_per_job`` GPUs (``--gres=gpu:N``) and each run then uses exactly those
    (``devices: [0 .. N-1]`` as the job sees them; ``ddp`` over N tasks when N > 1); a job without GPUs
    trains on CPU.
    """
    from shutil import which

    if which("sbatch") is None:
        raise ConfigError("`executor` slurm needs the SLURM commands (sbatch, squeue) on this machine; "
                          "sbatch was not found on PATH")
    opts = cfg.slurm
    gpus = int(opts.gpus_per_job)
    parameters: dict[str, Any] = {"time": int(opts.time), "cpus_per_task": int(opts.cpus_per_job),
                                  "signal_delay_s": int(opts.signal_delay_s)}
    for key in ("partition", "account", "qos", "mem"):
        if getattr(opts, key):
            parameters[key] = getattr(opts, key)
    overrides = job_overrides(gpus, "ddp")  # several GPUs: ddp over the job's tasks
    if gpus > 0:
        parameters["gres"] = f"gpu:{gpus}"
        parameters["ntasks_per_node"] = gpus  # one task per GPU: Lightning reads the ranks from SLURM
    else:
        if str(cfg.device_setting("accelerator")) == "auto":
            overrides["accelerator"] = "cpu"
    if opts.setup:
        parameters["setup"] = list(opts.setup)
    if opts.extra:
        parameters["additional_parameters"] = {str(k).replace("_", "-"): v for k, v in opts.extra.items()}
    executor = SlurmExecutor(Path(cfg.artifact_dir) / "_slurm", parameters,
                             n_slots=int(opts.max_jobs) if parallel else 1, overrides=overrides,
                             max_num_timeout=int(opts.max_num_timeout), python=opts.python,
                             poll_interval=float(opts.poll_interval))
    return executor
