"""Third-party chatter off by default: Lightning's device lines and tips, Optuna's "A new study created".

Each is one ``logging`` record of a known logger; a filter on that logger drops the record unless
``TUNECV_VERBOSE=1`` (``--verbose``; set in the environment, so that the runs of a pool, a SLURM job or a Ray
task see it too). Installing the filters imports nothing; a logger that does not exist yet gets it when
it is made (``logging.getLogger`` returns the same object).
"""

from __future__ import annotations

import logging
import os

ENV = "TUNECV_VERBOSE"

# the loggers that print them: rank_zero_info of both Lightning packages, Optuna's storages
LOGGERS = (
    "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
    "pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
    "optuna.storages._rdb.storage", "optuna.storages.journal._storage", "optuna.storages._in_memory",
)
CHATTER = ("GPU available", "TPU available", "HPU available", "IPU available", "💡 Tip",
           "A new study created")


def verbose() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


class _DropChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if verbose():
            return True
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted is not ours to judge
            return True
        return not message.lstrip().startswith(CHATTER)


_FILTER = _DropChatter()


def install(verbose_flag: bool | None = None) -> None:
    """Drop the chatter (``verbose_flag`` True: let it through, here and in every process started later)."""
    if verbose_flag is not None:
        os.environ[ENV] = "1" if verbose_flag else "0"
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
