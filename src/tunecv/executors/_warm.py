"""Imported once by the fork server of a device pool: imports what every job needs before any fork.

The modules are named in the ``TUNECV_PRELOAD`` environment variable (comma-separated), set by the pool
that starts the server. Each worker forked afterwards starts with them imported, so a short run does not
pay the imports (tens of modules: torch, lightning, pandas, scikit-learn, jsonargparse, the user's
model module, ...) again in every worker. A module that fails to import here is skipped: the job that
needs it imports it again and reports the error itself.
"""

from __future__ import annotations

import importlib
import os

PRELOAD_ENV = "TUNECV_PRELOAD"  # the same name as tunecv.executors._forkserver.PRELOAD_ENV


def preload(names: str) -> list[str]:
    """Import each module of the comma-separated ``names``; return those that failed."""
    failed = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        try:
            importlib.import_module(name)
        except (Exception, SystemExit):  # never let a user module's import take the fork server down
            failed.append(name)
    return failed


preload(os.environ.get(PRELOAD_ENV, ""))
