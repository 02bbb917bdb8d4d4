"""An executor: runs each job in this process and writes every run it was given into a ledger file.

Its options are the ``ledger:`` config section (:class:`LedgerConfig`). Registered with
``tunecv.register_executor("ledger", LedgerExecutor)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunecv.errors import ConfigError
from tunecv.executors import SerialExecutor


@dataclass(frozen=True)
class LedgerConfig:
    """Options of executor ledger: the ledger file (under artifact_dir) and a label for its lines."""

    file: str = "ledger.txt"
    label: str = "ledger"


class LedgerExecutor(SerialExecutor):
    name = "ledger"
    section = LedgerConfig

    def __init__(self, path: Path, label: str) -> None:
        super().__init__()
        self.path, self.label = path, label

    @staticmethod
    def check_config(cfg):
        if not cfg.ledger.file.strip() or "/" in cfg.ledger.file:
            raise ConfigError(f"`ledger.file` must be a file name (no folder); got {cfg.ledger.file!r}")

    @classmethod
    def from_config(cls, cfg, *, parallel, accelerator):
        return cls(Path(cfg.artifact_dir) / cfg.ledger.file, cfg.ledger.label)

    def submit_run(self, folder, fn, /, *args):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(f"{self.label} {Path(folder).name}\n")
        return self.submit(fn, *args)
