"""Training datasets: repeats, regularization balance, buckets, per-epoch batches, batch dicts.

Determinism: an epoch's batches are planned at the global batch size (batch size x processes) and
depend only on (seed, epoch); every random choice for one sample (caption shuffle/dropout, flip,
crop, colour) on (seed, epoch, dataset, global batch, position in it), and a batch carries each
sample's index in the epoch's global order (`sample_indices`), from which the loop draws its noise.
So a sample is drawn alike by whichever process trains it, and N processes with batch b see what
one process with batch N x b sees (shares.py splits each global batch among them). The DataLoader
asks for items by `(epoch, batch_index)` keys produced in the main process (`EpochSampler`), so
results are the same with 0, 2 or 8 workers, persistent or not, and `set_epoch` in the main process
reaches persistent workers (sd-scripts needs a shared-memory epoch counter for that).

Epochs count from 1, as in sd-scripts (caption_dropout_every_n_epochs=2 drops epochs 2, 4, ...).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from backend.data.buckets import BucketSelector, bucket_choice, cover_size
from backend.data.caption_templates import draw_template
from backend.data.captions import CaptionStep, process_caption
from backend.data.errors import DatasetError
from backend.data.face_crop import face_crop, face_in_name
from backend.data.images import (
    LoadedImage,
    color_aug,
    fit_mask,
    fit_to_bucket,
    load_image,
    load_mask,
    mask_to_tensor,
    to_tensor,
)
from backend.data.latent_files import CachedLatents, load_cache
from backend.data.scan import (
    DatasetScan,
    ImageProblem,
    ImageRecord,
    more_in_preflight,
    scan_dataset,
    skipped_images_message,
    split_problems,
)
from backend.data.shares import rank_share
from backend.data.specs import DatasetSpec, SubsetSpec, varying_caption_settings
from backend.data.split import check_held_out, held_out_paths
from backend.messages import msg

logger = logging.getLogger(__name__)

Batch = dict[str, Any]


def balance_reg_repeats(num_train: int, reg_repeats: Sequence[int]) -> list[int]:
    """sd-scripts' regularization balance: reg images are used in order with their own repeats,
    then cycled one extra repeat at a time, until their total reaches the repeat-weighted train
    count; images never reached get 0 (unused). No train images means no reg images."""
    result = [0] * len(reg_repeats)
    total = 0
    first_pass = True
    while total < num_train and reg_repeats:
        for i, repeats in enumerate(reg_repeats):
            added = repeats if first_pass else 1
            result[i] += added
            total += added
            if total >= num_train:
                break
        first_pass = False
    return result


def format_problems(problems: Sequence[ImageProblem], limit: int = 20) -> str:
    lines = [msg("dataset.unusable_files", "{count} file(s) in the dataset cannot be used:", count=len(problems))]
    lines += [f"  {p.path}: {p.problem} -> {p.fix}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append("  " + more_in_preflight(len(problems) - limit))
    return "\n".join(lines)


def _assign_buckets(
    records: list[ImageRecord], selector: BucketSelector, problems: list[ImageProblem]
) -> list[ImageRecord]:
    """Copies of `records` with their bucket (copies: reg balancing rewrites repeats, the scan stays as read)."""
    kept = []
    for record in records:
        try:
            # A bucket recorded by prepare_buckets_latents wins, as in sd-scripts' fine-tuning datasets,
            # so latents cached by that tool match the trainer's bucket and are reused.
            if record.metadata_bucket is not None:
                choice = bucket_choice(record.image_size, record.metadata_bucket)
            else:
                choice = selector.select(*record.image_size)
        except DatasetError as exc:
            fix = msg("dataset.bucket.fix_image_too_small", "remove the image or turn off bucket_no_upscale")
            problems.append(ImageProblem(record.path, str(exc), fix, "bucket"))
            continue
        kept.append(
            dataclasses.replace(
                record, bucket_reso=choice.reso, resized_size=choice.resized_size, ar_error=choice.ar_error
            )
        )
    return kept


class TrainDataset:
    """One dataset: its images with repeats, grouped into buckets and global batches of `batch_size`
    (`spec.batch_size` per process x `processes`), each split among the processes by `load_batch`.

    Images held out by `spec.validation_split` are left out; with `validation=True` the dataset holds
    only those (see `validation_dataset`).

    Unusable files raise one DatasetError listing all of them, except the images that cannot be read
    when `spec.skip_unreadable_images` is on: those are left out with one warning listing them. With
    `skip_bad_images` (reports: preflight, verify_dataset) every unusable file is left out silently and
    kept in `problems` for the caller to report.
    """

    def __init__(
        self,
        spec: DatasetSpec,
        seed: int = 0,
        scan: DatasetScan | None = None,
        skip_bad_images: bool = False,
        warn: Callable[[str], None] = logger.warning,
        validation: bool = False,
        processes: int = 1,
    ) -> None:
        self.spec = spec
        self.seed = seed
        self.processes = processes
        self.caption_templates: tuple[str, ...] = ()  # use_caption_templates
        self.batch_size = spec.batch_size * processes  # the global batch: what one optimizer step trains
        self.scan = scan if scan is not None else scan_dataset(spec, warn)
        problems = list(self.scan.problems)
        records = _assign_buckets(self.scan.records, BucketSelector(spec, warn), problems)
        if problems and not skip_bad_images:
            stopping, skipped = split_problems(problems, spec.skip_unreadable_images)
            if stopping:
                raise DatasetError(format_problems(problems))
            warn(skipped_images_message(skipped))
        self.problems = problems
        held_out = held_out_paths(self.scan.records, spec.validation_split, self.validation_seed)
        if validation:
            # Each held-out image once: repeats weight training, not the measurement (as sd-scripts).
            self.records = [dataclasses.replace(r, num_repeats=1) for r in records if r.path in held_out]
        else:
            check_held_out(spec.validation_split, sum(not r.is_reg for r in self.scan.records), len(held_out))
            self.records = self._apply_reg_balance([r for r in records if r.path not in held_out], warn)
        if not self.records:
            raise DatasetError(msg(
                "dataset.nothing_left", "no usable training images left in the dataset (see the warnings above)"
            ))  # fmt: skip
        self.num_train_images = sum(r.num_repeats for r in self.records if not r.is_reg)
        # Regularization images with their folders' repeats, before balancing; unusable ones not counted.
        self.num_reg_images = 0 if validation else sum(
            self.scan.subsets[r.subset_index].subset.num_repeats for r in records if r.is_reg
        )
        self.buckets: dict[tuple[int, int], list[int]] = {}
        for index, record in enumerate(self.records):
            self.buckets.setdefault(record.bucket_reso, []).extend([index] * record.num_repeats)
        self.buckets = dict(sorted(self.buckets.items()))
        self.latents: dict[int, CachedLatents] = {}  # record index -> in-memory latents (cache_latents)
        self.latent_files: dict[int, str] = {}  # record index -> npz path (cache_latents_to_disk)
        self._plan: tuple[int, list[tuple[tuple[int, int], list[int]]]] | None = None

    @property
    def subsets(self) -> list[SubsetSpec]:
        return [s.subset for s in self.scan.subsets]

    @property
    def validation_seed(self) -> int:
        """Seed of the held-out split: the dataset's validation_seed, else the training seed."""
        return self.spec.validation_seed if self.spec.validation_seed is not None else self.seed

    def validation_dataset(self) -> TrainDataset | None:
        """The images `spec.validation_split` holds out, once each, batched by the validation seed (None
        without a split). Built from this dataset's scan, so both sides agree on every image."""
        if self.spec.validation_split <= 0:
            return None
        return TrainDataset(self.spec, seed=self.validation_seed, scan=self.scan, skip_bad_images=True,
                            warn=logger.debug, validation=True)

    def _apply_reg_balance(self, records: list[ImageRecord], warn: Callable[[str], None]) -> list[ImageRecord]:
        train = [r for r in records if not r.is_reg]
        reg = [r for r in records if r.is_reg]
        if not reg:
            return train
        num_train = sum(r.num_repeats for r in train)
        num_reg = sum(r.num_repeats for r in reg)
        if num_reg > num_train:
            warn(msg(
                "dataset.reg.unused",
                "{reg} regularization images with repeats but {train} training images: some are unused",
                reg=num_reg, train=num_train,
            ))  # fmt: skip
        for record, repeats in zip(reg, balance_reg_repeats(num_train, [r.num_repeats for r in reg]), strict=True):
            record.num_repeats = repeats
        return train + [r for r in reg if r.num_repeats > 0]

    @property
    def latents_cached(self) -> bool:
        return bool(self.latents or self.latent_files)

    def __len__(self) -> int:
        return sum(math.ceil(len(items) / self.batch_size) for items in self.buckets.values())

    def batches(self, epoch: int) -> list[tuple[tuple[int, int], list[int]]]:
        """This epoch's global batches as (bucket, record indices), in training order."""
        if self._plan is None or self._plan[0] != epoch:
            rng = random.Random(f"{self.seed}/{epoch}/plan")
            plan = []
            for reso, items in self.buckets.items():
                items = list(items)
                rng.shuffle(items)
                size = self.batch_size
                plan += [(reso, items[i : i + size]) for i in range(0, len(items), size)]
            rng.shuffle(plan)
            self._plan = (epoch, plan)
        return self._plan[1]

    def load_batch(
        self, epoch: int, batch_index: int, salt: str = "", rank: int = 0, step: CaptionStep | None = None
    ) -> Batch:
        """Process `rank`'s share of a global batch (all of it with one process). Each sample's random
        choices depend on its position in the global batch, not on which process loads it. `step`: the
        batch's optimizer step, for token warm-up (None: whole captions)."""
        reso, indices = self.batches(epoch)[batch_index]
        share = rank_share(len(indices), rank, self.processes)
        samples = []
        for position in share.positions:
            rng = random.Random(f"{self.seed}/{epoch}/{salt}/{batch_index}/{position}")
            samples.append(self._load_sample(indices[position], epoch, rng, step))
        batch = _collate(samples, reso)
        batch["positions"] = list(share.positions)  # in the global batch
        batch["share_weight"] = share.weight
        return batch

    def _load_sample(self, index: int, epoch: int, rng: random.Random, step: CaptionStep | None) -> dict[str, Any]:
        record = self.records[index]
        subset = self.scan.subsets[record.subset_index].subset
        flipped = subset.flip_aug and rng.random() < 0.5
        cached = self.latents.get(index)
        if cached is None and index in self.latent_files:
            cached = load_cache(self.latent_files[index])
        if cached is not None:
            sample = self._from_latents(cached, record, subset, flipped)
        elif self.latents_cached:
            raise DatasetError(msg(
                "dataset.latents.not_cached", "no cached latents for {path}: run the latent cache step again",
                path=record.path,
            ))  # fmt: skip
        else:
            sample = self._from_image(record, subset, flipped, rng)
        sample["caption"] = process_caption(record.caption, subset, epoch, rng, step)
        if self.caption_templates:  # Textual Inversion's templates replace the captions (sd-scripts' order)
            sample["caption"] = draw_template(self.caption_templates, rng)
        sample["loss_weight"] = self.spec.prior_loss_weight if record.is_reg else 1.0
        sample["is_reg"] = record.is_reg
        sample["path"] = record.path
        sample["flipped"] = flipped
        return sample

    def _from_image(self, record: ImageRecord, subset: SubsetSpec, flipped: bool, rng: random.Random) -> dict[str, Any]:
        image = load_image(record.path, with_alpha=subset.alpha_mask)
        if record.mask_path is not None:
            image = LoadedImage(image.rgb, _mask_of_size(record, image.rgb.shape[1], image.rgb.shape[0]))
        height, width = image.rgb.shape[:2]
        # The header size can disagree with the decoded one (e.g. a late EXIF block): refit.
        resized = record.resized_size if (width, height) == record.image_size else cover_size((width, height), record.bucket_reso)
        interpolation = subset.resize_interpolation or self.spec.resize_interpolation
        face = face_in_name(record.path) if subset.face_crop_aug_range and not self.spec.enable_bucket else None
        if face is not None:  # sd-scripts crops around the face without buckets only
            assert subset.face_crop_aug_range is not None
            fitted, resized = face_crop(image, record.bucket_reso, face, subset.face_crop_aug_range, subset.random_crop,
                                        rng, interpolation)
        else:
            fitted = fit_to_bucket(image, record.bucket_reso, resized, subset.random_crop, rng, interpolation)
        rgb, alpha = fitted.rgb, fitted.alpha
        if subset.color_aug:
            rgb = color_aug(rgb, rng)
        left, top, right, _ = fitted.crop_ltrb
        if flipped:
            rgb = rgb[:, ::-1]
            alpha = None if alpha is None else alpha[:, ::-1]
            left = resized[0] - right  # the crop box seen from the mirrored side
        return {
            "image": to_tensor(rgb),
            "alpha_mask": None if alpha is None else mask_to_tensor(alpha),
            "original_size_hw": (height, width),
            "crop_top_left": (top, left),
        }

    def _from_latents(self, cached: CachedLatents, record: ImageRecord, subset: SubsetSpec,
                      flipped: bool) -> dict[str, Any]:
        left, top, right, _ = cached.crop_ltrb
        latents = cached.latents
        # The alpha mask is cached with the latents; a conditioning mask is read now and given the image's
        # recorded resize and crop, as sd-scripts reads it at every step (the cache files stay its own).
        alpha = cached.alpha_mask if subset.alpha_mask else None
        if record.mask_path is not None:
            interpolation = subset.resize_interpolation or self.spec.resize_interpolation
            mask = _mask_of_size(record, *record.image_size)
            alpha = mask_to_tensor(fit_mask(mask, record.resized_size, cached.crop_ltrb, interpolation))
        if flipped:
            if cached.latents_flipped is None:
                raise DatasetError(msg(
                    "dataset.latents.not_flipped",
                    "flip_aug is on but the latent cache has no flipped latents: rebuild the cache",
                ))  # fmt: skip
            latents = cached.latents_flipped
            alpha = None if alpha is None else torch.flip(alpha, [1])
            left = cached.resized_size[0] - right
        return {
            "latents": latents,
            "alpha_mask": alpha,
            "original_size_hw": (cached.original_size[1], cached.original_size[0]),
            "crop_top_left": (top, left),
        }


