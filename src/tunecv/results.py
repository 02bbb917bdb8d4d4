"""The one results table of all three levels: ``run_infos.parquet``, one row per training run.

Columns, in order:

- the fixed columns :data:`RUN_INFO_COLUMNS`: ``run_name``, ``run_id``, ``cv_name``, ``tune_name``,
  ``fold``, ``seed``, ``started_at``, ``finished_at`` (UTC), ``duration`` (seconds), ``checkpoint``
  (best checkpoint path), ``status`` (completed | failed | pruned), ``error``, ``is_unstable``;
- one column per metric, under its own name (``val/loss``, ...);
- :data:`SCORE_COLUMNS`: ``score``, ``score_is_unstable`` (the same on every row of one cv);
- at tune level :data:`TUNE_COLUMNS` (``trial``, ``trial_state``) and one column per tuned
  hyperparameter, named by its dotted config key (``model.init_args.lr``).

A column is a hyperparameter when its first dotted part is a top-level config key (see
:func:`is_hyperparameter_column`); any other column that is not fixed is a metric.

Files are written atomically (:func:`write_parquet_atomic`), so a killed process never leaves a
truncated table behind.

A tune's table grows in time independent of the tune's size: each finished cv adds one *part* file,
written once (``{tune_dir}/run_infos.parts/{cv_name}.trial{n}.parquet``), and the parts are folded into
the compacted ``{tune_dir}/run_infos.parquet`` on a schedule and at the end (:func:`compact_run_infos`;
the compacted file names the parts it holds). :func:`load_run_infos` and :func:`read_tune_table` read
the compacted table and every part it does not hold yet, so they see every finished cv at any moment.
Parts are never deleted: a compaction that loses a race to another worker's only loses time.

This is a leaf module: it imports numpy, pandas and pyarrow only.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tunecv._io import atomic_write
from tunecv.artifacts.files import PARTS_DIR, PARTS_LOCK_FILE, RUN_INFOS_FILE
from tunecv.errors import TunecvError

__all__ = [
    "PARTS_DIR",
    "RUN_INFOS_FILE",
    "RUN_INFO_COLUMNS",
    "SCORE_COLUMNS",
    "STATUSES",
    "TUNE_COLUMNS",
    "compact_run_infos",
    "hyperparameter_columns",
    "is_hyperparameter_column",
    "load_run_infos",
    "metric_columns",
    "read_run_infos",
    "read_tune_table",
    "run_infos_frame",
    "write_parquet_atomic",
    "write_run_infos_part",
]

_PARTS_KEY = b"tunecv:parts"  # schema metadata of a compacted table: the part files it holds (JSON list)
RUN_INFO_COLUMNS = (
    "run_name", "run_id", "cv_name", "tune_name", "fold", "seed", "started_at", "finished_at",
    "duration", "checkpoint", "status", "error", "is_unstable",
)
SCORE_COLUMNS = ("score", "score_is_unstable")
TUNE_COLUMNS = ("trial", "trial_state")
NESTED_COLUMNS = ("outer_fold",)  # the outer fold of a run under `tunecv nested`
PRUNED_COLUMNS = ("pruned_at_epoch",)  # the epochs a run pruned inside itself had done (tunecv.pruning)
STATUSES = ("completed", "failed", "pruned")

# Top-level keys of tunecv.config.Config (a test keeps the two in step); a hyperparameter column is
# named by a dotted config key, so its first part is one of these.
CONFIG_KEYS = (
    "name", "artifact_dir", "cli", "seed_everything", "model", "data", "split", "trainer", "optimizer", "lr_scheduler",
    "ckpt_path", "weights_only", "accelerator", "strategy", "devices", "num_nodes", "runs_per_device", "fold", "seed",
    "early_stopping", "checkpoint", "logging", "cv", "tune", "nested", "executor",
)  # and the executors' sections (local, slurm, ray, a registered executor's): config_keys()


def config_keys() -> tuple[str, ...]:
    """Every top-level config key: :data:`CONFIG_KEYS` and the section of each registered executor."""
    from tunecv.executors import executor_names  # lazy: the pool modules load only when a table is read

    return (*CONFIG_KEYS, *executor_names())

_STR = pd.Series(["x"]).dtype  # pandas' default string dtype ("str" in pandas 3, object before)
_TIMESTAMP = pd.DatetimeTZDtype("ns", "UTC")
_DTYPES: dict[str, object] = {
    "run_name": _STR, "run_id": _STR, "cv_name": _STR, "tune_name": _STR,
    "fold": pd.Int64Dtype(), "seed": pd.Int64Dtype(),
    "started_at": _TIMESTAMP, "finished_at": _TIMESTAMP,
    "duration": np.dtype("float64"), "checkpoint": _STR, "status": _STR, "error": _STR,
    "is_unstable": pd.BooleanDtype(),
    "score": np.dtype("float64"), "score_is_unstable": pd.BooleanDtype(),
    "trial": pd.Int64Dtype(), "trial_state": _STR, "outer_fold": pd.Int64Dtype(),
    "pruned_at_epoch": pd.Int64Dtype(),
}
_BOOKKEEPING = frozenset(RUN_INFO_COLUMNS + SCORE_COLUMNS + TUNE_COLUMNS + NESTED_COLUMNS + PRUNED_COLUMNS)


# -- columns ---------------------------------------------------------------------------------------------

def is_hyperparameter_column(name: str) -> bool:
    """Whether a column holds a tuned hyperparameter.

    Args:
        name: A column name.

    Returns:
        True for a dotted config key such as ``model.init_args.lr`` or ``trainer.gradient_clip_val``
        (first dotted part a top-level config key, no ``/``) that is not a fixed column, and for a parameter
        of a conditional search space its name (``optimizer[SGD].init_args.momentum``).
    """
    if not isinstance(name, str) or name in _BOOKKEEPING or "/" in name:
        return False
    return name.split(".", 1)[0].split("[", 1)[0] in config_keys()


def hyperparameter_columns(df: pd.DataFrame) -> list[str]:
    """The hyperparameter columns of ``df``, in column order."""
    return [c for c in df.columns if is_hyperparameter_column(c)]


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The metric columns of ``df`` (neither fixed, score, tune nor hyperparameter), in column order."""
    return [c for c in df.columns if c not in _BOOKKEEPING and not is_hyperparameter_column(c)]


