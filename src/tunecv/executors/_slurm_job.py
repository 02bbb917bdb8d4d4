"""What a job of ``executor: slurm`` runs: submitit's job runner, then an exit without teardown.

The job script runs ``python -u -m tunecv.executors._slurm_job FOLDER`` instead of submitit's
``-m submitit.core._submit FOLDER``; everything up to the result file is submitit's own
(``submitit.core.submission.submitit_main``: load the pickled call, install the USR2 checkpoint / requeue
handler, run, pickle the result). What differs is the end of a job that succeeded: once the result file
is written the process flushes its streams and leaves with ``os._exit(0)``. A normal interpreter exit
with torch and lightning loaded tears down every module first, which took 2-5 s per job on the test
machine, all that time holding the job's CPUs and GPUs while the driver already has the result (and the
next job of that slot waits for them). A job that failed or is being requeued exits the normal way.

This module imports nothing but the standard library and submitit before the call is unpickled, so a
job starts as fast as submitit's own runner.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys


def main() -> None:
    from submitit.core.submission import submitit_main

    submitit_main()  # raises when the call failed (submitit pickled the error first): a normal exit, code 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed stream
            stream.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