def _mask_of_size(record: ImageRecord, width: int, height: int) -> np.ndarray:
    """The record's mask (H, W) uint8, which must still have its image's size (checked when scanned)."""
    assert record.mask_path is not None
    mask = load_mask(record.mask_path)
    if mask.shape != (height, width):
        raise DatasetError(msg(
            "dataset.mask.changed", "the mask {mask} is {mask_w}x{mask_h} but its image {path} is {width}x{height}: "
            "save the mask at the image's size, then start the run again",
            mask=record.mask_path, mask_w=mask.shape[1], mask_h=mask.shape[0], path=record.path, width=width,
            height=height,
        ))  # fmt: skip
    return mask


def _collate(samples: list[dict[str, Any]], reso: tuple[int, int]) -> Batch:
    width, height = reso
    with_masks = any(s["alpha_mask"] is not None for s in samples)
    masks = None
    if with_masks:
        # Mixed subsets: samples without alpha_mask count fully.
        masks = torch.stack([s["alpha_mask"] if s["alpha_mask"] is not None else torch.ones(height, width) for s in samples])
    uses_latents = "latents" in samples[0]
    return {
        "images": None if uses_latents else torch.stack([s["image"] for s in samples]),
        "latents": torch.stack([s["latents"] for s in samples]) if uses_latents else None,
        "captions": [s["caption"] for s in samples],
        "loss_weights": torch.tensor([s["loss_weight"] for s in samples], dtype=torch.float32),
        "original_sizes_hw": torch.tensor([s["original_size_hw"] for s in samples], dtype=torch.long),
        "crop_top_lefts": torch.tensor([s["crop_top_left"] for s in samples], dtype=torch.long),
        "target_sizes_hw": torch.tensor([(height, width)] * len(samples), dtype=torch.long),
        "flipped": torch.tensor([s["flipped"] for s in samples], dtype=torch.bool),
        "is_reg": torch.tensor([s["is_reg"] for s in samples], dtype=torch.bool),
        "alpha_masks": masks,
        "image_paths": [s["path"] for s in samples],
        "bucket_reso": reso,
    }


