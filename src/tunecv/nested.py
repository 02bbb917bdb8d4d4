"""The ``nested`` level: nested cross-validation, a whole tune on each outer training part.

The samples are cut into outer folds (``nested:``, any fold method of ``split.fold_method``). For outer fold
``k`` a normal tune, ``{nested_name}-outer{k}`` in ``{artifact_dir}/{nested_name}/``, sees only the rest:
the outer fold is its test split (``split.test_split: sample`` with the fold's sample ids), so its inner
folds, its trials and its retrain never touch it. The tune's winner is retrained on the whole outer training
part (``tune.retrain_and_test``) and tested on the outer fold once. Every outer tune runs on one executor
(:func:`nested_executor`): side by side when it has several slots (a device pool, ``slurm.max_jobs``, Ray's
slots), each tune keeping its own strategy; else one after the other. Each outer tune's sampler has its own
seed (:func:`outer_seed`). ``--resume`` skips the finished outer folds and resumes the others with the tune's
own resume. The data is a SplitDataModule (sample ids: its metadata's) or a plain LightningDataModule (sample
ids: positions in its pooled train and val data, see :func:`tunecv.fold_data.pool_metadata`).

``nested.json`` in the nested folder records the plan and every finished outer fold (chosen parameters,
inner best cv score, outer test score, optimism); ``run_infos.parquet`` holds every run of every outer tune
and each retrain, with the outer fold in ``outer_fold``.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import tunecv.tune as tune_mod
from tunecv import naming
from tunecv._disk import stop_on_full_disk
from tunecv._io import atomic_write_json, read_json
from tunecv.artifacts import workspace
from tunecv.artifacts.files import NESTED_FILE, RUN_INFOS_FILE
from tunecv.artifacts.kinds import folder_kind
from tunecv.build import as_config, build_objects
from tunecv.config import Config, SplitConfig, dump_yaml
from tunecv.errors import ConfigError, ResumeError
from tunecv.folds import folds_run
from tunecv.placement import resolve
from tunecv.scheduler import drive
from tunecv.train import read_result

__all__ = ["NESTED_FILE", "NestedResult", "nested", "outer_name", "print_summary"]

log = logging.getLogger(__name__)



@dataclass
class NestedResult:
    """What a nested cross-validation left.

    Attributes:
        name: the nested name.
        nested_dir: its folder (``{artifact_dir}/{name}``).
        summary: the content of ``nested.json``: ``folds`` (one entry per finished outer fold: ``outer_fold``,
            ``tune_name``, ``best_params``, ``inner_score``, ``test_score``, ``optimism``, ``test_metrics``),
            ``test_score`` and ``optimism`` (``mean``, ``std``, ``n``) and the parameters' ``agreement``.
        run_infos: every run of every outer tune and each retrain, with ``outer_fold``.
        tunes: the :class:`~tunecv.tune.TuneResult` of each outer tune run by this call.
    """

    name: str
    nested_dir: Path
    summary: dict[str, Any]
    run_infos: Any
    tunes: list[Any] = field(default_factory=list)

    @property
    def test_score(self) -> dict[str, Any]:
        return self.summary["test_score"]

    @property
    def optimism(self) -> dict[str, Any]:
        return self.summary["optimism"]


def outer_name(nested_name: str, k: int) -> str:
    """The name of outer fold ``k``'s tune: ``{nested_name}-outer{k}``."""
    return f"{nested_name}-outer{k}"


# -- the outer folds ---------------------------------------------------------------------------------------

def _check_config(cfg: Config) -> None:
    if cfg.tune.search_space is None:
        raise ConfigError("`tune.search_space` must name a search-space file (YAML or TOML); got None")
    if cfg.split.test_split != "none":
        raise ConfigError(f"`split.test_split` must be none for nested: each outer fold is the test set of its "
                          f"tune (`nested.fold_method` cuts them); got {cfg.split.test_split!r}")
    if cfg.tune.objectives:
        raise ConfigError("`tune.objectives` must be null for nested: the outer test is scored with "
                          f"cv.scoring_metric, one score; got {cfg.tune.objectives!r}")
    if cfg.tune.storage is not None:
        raise ConfigError("`tune.storage` must be null for nested: each outer tune keeps its study in its own "
                          f"folder; got {cfg.tune.storage!r}")


