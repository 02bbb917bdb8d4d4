"""The rich tables ``tunecv report`` prints of a run, a cv and a tune summary."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from tunecv.artifacts.files import REPORT_DIR
from tunecv.report.folder import _metric_names

TABLE_ROWS = 20  # leaderboard rows printed; --format json has all


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def _mean_std(stat: Optional[Mapping[str, Any]]) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    std = stat.get("std")
    return f"{_fmt(stat['mean'])} ± {_fmt(std, 2)}" if std is not None else _fmt(stat["mean"])


def _interval(stat: Optional[Mapping[str, Any]]) -> str:
    if not stat or stat.get("low") is None:
        return "-"
    return f"[{_fmt(stat['low'])}, {_fmt(stat['high'])}]"


def _difference(d: Mapping[str, Any]) -> str:
    return f"{_fmt(d['mean'], 3)} [{_fmt(d['low'], 3)}, {_fmt(d['high'], 3)}]"


def _vs_best(entry: Mapping[str, Any], best: Optional[str]) -> str:
    """``-0.026 [-0.09, 0.04] p=0.62 ≈`` (≈: the interval holds 0, cannot be told apart from the best); the
    Wilcoxon p only where it could reach the threshold with these pairs."""
    c = entry.get("vs_best")
    if not c:
        return "best" if entry["cv_name"] == best else "-"
    mark = "≈" if entry.get("indistinguishable_from_best") else ""
    p = f" p={_fmt(c['p_value'], 2)}" if c.get("p_can_reach_alpha", True) else ""
    return f"{_difference(c['difference'])}{p} {mark}".rstrip()


def _short_names(keys: Sequence[str]) -> dict[str, str]:
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def _print(summary: Mapping[str, Any], console: Any) -> None:
    from rich.console import Console
    from rich.markup import escape

    if console is None:
        console = Console()
        if not console.is_terminal and not os.environ.get("COLUMNS"):
            console = Console(width=200)  # piped or captured: do not squeeze the tables into 80 columns
    {"run": _print_run, "cv": _print_cv, "tune": _print_tune}[summary["kind"]](summary, console)
    if summary.get("plots"):
        console.print(f"plots: {Path(summary['path']) / REPORT_DIR}/ ({', '.join(summary['plots'])})")
    for name, reason in (summary.get("skipped_plots") or {}).items():
        console.print(f"[dim]plot {name} skipped: {escape(reason)}[/dim]")


def _print_run(s: Mapping[str, Any], console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"run {s['run_name']} ({s['run_id']}): {s['status']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in s["metrics"].items():
        table.add_row(key, _fmt(value, 6))
    console.print(table)
    console.print(f"fold {_fmt(s['fold'])}, seed {_fmt(s['seed'])}, duration {_fmt(s['duration'], 3)} s")
    if s.get("error"):
        console.print(f"[red]error:[/red] {escape(s['error'])}", highlight=False)
    if s.get("checkpoint"):
        console.print(f"checkpoint: {s['checkpoint']}")
    for folder in s.get("wandb_offline_runs") or []:
        console.print(f"wandb offline run: wandb sync {folder}")


def _print_cv(s: Mapping[str, Any], console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    names = _metric_names(s["scoring_metric"])
    table = Table(title=f"cv {s['cv_name']}" + (f" (tune {s['tune_name']})" if s.get("tune_name") else ""))
    for col in ("run", "fold", "seed", "status", *names, "duration"):
        table.add_column(col, justify="right" if col not in ("run", "status") else "left")
    for r in s["runs"]:
        status = r["status"] if r["status"] == "completed" else f"[red]{r['status']}[/red]"
        table.add_row(f"{r['run_name']}-{r['run_id']}", _fmt(r["fold"]), _fmt(r["seed"]), status,
                      *(_fmt(r["metrics"].get(m)) for m in names), f"{_fmt(r['duration'], 3)} s")
    console.print(table)
    stats = Table(title="over completed runs")
    for col in ("metric", "mean ± std", "runs"):
        stats.add_column(col)
    for metric, stat in s["metrics"].items():
        stats.add_row(metric + (" *" if metric in names else ""), _mean_std(stat), str(stat["count"]))
    console.print(stats)
    c = s["counts"]
    planned = f" of {c['planned']}" if c.get("planned") else ""
    state = "[yellow]unstable[/yellow]" if s["score_is_unstable"] else "stable"
    console.print(f"score {_fmt(s['score'], 6)} ({state}; {', '.join(s['scoring_metric'])}, "
                  f"{s['multi_score_strategy']}); runs: {c['completed']} completed, {c['failed']} failed"
                  f"{', ' + str(c['pruned']) + ' pruned' if c['pruned'] else ''}, {c['recorded']} recorded"
                  f"{planned}")
    errors: dict[str, list[str]] = {}
    for r in s["runs"]:
        if r.get("error"):
            errors.setdefault(r["error"][:300], []).append(r["run_name"])
    for message, runs in errors.items():  # grouped by message, as the cv reports them
        line = f"[red]{len(runs)} failed[/red] ({', '.join(runs)}): {escape(message)}"
        console.print(line, highlight=False)
    if s.get("jobs"):
        console.print(f"jobs not recorded yet: {c['running']} running, {c['queued']} queued; "
                      + ", ".join(f"{j['run']} {j['state']}" for j in s["jobs"]), highlight=False)


def _print_tune(s: Mapping[str, Any], console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    names = _metric_names(s["scoring_metric"])
    keys = list(dict.fromkeys(k for e in s["leaderboard"] for k in e["params"]))
    short = _short_names(keys)
    c = s["counts"]
    goal = (f"objectives {', '.join(s['objectives'])}" if s.get("objectives")
            else f"score {s['direction']}d")
    table = Table(title=f"tune {s['tune_name']}: {c['completed']} completed, {c['pruned']} pruned, "
                        f"{c['failed']} failed, {c['running']} running (of {_fmt(s['n_trials'])}); {goal}")
    for col in ("#", "cv", "trial", "state", "score", "95% interval", "vs best (paired)", *names, "runs",
                *(short[k] for k in keys)):
        table.add_column(col, justify="left" if col in ("cv", "state", "vs best (paired)") else "right")
    for e in s["leaderboard"][:TABLE_ROWS]:
        score = _fmt(e["score"]) + (" (unstable)" if e["score_is_unstable"] else "")
        state = e["state"] if e["state"] == "complete" else f"[yellow]{e['state']}[/yellow]"
        if e.get("feasible") is False:
            state += " [red](infeasible)[/red]"
        runs = f"{e['runs_completed']}/{e['runs']}"
        if e["runs_failed"]:
            runs += f" ({e['runs_failed']} failed)"
        table.add_row(str(e["rank"]), str(e["cv_name"]), _fmt(e["trial"]), state, score,
                      _interval(e.get("score_interval")), _vs_best(e, (s.get("best") or {}).get("cv_name")),
                      *(_mean_std(e["metrics"].get(m)) for m in names), runs,
                      *(escape(_fmt(e["params"].get(k))) for k in keys))
    console.print(table)
    if len(s["leaderboard"]) > TABLE_ROWS:
        console.print(f"... {len(s['leaderboard']) - TABLE_ROWS} more (--format json lists all)")
    best = s.get("best")
    if best:
        console.print(f"best: {best['cv_name']} (trial {best['trial']}) score {_fmt(best['score'], 6)}")
        for k, v in best["params"].items():
            console.print(f"  {k}: {escape(_fmt(v, 6))}")
        runner = (s.get("statistics") or {}).get("runner_up")
        if runner:
            verdict = ("[yellow]cannot be told apart from[/yellow]" if not runner["distinguishable"]
                       else "is better than")
            p = (f"; Wilcoxon p={_fmt(runner['p_value'], 2)}" if runner.get("p_can_reach_alpha", True) else "")
            console.print(f"the best {verdict} the runner-up {runner['cv_name']}: "
                          f"{_difference(runner['difference'])} (runner-up - best, 95% paired t interval) over "
                          f"{runner['n_pairs']} (fold, seed) pairs{p}")
        few = (s.get("statistics") or {}).get("few_pairs")
        if few:
            console.print(few)
    elif s.get("pareto_trials") is not None:
        console.print(f"Pareto-optimal trials: {s['pareto_trials']}")
    else:
        console.print("best: no stable trial completed yet")
    if s.get("retrain"):
        r = s["retrain"]
        tested = {k: v for k, v in r["metrics"].items() if k.startswith("test/")} or r["metrics"]
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(tested.items()))
        console.print(f"retrain: {r['status']} {shown} ({r['path']})")
    for note in s.get("notes") or []:
        console.print(f"[dim]{escape(note)}[/dim]")