def _ordered(columns: Iterable[str]) -> list[str]:
    """Fixed columns, metrics, score columns, tune columns, hyperparameters (each group in given order)."""
    present = list(dict.fromkeys(columns))
    metrics = [c for c in present if c not in _BOOKKEEPING and not is_hyperparameter_column(c)]
    hyper = [c for c in present if is_hyperparameter_column(c)]
    tune = list(TUNE_COLUMNS) if any(c in present for c in TUNE_COLUMNS) else []
    nested = [c for c in NESTED_COLUMNS + PRUNED_COLUMNS if c in present]
    return [*RUN_INFO_COLUMNS, *metrics, *SCORE_COLUMNS, *tune, *nested, *hyper]


# -- dtypes ----------------------------------------------------------------------------------------------

def _as_str(series: pd.Series) -> pd.Series:
    if series.dtype == _STR:
        return series
    values = [None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v) for v in series]
    return pd.Series(values, index=series.index, dtype=_STR, name=series.name)


def _as_timestamp(series: pd.Series) -> pd.Series:
    if series.dtype == _TIMESTAMP:
        return series
    return pd.to_datetime(series, utc=True).astype(_TIMESTAMP)


def _as_float(series: pd.Series) -> pd.Series:
    if series.dtype == np.dtype("float64"):
        return series
    numeric = pd.to_numeric(series, errors="raise")
    return pd.Series(numeric.to_numpy(dtype="float64", na_value=np.nan), index=series.index,
                     name=series.name)