def _outer_metadata(cfg: Config) -> tuple[Any, SplitConfig]:
    """One row per sample and the split that cuts the outer folds from it: a SplitDataModule's metadata (sample
    ids: its ``sample_id`` column, else its index), or a plain LightningDataModule's pooled train and val data
    (sample ids: positions in the pool; labels and groups from ``split.labels`` / ``split.groups``)."""
    import dataclasses

    from tunecv.data import SplitDataModule  # lazy: lightning and torch, once outer folds are planned

    ne = cfg.nested
    outer = SplitConfig(fold_method=ne.fold_method, total_folds=ne.total_folds,
                        group_column=cfg.split.group_column, stratify_column=cfg.split.stratify_column)
    _, data = build_objects(cfg.replace(fold=0))
    if isinstance(data, SplitDataModule):
        return data.metadata, outer
    from tunecv import fold_data  # lazy: lightning and torch, only for a plain LightningDataModule

    return fold_data.pool_metadata(data, dataclasses.replace(outer, labels=cfg.split.labels, groups=cfg.split.groups,
                                                             stratify_column=None))


def outer_folds(cfg: Config) -> list[list[Any]]:
    """The sample ids of each outer fold to run (``nested.n_folds`` of ``nested.total_folds``), seeded with
    ``seed``; ids are the metadata's ``sample_id`` column, else its index (a plain LightningDataModule's: the
    positions in its pooled train and val data)."""
    from tunecv import splits  # lazy: pandas, only once folds are split

    metadata, outer = _outer_metadata(cfg)
    ne = cfg.nested
    ids = metadata[splits.SAMPLE_ID_COLUMN] if splits.SAMPLE_ID_COLUMN in metadata.columns else metadata.index
    if len(set(map(str, ids))) != len(ids):
        raise ConfigError("nested holds each outer fold out by sample id: the data's sample ids (its metadata's "
                          f"{splits.SAMPLE_ID_COLUMN!r} column, else its index) must be unique; got duplicates")
    ids = list(ids.tolist())
    folds = splits.split_folds(metadata, outer, seed=cfg.seed)
    return [[ids[i] for i in test.tolist()] for _, test in folds[:folds_run(outer, ne.n_folds)]]


def outer_seed(cfg: Config, k: int) -> int:
    """The sampler seed of outer fold ``k``'s tune: derived from the base seed (``tune.seed``, else ``seed``) and
    ``k``, so that the outer tunes draw different points instead of replaying each other's, and reproducibly."""
    base = cfg.tune.seed if cfg.tune.seed is not None else cfg.seed
    return (int(base) * 1_000_003 + (k + 1) * 104_729) % (2**31 - 1)


def outer_config(cfg: Config, nested_name: str, folder: Path, k: int, test_ids: list[Any]) -> Config:
    """The tune config of outer fold ``k``: its samples as the test split, under the nested folder, its sampler
    seeded with :func:`outer_seed`."""
    return cfg.replace(**{"name": outer_name(nested_name, k), "artifact_dir": str(folder),
                          "split.test_split": "sample", "split.test_split_by": list(test_ids),
                          "tune.retrain_and_test": True, "tune.seed": outer_seed(cfg, k)})


# -- scores -------------------------------------------------------------------------------------------------

def test_score(cfg: Config, metrics: Mapping[str, Any]) -> float:
    """The outer test score: ``cv.scoring_metric`` with each ``val/`` metric read as ``test/`` (the same
    combination as the inner cv score); NaN when a metric was not tested."""
    import pandas as pd

    from tunecv.scoring import parse_metric, score_runs  # lazy: pandas, only once runs are scored

    row = {}
    for spec in cfg.cv.scoring_metric:
        name = parse_metric(spec)[0]
        tested = "test/" + name[len("val/"):] if name.startswith("val/") else name
        if tested not in metrics:
            return float("nan")
        row[name] = metrics[tested]
    try:
        return float(score_runs(pd.DataFrame([{**row, "status": "completed"}]), cfg.cv.scoring_metric,
                                cfg.cv.multi_score_strategy))
    except Exception:
        return float("nan")


