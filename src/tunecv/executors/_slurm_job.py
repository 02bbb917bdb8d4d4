"""What a job of ``executor: slurm`` runs: submitit's job runner, then an exit without teardown.

The job script runs ``python -u -m tunecv.executors._slurm_job FOLDER`` instead of submitit's
``-m submitit.core._submit FOLDER``; everything up to the result file is submitit's own
(``submitit.core.submission.submitit_main``: load the pickled call, install the USR2 checkpoint / requeue
handler, run, pickle the result). What differs is the end of a job that succeeded: once the result file
is written the process flushes its streams and leaves with ``os._exit(0)``. A normal interpreter exit
with torch and lightning loaded tears down every module first, which took 2-5 s per job on the test
machine, all that time holding the job's CPUs and GPUs while the driver already has the result (and the
next job of that slot waits for them). A job that failed or is being requeued exits the normal way.

One more difference, in the requeue on ``USR2`` (preemption, time limit): submitit's handler runs
``scontrol requeue JOBID`` from inside the job, and SLURM answers that request by sending SIGTERM to every
process of the job, ``scontrol`` included. When the SIGTERM reaches ``scontrol`` before its reply does (seen
on the loaded test machine), ``check_call`` raises, the handler's exception ends the run as *failed* and
its result file tells the driver so, although SLURM did requeue the job. Here ``scontrol`` runs with
SIGTERM ignored, and one that died of SIGTERM anyway counts as requeued (the signal comes from the
requeue).

And one more, in SIGTERM (what ``scancel`` sends first, ``KillWait`` seconds before SIGKILL, 30 s by
default): submitit only logs it ("Bypassing signal SIGTERM"), because SLURM sends it around a requeue too.
Inside a Lightning fit that is right, Lightning's own handler (composed with submitit's) stops the loop at
the next batch. Outside a fit (a cv's job between two runs, a run building its model or data) nothing would
stop, and the job would train on until the SIGKILL: there the SIGTERM ends the job at once (``SystemExit``:
no result written, no run recorded as failed), unless submitit's own requeue on ``USR2`` is under way.

This module imports nothing but the standard library and submitit before the call is unpickled, so a
job starts as fast as submitit's own runner.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from typing import Any


def _ignore_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


_requeuing = False  # submitit's USR2 handler is requeuing the job: the SIGTERM that follows is expected


def _requeue(self: Any, countdown: int) -> None:
    """``SlurmJobEnvironment._requeue``, safe from the SIGTERM that the requeue itself sends."""
    from submitit.core.logger import get_logger

    global _requeuing
    _requeuing = True
    job_id = self.job_id
    code = subprocess.call(["scontrol", "requeue", job_id], timeout=60, preexec_fn=_ignore_sigterm)
    if code not in (0, -signal.SIGTERM):
        raise subprocess.CalledProcessError(code, ["scontrol", "requeue", job_id])
    get_logger().info(f"Requeued job {job_id} ({countdown} remaining timeouts)")


def _handle_signals(self: Any, paths: Any, submission: Any) -> None:
    """``JobEnvironment._handle_signals``, with a SIGTERM that ends the job when no Lightning fit runs."""
    _submitit_handle_signals(self, paths, submission)
    bypass = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        if callable(bypass):
            bypass(signum, frame)  # submitit's log line
        # called directly: no Lightning fit has composed its handler with this one, nothing else stops the job
        if signal.getsignal(signal.SIGTERM) is on_sigterm and not _requeuing:
            sys.stderr.write("tunecv: SIGTERM outside a fit: the job stops here\n")
            raise SystemExit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)


_submitit_handle_signals: Any = None


def main() -> None:
    global _submitit_handle_signals
    from submitit.core.submission import submitit_main
    from submitit.slurm.slurm import SlurmJobEnvironment

    # submitit has no hook for either: its requeue fails on the SIGTERM that the requeue itself sends, and it
    # only logs a SIGTERM, so a job outside a fit runs on until SLURM's SIGKILL (see the module's docstring)
    SlurmJobEnvironment._requeue = _requeue  # type: ignore[method-assign]  # upstream: facebookincubator/submitit#1708 requeue then SIGTERM ends tasks with exit code 1
    _submitit_handle_signals = SlurmJobEnvironment._handle_signals
    SlurmJobEnvironment._handle_signals = _handle_signals  # type: ignore[method-assign]  # upstream: facebookincubator/submitit#1677 SIGTERM only bypassed, job not ending
    submitit_main()  # raises when the call failed (submitit pickled the error first): a normal exit, code 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed stream
            stream.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
