"""The tune table, ``{tune_dir}/run_infos.parquet``: one part per finished cv, compacted on a schedule and at
the end, parts a crash left unwritten repaired."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from tunecv.artifacts.files import RUN_INFOS_FILE
from tunecv.cv import CrossValidation


class _TuneTable:
    """``{tune_dir}/run_infos.parquet`` in time independent of the tune's size: one part file per finished
    cv (written once, with its trial's final state), compacted into the table when the parts not yet in
    it reach a quarter of those that are (so each row is rewritten a bounded number of times) and at the
    end. :func:`tunecv.results.read_tune_table` reads table and parts alike."""

    def __init__(self, folder: Path, study: Any) -> None:
        self.folder, self.study = folder, study
        self.held = 0  # parts in the compacted table at its last compaction by this process
        self.pending: dict[str, Any] = {}  # parts this process wrote since, by name: not read back from disk

    def add(self, session: CrossValidation, trial: Any, state: str) -> None:
        from tunecv.results import write_run_infos_part  # lazy: pandas and pyarrow

        df = session.frame()
        if len(df):
            name = _part_name(session.name, trial.number)
            df = _with_trial_states(df, self.study, {trial.number: state})
            write_run_infos_part(self.folder, name, df)
            self.pending[name] = df
        if len(self.pending) >= max(1, self.held // 4):
            self.compact()

    def compact(self) -> None:
        from tunecv.results import compact_run_infos  # lazy: pandas and pyarrow

        self.held = compact_run_infos(self.folder, self._pareto if len(self.study.directions) > 1 else None,
                                      known=self.pending)
        self.pending = {}

    def _pareto(self, df: Any) -> Any:
        pareto: set[int] = set()
        with contextlib.suppress(Exception):
            pareto = {t.number for t in self.study.best_trials}
        if "trial" in df.columns:
            import pandas as pd

            df["is_pareto_optimal"] = [bool(pd.notna(t) and int(t) in pareto) for t in df["trial"]]
        return df

    def repair(self) -> None:
        """Write the parts a crash left unwritten (a trial told, its part not yet on disk)."""
        from optuna.trial import TrialState

        from tunecv.results import PARTS_DIR, read_run_infos, write_run_infos_part  # lazy: pandas and pyarrow

        done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        have = {p.name for p in (self.folder / PARTS_DIR).glob("*.parquet")}
        trials = self.study.get_trials(deepcopy=False)
        states = {t.number: t.state.name.lower() for t in trials}
        for t in trials:
            cv_name = t.user_attrs.get("cv_name")
            if t.state not in done or not cv_name or f"{_part_name(cv_name, t.number)}.parquet" in have:
                continue
            df = read_run_infos(self.folder / cv_name / RUN_INFOS_FILE)
            if len(df) and "trial" in df.columns and (df["trial"] == t.number).any():
                write_run_infos_part(self.folder, _part_name(cv_name, t.number),
                                     _with_trial_states(df, self.study, states))


def _part_name(cv_name: str, number: int) -> str:
    return f"{cv_name}.trial{number}"


def _with_trial_states(df: Any, study: Any, known: Optional[Mapping[int, str]] = None) -> Any:
    """``df`` with ``trial_state`` taken from the study for every row's trial (``known`` first)."""
    import pandas as pd

    if "trial" not in df.columns:
        return df
    states = dict(known or {})
    unknown = {int(t) for t in df["trial"] if pd.notna(t)} - set(states)
    if unknown:
        with contextlib.suppress(Exception):
            states.update({t.number: t.state.name.lower() for t in study.get_trials(deepcopy=False)
                           if t.number in unknown})
    current = df["trial_state"] if "trial_state" in df.columns else [None] * len(df)
    df["trial_state"] = [states.get(int(t), s) if pd.notna(t) else s for t, s in zip(df["trial"], current,
                                                                                    strict=False)]
    return df