def optimism(inner: float, outer: float, direction: str) -> float:
    """How much better the inner best cv score looked than the outer test showed (positive: optimistic)."""
    return inner - outer if direction == "maximize" else outer - inner


def _stat(values: list[float]) -> dict[str, Any]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return {"mean": statistics.fmean(finite) if finite else None,
            "std": statistics.stdev(finite) if len(finite) > 1 else None, "n": len(finite)}


def agreement(folds: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per tuned parameter: the value chosen in most outer folds and the share of folds that chose it
    (``share``), and for numbers the range of the chosen values."""
    keys = list(dict.fromkeys(k for f in folds for k in f.get("best_params") or {}))
    out = {}
    for key in keys:
        values = [f["best_params"].get(key) for f in folds if key in (f.get("best_params") or {})]
        value, count = Counter(map(repr, values)).most_common(1)[0]
        entry: dict[str, Any] = {"mode": values[[repr(v) for v in values].index(value)], "share": count / len(folds),
                                 "values": values}
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) == len(values):
            entry["range"] = [min(numbers), max(numbers)]
        out[key] = entry
    return out


def _fold_entry(cfg: Config, k: int, result: Any, n_test: int, direction: str) -> dict[str, Any]:
    retrain = result.retrain
    metrics = dict(retrain.metrics or {}) if retrain is not None and retrain.status == "completed" else {}
    outer = test_score(cfg, metrics)
    inner = float(result.best_score)
    return {"outer_fold": k, "tune_name": result.name, "n_test": n_test, "sampler_seed": outer_seed(cfg, k),
            "best_trial": result.best_trial,
            "best_params": dict(result.best_params), "inner_score": inner, "test_score": outer,
            "optimism": optimism(inner, outer, direction),
            "test_metrics": {m: v for m, v in metrics.items() if m.startswith("test/")},
            "retrain_dir": str(retrain.run_dir) if retrain is not None else None,
            "retrain_status": retrain.status if retrain is not None else None}


def _summarize(state: dict[str, Any]) -> dict[str, Any]:
    folds = sorted(state["folds"].values(), key=lambda f: f["outer_fold"])
    return {**state, "test_score": _stat([f["test_score"] for f in folds]),
            "optimism": _stat([f["optimism"] for f in folds]), "agreement": agreement(folds) if folds else {}}


# -- the table ----------------------------------------------------------------------------------------------

def _fold_rows(folder: Path, entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every run of outer fold ``entry``'s tune and its retrain, with ``outer_fold``."""
    from tunecv.results import read_tune_table  # lazy: pandas and pyarrow, only for a table

    k = entry["outer_fold"]
    df = read_tune_table(folder / entry["tune_name"])
    rows = [{**r, "outer_fold": k} for r in df.to_dict("records")]
    if entry.get("retrain_dir"):
        retrain = read_result(Path(entry["retrain_dir"]))
        if retrain is not None:
            rows.append({**retrain.to_row(), "tune_name": entry["tune_name"], "outer_fold": k, "fold": None})
    return rows


def write_table(folder: Path, state: Mapping[str, Any]) -> Any:
    """``{nested_dir}/run_infos.parquet``: the runs of every finished outer fold."""
    # lazy: pandas and pyarrow, only for a table
    from tunecv.results import run_infos_frame, write_parquet_atomic

    rows = [r for k in sorted(state["folds"], key=int) for r in _fold_rows(folder, state["folds"][k])]
    df = run_infos_frame(rows)
    write_parquet_atomic(df, folder / RUN_INFOS_FILE)
    return df


# -- nested -------------------------------------------------------------------------------------------------

def nested(config: Union[Config, Mapping, str, os.PathLike], *, name: Optional[str] = None, resume: bool = False,
           reset: bool = False, dry_run: bool = False, progress: bool = True) -> Optional[NestedResult]:
    """Nested cross-validation: for each outer fold, a tune on the rest, its winner retrained there and tested
    on the outer fold.

    Args:
        config: a :class:`~tunecv.config.Config`, a mapping or a YAML path (a tune's config plus ``nested:``).
        name: the nested name (default ``config.name``, else generated).
        resume: skip the finished outer folds and resume the unfinished outer tune (its own ``--resume``).
        reset: delete the nested folder first.
        dry_run: print the outer folds and create nothing; returns ``None``.
        progress: show each tune's progress.

    Returns:
        The :class:`NestedResult`.
    """
    cfg = as_config(config)
    workspace.check_flags(resume, reset, "nested")
    _check_config(cfg)
    nested_name, folder = _name_and_folder(cfg, name, resume=resume, reset=reset, dry_run=dry_run)
    folds = outer_folds(cfg)
    if dry_run:
        _print_plan(cfg, nested_name, folder, folds)
        return None
    with workspace.claimed("nested", nested_name, folder.parent, resume=resume, reset=reset,
                           found=lambda: folder if folder.exists() else None):
        if reset:
            workspace.discard([folder])
        state = _open_state(cfg, nested_name, folder, folds, resume)
        tunes = _run_outer_tunes(cfg, state, folder, folds, progress)
        summary = _summarize(state)
        atomic_write_json(folder / NESTED_FILE, summary)
        df = write_table(folder, state)
    if progress:
        print_summary(summary)
    return NestedResult(name=nested_name, nested_dir=folder, summary=summary, run_infos=df, tunes=tunes)


def _name_and_folder(cfg: Config, name: Optional[str], *, resume: bool, reset: bool,
                     dry_run: bool) -> tuple[str, Path]:
    nested_name = workspace.choose_name("nested", name or cfg.name, resume=resume,
                                        free=lambda: naming.free_name(Path(cfg.artifact_dir)))
    folder = naming.tune_dir(cfg.artifact_dir, nested_name)
    if dry_run:
        return nested_name, folder
    workspace.check_on_disk("nested", nested_name, folder if folder.exists() else None, folder.parent,
                            resume=resume, reset=reset, resumable=folder_kind(folder) == "nested",
                            why=f"{folder} is not a nested folder" if folder.exists() else "")
    return nested_name, folder


def _open_state(cfg: Config, nested_name: str, folder: Path, folds: list[list[Any]], resume: bool) -> dict:
    """``nested.json`` as it is (``--resume``: its outer folds must be the ones planned now), or a new one."""
    from tunecv.scoring import score_direction  # lazy: pandas, only once runs are scored

    plan = [[str(i) for i in f] for f in folds]
    if resume:
        state = read_json(folder / NESTED_FILE)
        if state.get("plan") != plan:
            raise ResumeError(f"the outer folds of nested cv {nested_name!r} changed since it started (data, seed "
                              "or `nested:` changed); use a new --name, or --reset")
        return state
    workspace.snapshot(folder, dump_yaml(cfg.replace(name=nested_name)))
    ne = cfg.nested
    state = {"name": nested_name, "fold_method": ne.fold_method, "total_folds": ne.total_folds,
             "n_folds": len(folds), "scoring_metric": list(cfg.cv.scoring_metric),
             "direction": score_direction(cfg.cv.scoring_metric), "plan": plan,
             "sampler_seeds": [outer_seed(cfg, k) for k in range(len(folds))], "folds": {}}
    atomic_write_json(folder / NESTED_FILE, state)
    return state


def nested_executor(cfg: Config) -> Any:
    """The one executor of every outer tune. A cluster's (``slurm``, ``ray``) has its slots whatever the
    strategy (``slurm.max_jobs`` jobs, Ray's resources), so that the outer tunes run side by side, each
    keeping its own strategy; a ``local`` one has several slots only as a device pool (cv-parallel /
    tune-parallel)."""
    return resolve(cfg).make_executor(cfg, "nested")


def _run_outer_tunes(cfg: Config, state: dict, folder: Path, folds: list[list[Any]], progress: bool) -> list[Any]:
    """Tune the outer folds not finished before on one executor: side by side when it has several slots
    (:class:`_OuterTunes`), else one after the other; each is recorded as it finishes."""
    pending = []
    for k in range(len(folds)):
        if str(k) in state["folds"]:
            log.info("outer fold %d finished before (%s): kept", k, state["folds"][str(k)]["tune_name"])
        else:
            pending.append(k)
    if not pending:
        return []
    executor = nested_executor(cfg)
    try:
        if executor.n_slots > 1 and len(pending) > 1:
            return _OuterTunes(cfg, state, folder, folds, executor).run(pending)
        return [_run_outer(cfg, state, folder, k, folds[k], progress, executor) for k in pending]
    finally:
        executor.shutdown()


def _announce_outer(state: dict, folder: Path, k: int, n_test: int) -> bool:
    """Log the start of outer fold ``k``'s tune; whether it resumes (its folder exists)."""
    name = outer_name(state["name"], k)
    resume = (folder / name).exists()
    log.info("outer fold %d/%d: tune %s on %d samples less the %d of this fold%s", k + 1, len(state["plan"]), name,
             sum(map(len, state["plan"])), n_test, " (resumed)" if resume else "")
    return resume


def _run_outer(cfg: Config, state: dict, folder: Path, k: int, test_ids: list[Any], progress: bool,
               executor: Any) -> Any:
    """Tune outer fold ``k`` on ``executor`` (resumed when its folder exists) and record it."""
    nested_name = state["name"]
    outer_cfg = outer_config(cfg, nested_name, folder, k, test_ids)
    resume = _announce_outer(state, folder, k, len(test_ids))
    try:
        result = tune_mod.tune(outer_cfg, resume=resume, progress=progress, executor=executor)
    finally:
        naming.announce("nested", nested_name)  # an interrupt's "finish with" line names the nested cv
    return _record(cfg, state, folder, k, result, len(test_ids))


def _record(cfg: Config, state: dict, folder: Path, k: int, result: Any, n_test: int) -> Any:
    """Record outer fold ``k``'s finished tune in ``nested.json`` and the nested table."""
    entry = _fold_entry(cfg, k, result, n_test, state["direction"])
    state["folds"][str(k)] = entry
    atomic_write_json(folder / NESTED_FILE, _summarize(state))
    write_table(folder, state)
    log.info("outer fold %d: inner best %s, outer test %s, optimism %s", k, _fmt(entry["inner_score"]),
             _fmt(entry["test_score"]), _fmt(entry["optimism"]))
    return result


class _OuterTunes:
    """The outer tunes driven side by side on one executor by one :func:`~tunecv.scheduler.drive`: its
    source of cvs and its callbacks, each routed to the tune the cv belongs to.

    A free slot goes to the unfinished outer tune with the fewest cvs in flight (the lowest outer fold on a
    tie), within that tune's own limits (:meth:`~tunecv.tune.TuneDriver.limits`), so each tune asks its
    sampler as it would alone. A tune with nothing in flight and nothing to ask is finished there (its retrain,
    in this process, as ``tunecv tune`` does it) and recorded at once, so ``--resume`` keeps it.
    """

    def __init__(self, cfg: Config, state: dict, folder: Path, folds: list[list[Any]], executor: Any) -> None:
        self.cfg, self.state, self.folder, self.folds, self.executor = cfg, state, folder, folds, executor
        self.drivers: dict[int, Any] = {}  # outer fold -> its TuneDriver, until it finished
        self.owner: dict[int, int] = {}  # id(cv) -> outer fold, for the cvs in flight
        self.results: list[Any] = []

    def run(self, pending: list[int]) -> list[Any]:
        import contextlib

        nested_name = self.state["name"]
        with contextlib.ExitStack() as held:
            for k in pending:
                resume = _announce_outer(self.state, self.folder, k, len(self.folds[k]))
                outer_cfg = outer_config(self.cfg, nested_name, self.folder, k, self.folds[k])
                self.drivers[k] = tune_mod.open_tune(outer_cfg, resume=resume, executor=self.executor, held=held)
                held.enter_context(self.drivers[k].heartbeat)
            naming.announce("nested", nested_name)  # an interrupt's "finish with" line names the nested cv
            per_session = next(iter(self.drivers.values())).limits()[0]
            with stop_on_full_disk("nested", nested_name, self.folder):
                try:
                    drive(self.executor, self.next_cv, per_session=per_session, quiet=True,
                          pinned=bool(self.executor.pinned), on_run_end=self.run_ended, on_session_end=self.cv_ended)
                finally:
                    for driver in self.drivers.values():
                        driver.budget.save()
                for k in sorted(self.drivers):  # left with nothing to ask when the last cvs ended
                    self.finish(k)
        return self.results

    def next_cv(self) -> Any:
        """The cv of a new trial of the outer tune with the fewest cvs in flight (``None``: none to start now)."""
        for k in sorted(self.drivers, key=lambda k: (len(self.drivers[k].trials), k)):
            driver = self.drivers[k]
            if len(driver.trials) >= driver.limits()[1]:
                continue
            session = driver.ask()
            if session is not None:
                self.owner[id(session)] = k
                return session
            if not driver.trials:
                self.finish(k)
        return None

    def run_ended(self, session: Any, run: Any, row: dict) -> None:
        self.drivers[self.owner[id(session)]].run_ended(session, run, row)

    def cv_ended(self, session: Any) -> None:
        k = self.owner.pop(id(session))
        self.drivers[k].cv_ended(session)
        log.info("outer fold %d: %s ended (%d of %d trials)", k, session.name,
                 self.drivers[k].counts.finished(), self.drivers[k].plan.n_trials)

    def finish(self, k: int) -> None:
        """Finish outer fold ``k``'s tune (the result, the retrain) and record it."""
        driver = self.drivers.pop(k)
        self.results.append(_record(self.cfg, self.state, self.folder, k, driver.finish(), len(self.folds[k])))


# -- printing -----------------------------------------------------------------------------------------------

def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _mean_std(stat: Mapping[str, Any]) -> str:
    return f"{_fmt(stat.get('mean'))} ± {_fmt(stat.get('std'))} (n={stat.get('n', 0)})"


def print_summary(summary: Mapping[str, Any], console: Any = None) -> None:
    """The per-outer-fold table, the outer test score, the optimism and the parameters' agreement."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console(width=200 if not os.environ.get("COLUMNS") else None)
    folds = [summary["folds"][k] for k in sorted(summary["folds"], key=int)]
    metric = ", ".join(summary["scoring_metric"])
    table = Table(title=f"nested {summary['name']}: {len(folds)} of {summary['n_folds']} outer folds "
                        f"({summary['fold_method']}, {summary['total_folds']} in all); score {escape(metric)}")
    for column in ("outer fold", "tune", "test samples", "inner best", "outer test", "optimism"):
        table.add_column(column, justify="left" if column == "tune" else "right")
    for f in folds:
        table.add_row(str(f["outer_fold"]), f["tune_name"], str(f["n_test"]), _fmt(f["inner_score"]),
                      _fmt(f["test_score"]), _fmt(f["optimism"]))
    console.print(table)
    console.print(f"outer test score: {_mean_std(summary['test_score'])}")
    console.print(f"optimism of the inner best (inner best cv score vs outer test, positive: the inner score "
                  f"was better): {_mean_std(summary['optimism'])}")
    if summary.get("agreement"):
        console.print("chosen parameters (per outer fold):")
    for p, a in (summary.get("agreement") or {}).items():
        same = round(a["share"] * len(folds))
        values = "" if same == len(folds) else f": {', '.join(_fmt(v) for v in a['values'])}"
        console.print(f"  {escape(p)}: {_fmt(a['mode'])} in {same}/{len(folds)} outer folds{escape(values)}")


def _print_plan(cfg: Config, nested_name: str, folder: Path, folds: list[list[Any]]) -> None:
    ne = cfg.nested
    print(f"nested {nested_name}: {len(folds)} outer folds ({ne.fold_method}, {ne.total_folds} in all), each a tune "
          f"of {cfg.tune.n_trials} trials on the rest, its best retrained there and tested on the outer fold")
    for k, ids in enumerate(folds):
        print(f"  {outer_name(nested_name, k)}: {len(ids)} test samples -> {folder / outer_name(nested_name, k)}")
    print("dry run: nothing was created")


def report_summary(folder: Path) -> dict[str, Any]:
    """What ``tunecv report`` shows of a nested folder (also while it runs): ``nested.json``."""
    state = read_json(folder / NESTED_FILE)
    return {"kind": "nested", "path": str(folder), **_summarize(state)}
