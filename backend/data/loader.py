"""The DataLoader of a run: every process steps through every global batch of the epoch and loads its
share of each (`shares.py` says which samples are whose and how each share's loss is weighed)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from torch.utils.data import DataLoader, Sampler

if TYPE_CHECKING:
    from backend.data.dataset import DatasetGroup


class EpochSampler(Sampler):
    """Yields (epoch, batch_index) keys for the group's current epoch, in the main process.

    Every process yields every global batch of the epoch (the group gives each its share of it);
    `skip` batches are left out at the start (resuming mid-epoch).
    """

    def __init__(self, group: DatasetGroup) -> None:
        self.group = group
        self.skip = 0

    def batches_in_epoch(self) -> int:
        return len(self.group)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.group.epoch
        return iter([(epoch, i) for i in range(self.skip, len(self.group))])

    def __len__(self) -> int:
        return max(0, len(self.group) - self.skip)


def make_dataloader(
    group: DatasetGroup,
    max_workers: int = 8,
    persistent_workers: bool = False,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader of ready batches (this process's share of each); call `group.set_epoch(e)` before
    each `iter(loader)`. Its `sampler` (an EpochSampler) skips batches on resume."""
    workers = min(max_workers, os.cpu_count() or 1)
    return DataLoader(
        group,
        batch_size=None,  # the dataset forms batches itself, within buckets
        sampler=EpochSampler(group),
        num_workers=workers,
        persistent_workers=persistent_workers and workers > 0,
        pin_memory=pin_memory,
    )
