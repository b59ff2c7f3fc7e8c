"""Which images are held out of training for the validation loss (sd-scripts' `validation_split`).

Each subset's training images (never regularization images, as in sd-scripts) are sorted, shuffled
by a generator seeded from (validation seed, subset), and the first round(images x split) of them
are held out. The choice depends only on the seed and the files, so a resumed run, a preflight and
the run itself hold out the same images. Unlike sd-scripts, whose training and validation slices
can overlap by one image after rounding, every image is either trained on or validated, never both.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from backend.data.errors import DatasetError
from backend.data.scan import ImageRecord
from backend.messages import msg


def validation_count(num_images: int, split: float) -> int:
    """How many of a subset's `num_images` are held out: the nearest whole number, halves rounded up."""
    return math.floor(num_images * split + 0.5)


def held_out_paths(records: Sequence[ImageRecord], split: float, seed: int) -> frozenset[str]:
    """The paths of the images held out for validation among `records` (a dataset scan's records)."""
    if split <= 0:
        return frozenset()
    by_subset: dict[int, list[str]] = {}
    for record in records:
        if not record.is_reg:
            by_subset.setdefault(record.subset_index, []).append(record.path)
    held: list[str] = []
    for subset_index, paths in sorted(by_subset.items()):
        paths = sorted(paths)
        random.Random(f"{seed}/validation/{subset_index}").shuffle(paths)
        held += paths[: validation_count(len(paths), split)]
    return frozenset(held)


def check_held_out(split: float, num_images: int, num_held_out: int) -> None:
    """A split must leave images on both sides: errors that say which way it failed and what to change."""
    if split <= 0:
        return
    if num_held_out == 0:
        raise DatasetError(msg(
            "dataset.validation.none_held_out",
            "validation_split {split} holds out no image: each folder holds out round(images x {split}), which is 0 "
            "for every folder of this dataset ({count} training images); raise validation_split or add images",
            split=f"{split:g}", count=num_images,
        ))  # fmt: skip
    if num_held_out >= num_images:
        raise DatasetError(msg(
            "dataset.validation.all_held_out",
            "validation_split {split} holds out all {count} training images of the dataset, leaving none to train "
            "on; lower validation_split or add images",
            split=f"{split:g}", count=num_images,
        ))  # fmt: skip
