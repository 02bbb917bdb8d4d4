"""What a cv or a tune shows while it runs: one live bar on stderr and a line per finished step.

:class:`LiveBar` owns the console and the rich bar (``{kind} {name}``, done/total, one field of free
text, elapsed time and ETA); :class:`CVProgress` counts the runs of one cv, :class:`TuneProgress` the
trials of a tune. Neither imports the level it reports on: they read the objects they are handed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any, Optional

from tunecv import _trial_records as records
from tunecv.artifacts.files import RUN_INFOS_FILE

__all__ = ["CVProgress", "LiveBar", "TuneProgress"]


class LiveBar:
    """A rich progress bar labelled ``{kind} {name}`` on stderr, and lines printed above it.

    Args:
        kind: the word before the name on the bar (``cv``, ``tune``).
        enabled: show anything at all.
        live: draw the bar (otherwise :meth:`print` writes plain lines).
    """

    def __init__(self, kind: str, *, enabled: bool, live: bool) -> None:
        self.kind = kind
        self.enabled = enabled
        self.live = live and enabled
        self.console: Any = None
        self.progress: Any = None
        self.task: Any = None

    def start(self, name: str, total: int, completed: int, info: str = "") -> None:
        """Open the console (and the bar, when live) at ``completed`` of ``total``."""
        from rich.console import Console

        self.console = Console(stderr=True)
        if not self.live:
            return
        from rich.progress import (
            Progress,
        )

        self.progress = Progress(*self.columns(self.console.width, name, total), console=self.console,
                                 transient=False)
        self.progress.start()
        self.task = self.progress.add_task(name, total=total, completed=completed, info=info)

    def columns(self, width: int, name: str, total: int) -> list[Any]:
        """The bar's columns, sized to fit ``width`` characters with elapsed time and ETA always whole.

        Rich shrinks every column of a line that is too wide (the times become ``0:01:…``); here each
        column gets its width: the times and ``done/total`` theirs, then the free text (counts, best, jobs)
        28 characters, the label what it needs of the rest, and the bar what is left (none under 8); the
        label and the free text are cut with an ellipsis when they are longer.
        """
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.table import Column

        times = 7 + 1 + 3 + 1 + 7  # "0:01:05 eta 0:03:10"
        count = 2 * len(str(total)) + 1
        room = max(width - 1, 40) - times - count - 5  # 5: one space between two of the six columns
        text = 28  # "pruned 3 failed 0 best 1.728"
        label = max(min(len(f"{self.kind} {name}"), room - text), 10)
        bar = min(room - label - text - 1, 40)  # the bar gets what is left (and a space), if it is worth it
        info = room - label - (bar + 1 if bar >= 8 else 0)
        columns = [TextColumn(f"{self.kind} {{task.description}}",
                              table_column=Column(width=label, no_wrap=True, overflow="ellipsis"))]
        if bar >= 8:
            columns.append(BarColumn(bar_width=bar, table_column=Column(width=bar, no_wrap=True)))
        return [*columns,
                MofNCompleteColumn(table_column=Column(width=count, no_wrap=True, justify="right")),
                TextColumn("{task.fields[info]}", table_column=Column(width=max(info, 1), no_wrap=True,
                                                                      overflow="ellipsis")),
                TimeElapsedColumn(table_column=Column(min_width=7, no_wrap=True, justify="right")),
                TextColumn("eta", table_column=Column(width=3, no_wrap=True)),
                TimeRemainingColumn(table_column=Column(min_width=7, no_wrap=True))]

    def update(self, **fields: Any) -> None:
        """Move the bar (``completed=``) or change its text (``info=``); nothing without a bar."""
        if self.progress is not None:
            self.progress.update(self.task, **fields)

    def print(self, line: str) -> None:
        """A line above the bar (or a plain line without one)."""
        (self.progress.console if self.progress is not None else self.console).print(line)

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()


class CVProgress(LiveBar):
    """The runs of one cv: a bar (``live``) or, without one, a line per finished run with elapsed and ETA.

    Args:
        session: the cv (its ``name``, ``runs``, ``rows`` and ``cfg.cv.scoring_metric`` are read).
        enabled: show anything at all.
        live: draw the bar.
    """

    def __init__(self, session: Any, *, enabled: bool, live: bool) -> None:
        super().__init__("cv", enabled=enabled, live=live)
        self.session = session
        self.t0 = time.perf_counter()
        self.done_count = len(session.rows)
        self.done_here = 0  # runs finished by this call (resumed runs do not count for the ETA)

    def __enter__(self) -> CVProgress:
        if not self.enabled:
            return self
        self.start(self.session.name, len(self.session.runs), self.done_count)
        if not self.live:
            self.console.print(f"cv {self.session.name}: {len(self.session.runs)} runs, "
                               f"{self.done_count} already done")
        return self

    def job_states(self, counts: Mapping[str, int]) -> None:
        """Show how many runs in flight are queued and running (a cluster's jobs wait in its queue)."""
        self.update(info=", ".join(f"{counts[s]} {s}" for s in ("running", "queued") if counts.get(s)))

    def run_done(self, row: Mapping[str, Any]) -> None:
        self.done_count += 1
        self.done_here += 1
        if not self.enabled:
            return
        metrics = [m.rsplit(":", 1)[0] if m.endswith((":higher", ":lower")) else m
                   for m in self.session.cfg.cv.scoring_metric]
        shown = ", ".join(f"{m}={row[m]:.4g}" for m in metrics if isinstance(row.get(m), (int, float)))
        status = row["status"] if row["status"] == "completed" else f"[red]{row['status']}[/red]: {row['error']}"
        if row.get("pruned_at_epoch") is not None:  # pruned inside the run (tunecv.pruning)
            status = f"[yellow]pruned at epoch {row['pruned_at_epoch']}[/yellow]"
        elapsed = time.perf_counter() - self.t0
        total = len(self.session.runs)
        line = (f"[{self.done_count}/{total}] {row['run_name']} {status} in {row['duration'] or 0:.1f}s"
                f"{' ' + shown if shown else ''}")
        if not self.live and self.done_count < total:
            remaining = elapsed / self.done_here * (total - self.done_count)
            line += f" | elapsed {elapsed:.0f}s, eta {remaining:.0f}s"
        self.print(line)
        self.update(completed=self.done_count)

    def summary(self, result: Any) -> None:
        """The cv's score line (``result`` is its :class:`~tunecv.cv.CVResult`)."""
        if not self.enabled:
            return
        state = "unstable" if result.score_is_unstable else "stable"
        self.console.print(f"cv {result.name}: score {result.score:.6g} ({state}); "
                           f"{result.n_completed} completed, {result.n_failed} failed; "
                           f"{result.cv_dir / RUN_INFOS_FILE}")


class TuneProgress(LiveBar):
    """The trials of a tune: trials done / total, pruned and failed counts, best so far, elapsed and ETA.

    Args:
        name: the tune name.
        total: the trials asked for.
        enabled: show anything at all (a tune's bar is always live).
        directions: the study's directions.
        refresh_every: seconds between two scans of the whole study (to count other workers' trials).
    """

    def __init__(self, name: str, total: int, *, enabled: bool, directions: list[str],
                 refresh_every: float) -> None:
        super().__init__("tune", enabled=enabled, live=True)
        self.name, self.total, self.directions = name, total, directions
        self.refresh_every = refresh_every
        self.counts = {"complete": 0, "pruned": 0, "fail": 0}
        self.best: Optional[float] = None
        self.jobs = ""  # the jobs in flight: "2 running, 1 queued"
        self._refreshed = 0.0

    def __enter__(self) -> TuneProgress:
        if self.enabled:
            self.start(self.name, self.total, self._done(), self._info())
        return self

    def _done(self) -> int:
        return self.counts["complete"] + self.counts["pruned"]

    def _info(self) -> str:
        best = "-" if self.best is None else f"{self.best:.4g}"
        jobs = f" | jobs: {self.jobs}" if self.jobs else ""
        return f"pruned {self.counts['pruned']} failed {self.counts['fail']} best {best}{jobs}"

    def job_states(self, counts: Mapping[str, int]) -> None:
        """Show how many jobs in flight are running and queued (a cluster's jobs wait in its queue; with
        ``executor: slurm`` under ``tune-parallel`` each job is one trial's cv)."""
        jobs = ", ".join(f"{counts[s]} {s}" for s in ("running", "queued") if counts.get(s))
        if jobs != self.jobs:
            self.jobs = jobs
            self.update(info=self._info())

    def refresh(self, study: Any) -> None:
        """Counts and best value from the whole study (a scan of every trial: at start, then rarely)."""
        if not self.enabled:
            return
        self._refreshed = time.monotonic()
        self.counts = {"complete": 0, "pruned": 0, "fail": 0}
        for t in study.get_trials(deepcopy=False):
            key = t.state.name.lower()
            if key in self.counts:
                self.counts[key] += 1
        best = records.best_trial(study, self.directions)
        self.best = float(best.values[0]) if best is not None else None
        self.update(completed=self._done(), info=self._info())

    def started(self, cv_name: str, number: int) -> None:
        if self.progress is not None:
            self.print(f"trial {number}: {cv_name} started")

    def finished(self, study: Any, session: Any, trial: Any, state: str, params: Mapping[str, Any]) -> None:
        """A trial was told ``state``; ``session`` is its cv, ``params`` its values."""
        if self.progress is None:
            return
        result = session.result()
        if time.monotonic() - self._refreshed >= self.refresh_every:
            self.refresh(study)  # now and then, to count other workers' trials too
        else:  # this trial only: constant work per trial
            if state in self.counts:
                self.counts[state] += 1
            feasible = trial.user_attrs.get("feasible") is not False  # tune.constraints
            if len(self.directions) == 1 and feasible and records.is_candidate(state, result.score,
                                                                               result.score_is_unstable):
                direction = self.directions[0]
                if self.best is None or (records.rank_key(result.score, None, direction)
                                         < records.rank_key(self.best, None, direction)):
                    self.best = float(result.score)
            self.update(completed=self._done(), info=self._info())
        if len(self.directions) > 1:  # the first objective's value
            frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
            value = frozen.values[0] if frozen.values else result.score
        else:  # the value told is the cv score
            value = result.score
        # a conditional space's names say their path (optimizer[SGD].init_args.lr): keep it, leave out inactive ones
        shown = ", ".join(f"{k.replace('.init_args.', '.') if '[' in k else k.split('.')[-1]}={_fmt(v)}"
                          for k, v in params.items() if v is not None or '[' not in k)
        self.print(f"trial {trial.number}: {session.name} {state} score {value:.4g} ({shown})")

    def summary(self, result: Any) -> None:
        """The tune's closing lines on stdout (``result`` is its :class:`~tunecv.tune.TuneResult`)."""
        from rich.console import Console

        console = Console()
        if result.stopped_by and result.stopped_by.startswith("converged"):  # tune.stop_when
            console.print(f"tune {result.name}: stopped starting new cvs: {result.stopped_by}")
        elif result.stopped_by:
            console.print(f"tune {result.name}: stopped starting new cvs: {result.stopped_by}; raise it and "
                          f"--resume to continue")
        if result.best_trial is None:
            console.print(f"tune {result.name}: no stable trial completed")
            return
        console.print(f"tune {result.name}: best trial {result.best_trial} score {result.best_score:.6g}")
        with contextlib.suppress(Exception):
            line = records.runner_up_line(result.study.user_attrs.get(records.BEST_TRIAL_ATTR) or {})
            if line:
                console.print(f"  {line}")
        for k, v in ((k, v) for k, v in result.best_params.items() if v is not None or "[" not in k):
            console.print(f"  {k}: {_fmt(v)}")
        console.print(f"results: {result.tune_dir / RUN_INFOS_FILE}")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
