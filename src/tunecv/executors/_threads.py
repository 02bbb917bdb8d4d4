"""The CPU thread budget of a run: the CPUs this process may use and the cores free for each slot now."""

from __future__ import annotations

import os
import time
from typing import Optional

__all__ = ["available_cpus", "thread_budget"]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def _others_running(samples: int = 3, interval: float = 0.01) -> float:
    """How many tasks of other processes want a CPU right now (the run queue, less this process).

    Linux: the median of a few reads of the running count in ``/proc/loadavg`` (instantaneous, so this
    process's own past work does not count); elsewhere the 1-minute load average.
    """
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                running = int(f.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            try:
                return max(0.0, os.getloadavg()[0])
            except (AttributeError, OSError):  # pragma: no cover - no load information at all
                return 0.0
        counts.append(max(0, running - 1))  # the reading thread is one of them
        if i + 1 < samples:
            time.sleep(interval)
    return float(sorted(counts)[len(counts) // 2])


def thread_budget(n_slots: int = 1, requested: Optional[int] = None) -> int:
    """CPU threads for each of ``n_slots`` runs at once: the cores free for them now, shared out.

    ``requested`` (the ``local.threads_per_worker`` key) wins when given. Otherwise each run gets
    ``available CPUs // n_slots`` threads, fewer when other processes keep cores busy (at least one):
    on a shared machine, a run with a thread per core waits at every operation for the threads that
    the other programs' work has pushed off the CPUs.
    """
    if requested is not None:
        return max(1, int(requested))
    cpus = available_cpus()
    free = max(1, round(cpus - _others_running()))
    return max(1, min(cpus // max(1, n_slots), free // max(1, n_slots)))