def _cast(series: pd.Series, dtype: object) -> pd.Series:
    if dtype is _STR:
        return _as_str(series)
    if dtype is _TIMESTAMP:
        return _as_timestamp(series)
    if dtype == np.dtype("float64"):
        return _as_float(series)
    return series if series.dtype == dtype else series.astype(dtype)  # type: ignore[call-overload]


def _normalize(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every column in order and the fixed columns (and metrics) at their stable dtypes."""
    columns = _ordered(df.columns)
    out: dict[str, pd.Series] = {}
    for name in columns:
        series = df[name] if name in df.columns else pd.Series([None] * len(df), index=df.index,
                                                               dtype=object)
        if name in _DTYPES:
            series = _cast(series, _DTYPES[name])
        elif not is_hyperparameter_column(name):
            # A metric: float64 when it is numeric (or all missing), else left as it is.
            with contextlib.suppress(TypeError, ValueError):
                series = _as_float(series)
        elif series.isna().all():  # a hyperparameter no run had: null in parquet, None here
            series = pd.Series([None] * len(df), index=df.index, dtype=object)
        out[name] = series.rename(name)
    return pd.DataFrame(out, index=df.index, columns=columns)


def run_infos_frame(rows: Sequence[Mapping]) -> pd.DataFrame:
    """A ``run_infos`` table from one mapping per run.

    Missing fixed and score columns are added empty; every fixed column gets its stable dtype (strings
    in pandas' string dtype, ``fold``/``seed``/``trial`` ``Int64``, timestamps ``datetime64[ns, UTC]``
    (naive times are taken as UTC), booleans ``boolean``), metrics are float64, so the table
    round-trips through parquet unchanged even when a column is all missing.

    Args:
        rows: One mapping per run; keys are column names. A key missing from a row is a missing value.

    Returns:
        The table, columns ordered as described in the module docstring.
    """
    df = pd.DataFrame.from_records([dict(r) for r in rows]) if rows else pd.DataFrame()
    return _normalize(df.reset_index(drop=True))


# -- files -----------------------------------------------------------------------------------------------

def write_parquet_atomic(df: pd.DataFrame, path: str | os.PathLike,
                         metadata: Mapping[bytes, bytes] | None = None, *, durable: bool = True) -> None:
    """Write ``df`` to a parquet file so that ``path`` is always either the old or the new file.

    Written through :func:`tunecv._io.atomic_write` (a temp file in the same folder, fsync,
    ``os.replace``, fsync of the folder); the folder is created when missing.

    Args:
        df: The table; its index is not written.
        path: The target file.
        metadata: extra key-value pairs for the file's schema metadata.
        durable: fsync it (``False`` for a table rebuilt from its records on ``--resume``: still atomic
            against a kill, not flushed against a power loss).
    """
    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    atomic_write(path, lambda fh: pq.write_table(table, fh), durable=durable)


def _empty() -> pd.DataFrame:
    return _normalize(pd.DataFrame())


def _read_table(path: Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise TunecvError(f"cannot read {path}: {exc}; delete or restore the file") from exc
    # The pandas metadata of one file would mislead the conversion of several concatenated ones.
    return table.replace_schema_metadata(None)


def read_run_infos(path: str | os.PathLike) -> pd.DataFrame:
    """Read one ``run_infos.parquet`` file.

    Args:
        path: The file.

    Returns:
        The table with stable dtypes; an empty table with the fixed and score columns when the file
        does not exist.

    Raises:
        TunecvError: The file exists but is not a readable parquet file.
    """
    path = Path(path)
    if not path.is_file():
        return _empty()
    return _normalize(_read_table(path).to_pandas())


# -- a tune's table: compacted file + parts ---------------------------------------------------------------

def write_run_infos_part(folder: str | os.PathLike, name: str, df: pd.DataFrame) -> Path:
    """Write the rows of one finished cv as a part of ``folder``'s table (atomically, once).

    Args:
        folder: The tune folder.
        name: The part's name, unique per content (tunecv uses ``{cv_name}.trial{n}``).
        df: The cv's rows.

    Returns:
        The part file.
    """
    path = Path(folder) / PARTS_DIR / f"{name}.parquet"
    write_parquet_atomic(df, path)
    return path


def _part_names(folder: Path) -> list[str]:
    try:
        with os.scandir(folder / PARTS_DIR) as entries:
            return sorted(e.name for e in entries if e.name.endswith(".parquet") and not e.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _read_compacted(path: Path) -> tuple[pa.Table | None, set[str]]:
    """The compacted table (metadata stripped) and the names of the parts it holds."""
    if not path.is_file():
        return None, set()
    try:
        raw = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise TunecvError(f"cannot read {path}: {exc}; delete or restore the file") from exc
    held = (raw.schema.metadata or {}).get(_PARTS_KEY)
    return raw.replace_schema_metadata(None), set(json.loads(held)) if held else set()


def _merge_parts(table: pd.DataFrame | None, parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """``table`` with the rows of each cv in ``parts`` replaced by the part's rows.

    When several parts hold one cv, the one with the highest trial number wins. Rows are ordered by cv
    name (the order of the cv folders), each cv's rows in their own order.
    """
    latest: dict[object, tuple[float, pd.DataFrame]] = {}
    loose = []
    for part in parts:
        if not len(part):
            continue
        cv = part["cv_name"].iloc[0] if "cv_name" in part.columns else None
        if cv is None or (not isinstance(cv, str) and pd.isna(cv)):
            loose.append(part)
            continue
        rank = -1.0
        if "trial" in part.columns and part["trial"].notna().any():
            rank = float(pd.to_numeric(part["trial"], errors="coerce").max())
        if cv not in latest or rank >= latest[cv][0]:
            latest[cv] = (rank, part)
    frames = []
    if table is not None and len(table):
        frames.append(table[~table["cv_name"].isin(list(latest))] if latest else table)
    frames += [part for _, part in latest.values()] + loose
    if not frames:
        return _empty()
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    keys = np.array([f"{v}/" if isinstance(v, str) else "" for v in df["cv_name"]], dtype=object)
    df = df.iloc[np.argsort(keys, kind="stable")].reset_index(drop=True)
    return run_infos_frame(df.to_dict("records"))


def _lock(folder: Path):
    """An exclusive lock on ``folder``'s table while it is compacted (a no-op where flock is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def held():
        fd = os.open(folder / PARTS_LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    return held()


def read_tune_table(folder: str | os.PathLike) -> pd.DataFrame:
    """A tune's table: its compacted ``run_infos.parquet`` plus every part not compacted yet.

    Args:
        folder: The tune folder.

    Returns:
        One row per run of every finished cv (the same frame the next compaction writes, apart from
        columns a compaction adds); an empty table when the folder holds neither.

    Raises:
        TunecvError: A file is not a readable parquet file.
    """
    folder = Path(folder)
    table, held = _read_compacted(folder / RUN_INFOS_FILE)
    new = [n for n in _part_names(folder) if n not in held]
    if not new:
        return _empty() if table is None else _normalize(table.to_pandas())
    parts = [read_run_infos(folder / PARTS_DIR / n) for n in new]
    return _merge_parts(None if table is None else _normalize(table.to_pandas()), parts)


def compact_run_infos(folder: str | os.PathLike,
                      transform: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
                      known: Mapping[str, pd.DataFrame] | None = None) -> int:
    """Fold the parts that ``folder/run_infos.parquet`` does not hold yet into it.

    Compactions of one folder run one at a time (an exclusive ``flock`` on ``.run_infos.lock``), so two
    workers of a shared tune never write an older table over a newer one. Parts stay on disk.

    Args:
        folder: The tune folder.
        transform: Applied to the whole table before it is written (a tune marks its Pareto front);
            when given, the table is rewritten even without new parts.
        known: Parts the caller wrote and still holds, by name (without ``.parquet``): used instead of
            reading those files again.

    Returns:
        The number of parts the compacted table holds.
    """
    folder = Path(folder)
    with _lock(folder):
        table, held = _read_compacted(folder / RUN_INFOS_FILE)
        new = [n for n in _part_names(folder) if n not in held]
        if not new and transform is None:
            return len(held)
        current = None if table is None else _normalize(table.to_pandas())
        known = known or {}
        parts = [known[n[: -len(".parquet")]] if n[: -len(".parquet")] in known else
                 read_run_infos(folder / PARTS_DIR / n) for n in new]
        df = _merge_parts(current, parts)
        if transform is not None:
            df = transform(df)
        held |= set(new)
        write_parquet_atomic(df, folder / RUN_INFOS_FILE, metadata={_PARTS_KEY: json.dumps(sorted(held)).encode()})
        return len(held)


def _outermost_files(root: Path) -> list[Path]:
    """Every ``run_infos.parquet`` below ``root`` that has no ancestor below ``root`` holding one.

    Outer files come first (shallow before deep, then by path).
    """
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if RUN_INFOS_FILE in filenames or PARTS_DIR in dirnames:
            found.append(Path(dirpath) / RUN_INFOS_FILE)
            dirnames.clear()  # a tune's table already holds the runs of the cvs below it
        else:
            dirnames.sort()
    return sorted(found, key=lambda p: (len(p.relative_to(root).parts), str(p)))


def _read_any(path: Path) -> pa.Table:
    """A cv's file as it is; a tune's table with the parts it does not hold yet."""
    if not (path.parent / PARTS_DIR).is_dir():
        return _read_table(path)
    table, held = _read_compacted(path)
    if table is not None and not any(n not in held for n in _part_names(path.parent)):
        return table
    return pa.Table.from_pandas(read_tune_table(path.parent), preserve_index=False)


def load_run_infos(path: str | os.PathLike) -> pd.DataFrame:
    """Every run below a folder, read from its ``run_infos.parquet`` files into one table.

    ``path`` may be a run, cv or tune folder, a whole artifact folder, or one parquet file. A file in a
    folder whose ancestor (within ``path``) also holds one is skipped: a tune's file already holds the
    runs of its cvs. A tune's table is read with the parts it does not hold yet (see
    :func:`read_tune_table`). Files with different metric or hyperparameter columns are unified (missing values
    are null). A ``run_id`` seen in several files keeps the row of the outermost file.

    Args:
        path: A folder or a parquet file.

    Returns:
        One row per run with stable dtypes; an empty table with the fixed and score columns when no file
        is found.

    Raises:
        TunecvError: ``path`` does not exist, or a file is not a readable parquet file.
    """
    root = Path(path)
    if root.is_file():
        if root.name == RUN_INFOS_FILE and (root.parent / PARTS_DIR).is_dir():
            return read_tune_table(root.parent)
        return read_run_infos(root)
    if not root.is_dir():
        raise TunecvError(f"cannot load run infos: {root} does not exist")
    files = _outermost_files(root)
    if not files:
        return _empty()
    if len(files) == 1:
        tables = [_read_any(files[0])]
    else:  # reading releases the GIL: a few threads hide the per-file latency
        with ThreadPoolExecutor(max_workers=min(8, len(files))) as pool:
            tables = list(pool.map(_read_any, files))
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # Columns whose types cannot be unified (e.g. a hyperparameter that is a number in one tune
        # and a string in another): let pandas concatenate them as objects.
        df = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    else:
        df = table.to_pandas()
    if "run_id" in df.columns and len(tables) > 1:
        ids = df["run_id"]
        df = df[~(ids.duplicated(keep="first") & ids.notna())].reset_index(drop=True)
    return _normalize(df)
