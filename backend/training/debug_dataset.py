"""`--debug_dataset`: what training would see, shown without loading a model, then exit 0.

sd-scripts steps through the batches in an OpenCV window (on Windows; elsewhere it only logs, and never
ends while images come). Here the first epoch's batches are printed, in training order, each with its
optimizer step (token warm-up depends on it), bucket, and per image its path, sizes, crop, flip, loss weight
and caption exactly as the batch carries it; the images as trained (resized, cropped, flipped, colour
augmented) and alpha masks are saved as PNG files into a new folder in --output_dir, named in the output.
The held-out validation images follow, as sd-scripts shows its validation dataset after the training one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from backend.data.dataset import Batch, DatasetGroup, TrainDataset
from backend.data.specs import DatasetSpec
from backend.messages import msg
from backend.training.option_slice import OptionSlice
from backend.training.run_length import LengthConfig, total_steps


@dataclass(frozen=True)
class DebugDatasetConfig(OptionSlice):
    output_dir: str
    seed: int | None  # None: drawn, and printed so the order can be seen again with --seed


def new_folder(output_dir: str | Path) -> Path:
    """A folder of its own for this look at the dataset: nothing of the user's (or an earlier look) is written over."""
    base = Path(output_dir) / f"debug_dataset_{time.strftime('%Y%m%d-%H%M%S')}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}_{n}")
    folder.mkdir(parents=True)
    return folder


def _save_pixels(image: torch.Tensor, path: Path) -> None:
    """A [3, H, W] tensor in [-1, 1] (or an [H, W] mask in [0, 1]) as an 8-bit PNG."""
    if image.ndim == 3:
        array = ((image.float().permute(1, 2, 0) + 1.0) * 127.5).round().clamp(0, 255)
    else:
        array = (image.float() * 255.0).round().clamp(0, 255)
    Image.fromarray(array.to(torch.uint8).numpy().astype(np.uint8)).save(path)


def _show_batch(group: DatasetGroup, epoch: int, index: int, folder: Path, out: Callable[[str], None],
                prefix: str) -> int:
    batch: Batch = group[(epoch, index)]
    width, height = batch["bucket_reso"]
    step = group.caption_step(epoch, index)
    out(msg("debug_dataset.batch", "batch {number}/{count} (step {step}), bucket {width}x{height}:",
            number=index + 1, count=len(group), step=step.step + 1 if step else "-", width=width, height=height))
    for j, path in enumerate(batch["image_paths"]):
        orig_h, orig_w = batch["original_sizes_hw"][j].tolist()
        top, left = batch["crop_top_lefts"][j].tolist()
        out("  " + msg(
            "debug_dataset.sample",
            '{path}: original {orig_w}x{orig_h}, crop top-left ({top}, {left}), flipped {flipped}, loss weight '
            '{weight}, caption "{caption}"',
            path=path, orig_w=orig_w, orig_h=orig_h, top=top, left=left, flipped=bool(batch["flipped"][j]),
            weight=f"{float(batch['loss_weights'][j]):g}", caption=batch["captions"][j],
        ))  # fmt: skip
        stem = f"{prefix}{index + 1:05d}_{j}_{Path(path).stem}"
        if batch["images"] is not None:
            _save_pixels(batch["images"][j], folder / f"{stem}.png")
        if batch["alpha_masks"] is not None:
            _save_pixels(batch["alpha_masks"][j], folder / f"{stem}_mask.png")
    return len(batch["image_paths"])


def show_dataset(
    config: DebugDatasetConfig, length: LengthConfig, specs: list[DatasetSpec], out: Callable[[str], None] = print
) -> int:
    """Print the first epoch's batches and save their images; the exit code (0)."""
    seed = config.seed if config.seed is not None else random.randint(0, 2**31 - 1)
    group = DatasetGroup([TrainDataset(spec, seed=seed) for spec in specs], seed=seed)
    steps, epochs = total_steps(length, len(group))
    group.set_steps(length.gradient_accumulation_steps, steps)
    folder = new_folder(config.output_dir)
    out(msg("debug_dataset.start", "--debug_dataset: epoch 1 of {epochs} ({batches} batches, {steps} steps in the "
            "run), seed {seed}; nothing is trained", epochs=epochs, batches=len(group), steps=steps, seed=seed))
    images = sum(_show_batch(group, 1, index, folder, out, "") for index in range(len(group)))
    held_out = group.validation_group()
    if held_out is not None:
        out(msg("debug_dataset.validation", "validation images (held out by validation_split):"))
        images += sum(_show_batch(held_out, 1, index, folder, out, "validation_") for index in range(len(held_out)))
    out(msg("debug_dataset.saved", "{count} image(s) as trained saved in {folder}", count=images, folder=folder))
    return 0
