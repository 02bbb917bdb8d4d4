"""The data module base of the bundled examples whose data is one small table."""

from __future__ import annotations

from tunecv.data import SplitDataModule


class SmallTableDataModule(SplitDataModule):
    """A small table held in memory: a subclass writes ``load()`` only.

    Args:
        batch_size: samples per batch.
        num_workers: dataloader workers.
    """

    def __init__(self, batch_size: int = 32, num_workers: int = 0) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