class DatasetGroup(torch.utils.data.Dataset):
    """All datasets of a run as one map-style dataset of whole batches.

    Index with `(epoch, batch_index)` (what `EpochSampler` yields) or a plain int for the epoch set
    by `set_epoch`: process `rank`'s share of that global batch. Batches of different datasets are
    interleaved in a per-epoch shuffled order.
    """

    def __init__(self, datasets: Sequence[TrainDataset], seed: int = 0, rank: int = 0) -> None:
        if not datasets:
            raise DatasetError(msg("dataset.none", "no datasets to train on"))
        if not all(0 <= rank < d.processes for d in datasets):
            raise ValueError(f"rank {rank} is not one of the datasets' {datasets[0].processes} processes")
        self.datasets = list(datasets)
        self.seed = seed
        self.rank = rank
        self.epoch = 1
        # (gradient accumulation steps, the run's optimizer steps): a batch's step for token warm-up. None
        # (validation, reports): captions are whole.
        self.steps: tuple[int, int] | None = None
        # (epoch, [(dataset, batch)], [samples in the epoch before each batch])
        self._order: tuple[int, list[tuple[int, int]], list[int]] | None = None

    def use_caption_templates(self, captions: tuple[str, ...]) -> None:
        """Every sample's caption becomes one of `captions` (Textual Inversion's templates)."""
        for dataset in self.datasets:
            dataset.caption_templates = captions

    def set_epoch(self, epoch: int) -> None:
        """Call before iterating each epoch (epochs count from 1)."""
        self.epoch = epoch

    def set_steps(self, accumulation: int, total_steps: int) -> None:
        """The run's length, so each batch knows its optimizer step (token warm-up); set before the loader starts
        its workers, which take a copy of the group."""
        self.steps = (accumulation, total_steps)

    def caption_step(self, epoch: int, index: int) -> CaptionStep | None:
        """The optimizer step batch `index` of `epoch` trains in, as the loop counts them (run_length.py):
        every epoch has ceil(batches / accumulation) steps. None without `set_steps`."""
        if self.steps is None:
            return None
        accumulation, total = self.steps
        per_epoch = math.ceil(len(self) / accumulation)
        return CaptionStep((epoch - 1) * per_epoch + index // accumulation, total)

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)

    def order(self, epoch: int) -> list[tuple[int, int]]:
        """The epoch's global batches as (dataset, batch in it), in training order."""
        return self._epoch_order(epoch)[1]

    def _epoch_order(self, epoch: int) -> tuple[int, list[tuple[int, int]], list[int]]:
        if self._order is None or self._order[0] != epoch:
            order = [(d, b) for d, dataset in enumerate(self.datasets) for b in range(len(dataset))]
            if len(self.datasets) > 1:
                random.Random(f"{self.seed}/{epoch}/group").shuffle(order)
            sizes = [len(self.datasets[d].batches(epoch)[b][1]) for d, b in order]
            self._order = (epoch, order, [0, *itertools.accumulate(sizes)][:-1])
        return self._order

    def __getitem__(self, key: int | tuple[int, int]) -> Batch:
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        if not 0 <= index < len(self):
            raise IndexError(index)
        _, order, offsets = self._epoch_order(epoch)
        dataset_index, batch_index = order[index]
        dataset = self.datasets[dataset_index]
        batch = dataset.load_batch(epoch, batch_index, salt=str(dataset_index), rank=self.rank,
                                   step=self.caption_step(epoch, index))
        # Each sample's index in the epoch's global order: what its noise and timestep are drawn from.
        batch["sample_indices"] = [offsets[index] + position for position in batch.pop("positions")]
        return batch

    @property
    def num_train_images(self) -> int:
        return sum(d.num_train_images for d in self.datasets)

    @property
    def num_reg_images(self) -> int:
        return sum(d.num_reg_images for d in self.datasets)

    def validation_group(self) -> DatasetGroup | None:
        """The held-out images of every dataset with a validation_split, as a group of their own (None if none)."""
        parts = [v for v in (d.validation_dataset() for d in self.datasets) if v is not None]
        return DatasetGroup(parts, seed=parts[0].seed) if parts else None

    def caption_variation(self) -> list[str]:
        """'<subset>: <setting>' for every subset whose captions change between samples or epochs;
        text-encoder outputs can only be cached when this is empty (as sd-scripts requires)."""
        subsets = [s for d in self.datasets for s in d.subsets]
        return [f"{s.name}: {name}" for s, name in varying_caption_settings(subsets)]

    def fixed_captions(self) -> list[tuple[str, str]]:
        """(image path, caption exactly as batches carry it) for every image in use, with prefix, suffix
        and class tokens applied. Only defined when `caption_variation()` is empty."""
        varying = self.caption_variation()
        if varying:
            raise DatasetError(f"captions change between epochs ({', '.join(varying)}), so they have no fixed form")
        rng = random.Random(0)  # never drawn from: only the varying settings use randomness
        return [
            (record.path, process_caption(record.caption, dataset.subsets[record.subset_index], 1, rng))
            for dataset in self.datasets
            for record in dataset.records
        ]
