"""Which process trains which samples: global batches, each split among the processes.

An epoch's batches are planned at the global batch size (`--train_batch_size` x processes, see
`TrainDataset`), so the plan and every sample's random draws are the same whether one process or N
train it. Every process steps through every global batch and takes its share (`rank_share`): N
processes with batch b train exactly the batches one process with batch N x b would.

A global batch shorter than N x b (a bucket's last one) is split as evenly as it goes. Each process
weighs its loss by `share.weight` = (its samples x N) / (the batch's samples), so the mean of the
processes' losses and gradients is the mean over the whole batch, as on one process. A process left
without a sample (fewer samples than processes) runs the batch's first sample with weight 0: every
process must run a forward and backward pass in every step (DeepSpeed/FSDP collectives, and the
gradient all_reduce), and this one adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Share:
    """A process's part of one global batch: positions [start, stop) in it, and its loss weight."""

    start: int
    stop: int
    weight: float

    @property
    def positions(self) -> range:
        # An empty share runs the batch's first sample (weight 0): see the module docstring.
        return range(self.start, self.stop) if self.stop > self.start else range(0, 1)


def rank_share(size: int, rank: int, processes: int) -> Share:
    """Process `rank`'s part of a global batch of `size` samples: contiguous, sizes differ by one at most."""
    start, stop = rank * size // processes, (rank + 1) * size // processes
    return Share(start, stop, (stop - start) * processes / size)
