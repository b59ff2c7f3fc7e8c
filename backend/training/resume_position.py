"""Where a resumed run continues inside the saved epoch, with any number of processes.

A state records how many of its epoch's global batches (batch size x processes each) were done.
An epoch's plan depends only on the seed, the epoch and the global batch size, so with the same
global batch size the run continues at the next batch of the same plan, exactly: 2 processes with
batch 1 resume onto 1 process with batch 2 and back, and the losses and weights are those of the
uninterrupted run.

With another global batch size (another batch size x processes) the epoch has another plan. The
run then continues at the saved step, in the saved epoch, after the same share of that epoch's
batches, in the new plan's order: until that epoch ends some images may come twice and others not
at all; the following epochs are whole. Nothing is refused, as in sd-scripts (which restarts the
epoch count, or skips a number of steps, whatever the batch size); a warning says what happens.

States saved before the global batch was recorded counted batches of one process's shard, planned
at the batch size per process: with one process that is the same count; with several the same
share of the epoch is taken.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from backend.data.dataset import DatasetGroup
from backend.messages import msg
from backend.training.checkpoints import TrainState

logger = logging.getLogger(__name__)


def _older_shard_length(state: TrainState, group: DatasetGroup) -> int:
    """An older state's batches per process and epoch: batches at the per-process size, dealt out."""
    per_process = sum(
        math.ceil(len(items) / dataset.spec.batch_size)
        for dataset in group.datasets
        for items in dataset.buckets.values()
    )
    return max(1, math.ceil(per_process / (state.processes or 1)))


def resume_skip(state: TrainState, group: DatasetGroup, folder: str | Path, warn: bool = True) -> int:
    """How many of `state.epoch`'s global batches in `group` (this run's plan) to leave out."""
    done, total = state.batches_done_in_epoch, len(group)
    if done <= 0:
        return 0
    sizes = tuple(dataset.batch_size for dataset in group.datasets)
    if state.batch_sizes == sizes:
        return min(done, total)
    single = state.processes in (None, 1) and all(dataset.processes == 1 for dataset in group.datasets)
    if state.batch_sizes is None and single:
        return min(done, total)  # an older state of one process, resumed on one: the same batches
    if state.batch_sizes is None:
        saved_total = _older_shard_length(state, group)
    else:
        saved_total = max(state.batches_in_epoch or total, 1)
    skip = min(total, round(done * total / saved_total))
    if done < saved_total:  # the saved epoch was not over: neither is this one
        skip = min(skip, total - 1)
    if warn:
        logger.warning(_other_plan_message(state, sizes, folder, skip=skip, total=total, saved_total=saved_total))
    return skip


def _other_plan_message(state: TrainState, sizes: tuple[int, ...], folder: str | Path, *, skip: int, total: int,
                        saved_total: int) -> str:
    where = {"folder": folder, "processes": state.processes or 1, "step": state.global_step, "epoch": state.epoch,
             "skip": skip, "total": total, "done": state.batches_done_in_epoch, "saved_total": saved_total}
    if state.batch_sizes is None:
        return msg(
            "run.resume.older_state", "--resume {folder} was saved by an older version, which counted each "
            "process's batches ({processes} processes); batches are now planned for all processes together. "
            "Training continues at step {step} in epoch {epoch}, after {skip} of its {total} batches (the saved "
            "run had done {done} of {saved_total} per process); until this epoch ends some images may come twice "
            "and others not at all.", **where,
        )
    return msg(
        "run.resume.other_global_batch", "--resume {folder} was saved with a global batch of {saved} (batch size x "
        "{processes} processes), this run has {current}, so the epoch's batches are other ones. Training continues "
        "at step {step} in epoch {epoch}, after {skip} of its {total} batches (the saved run had done {done} of "
        "{saved_total}); until this epoch ends some images may come twice and others not at all, and the losses "
        "differ from the saved run's. Resume with the same batch size x processes to continue exactly.",
        saved=_sizes(state.batch_sizes), current=_sizes(sizes), **where,
    )


def _sizes(sizes: tuple[int, ...]) -> str:
    return "/".join(str(size) for size in sizes)  # one per dataset
