"""Typed descriptions of what to train on: subsets (one folder or metadata file each) and datasets.

`SubsetSpec` carries the per-folder settings (repeats, class tokens, caption processing,
augmentation); `DatasetSpec` the settings shared by its subsets (resolution, batch size,
buckets). Both are frozen and picklable so DataLoader workers can receive them. The folder
convention and `--dataset_config` are two ways of producing these same objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from backend.data.errors import DatasetError
from backend.messages import msg

# sd-scripts' --resize_interpolation choices, plus "box" that its dataset configs may name; None means
# area when shrinking, lanczos when enlarging.
INTERPOLATIONS = ("lanczos", "nearest", "bilinear", "linear", "bicubic", "cubic", "area", "box")


@dataclass(frozen=True)
class SubsetSpec:
    image_dir: str | None
    num_repeats: int = 1
    class_tokens: str | None = None
    caption_extension: str = ".caption"
    is_reg: bool = False
    # Fine-tuning subsets: captions/tags come from this JSON (or JSONL) instead of caption files.
    metadata_file: str | None = None
    shuffle_caption: bool = False
    caption_separator: str = ","
    keep_tokens: int = 0
    keep_tokens_separator: str = ""
    secondary_separator: str | None = None
    enable_wildcard: bool = False
    caption_prefix: str | None = None
    caption_suffix: str | None = None
    caption_dropout_rate: float = 0.0
    caption_dropout_every_n_epochs: int = 0
    caption_tag_dropout_rate: float = 0.0
    flip_aug: bool = False
    color_aug: bool = False
    random_crop: bool = False
    alpha_mask: bool = False
    resize_interpolation: str | None = None
    # Loss masks of this subset's images, same file names (sd-scripts' ControlNet subsets; backend/data/masks.py).
    conditioning_data_dir: str | None = None
    # Token warm-up (captions.warmup_tag_count): tags used at step 0, and the step (or share of the run) with all.
    token_warmup_min: int = 1
    token_warmup_step: float = 0.0
    # (low, high) face sizes for images named '<name>_<cx>_<cy>_<w>_<h>' (face_crop.py); the flag's "low,high"
    # string or the dataset config's [low, high] list is accepted and kept as a tuple.
    face_crop_aug_range: tuple[float, float] | None = None
    # Image folders: their image sizes kept in metadata_cache.json (info_cache.py).
    cache_info: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "face_crop_aug_range", parse_face_crop_range(self.face_crop_aug_range))
        if self.image_dir is None and self.metadata_file is None:
            raise DatasetError(msg(
                "dataset.subset.no_source",
                "a subset needs image_dir (a folder of images) or metadata_file (fine-tuning JSON)",
            ))  # fmt: skip
        if self.conditioning_data_dir is not None and self.metadata_file is not None:
            raise DatasetError(msg(
                "dataset.subset.masks_with_metadata",
                "conditioning_data_dir (loss masks) goes with an image folder, not with a metadata file ({file}); "
                "as in sd-scripts, a fine-tuning subset can use alpha_mask instead",
                file=self.metadata_file,
            ))  # fmt: skip
        if self.caption_extension and not self.caption_extension.startswith("."):
            # sd-scripts appends the extension verbatim; "txt" would look for "img.pngtxt"-like names.
            object.__setattr__(self, "caption_extension", "." + self.caption_extension)
        for name in ("caption_dropout_rate", "caption_tag_dropout_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise DatasetError(msg(
                    "dataset.subset.not_a_probability", "{name} must be between 0 and 1, got {value}",
                    name=name, value=value,
                ))  # fmt: skip
        if self.keep_tokens < 0 or self.caption_dropout_every_n_epochs < 0:
            raise DatasetError(msg(
                "dataset.subset.negative_count", "keep_tokens and caption_dropout_every_n_epochs must be 0 or more"
            ))  # fmt: skip
        _check_interpolation(self.resize_interpolation)

    @property
    def name(self) -> str:
        """Folder (or metadata file) name used in metadata such as ss_tag_frequency."""
        source = self.image_dir if self.metadata_file is None else self.metadata_file
        return Path(source or "").name


@dataclass(frozen=True)
class DatasetSpec:
    subsets: tuple[SubsetSpec, ...]
    resolution: tuple[int, int]  # (width, height)
    batch_size: int = 1
    enable_bucket: bool = False
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    bucket_no_upscale: bool = False
    prior_loss_weight: float = 1.0
    resize_interpolation: str | None = None
    # Fraction of each subset's training images held out for the validation loss (backend/data/split.py).
    validation_split: float = 0.0
    validation_seed: int | None = None  # None: the training seed
    # --skip_unreadable_images: train without image files that cannot be read instead of stopping.
    skip_unreadable_images: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "subsets", tuple(self.subsets))
        object.__setattr__(self, "resolution", parse_resolution(self.resolution))
        if self.batch_size < 1:
            raise DatasetError(msg(
                "dataset.spec.batch_size", "batch size must be 1 or more, got {value}", value=self.batch_size
            ))  # fmt: skip
        if self.bucket_reso_steps < 1:
            raise DatasetError(msg(
                "dataset.spec.bucket_reso_steps", "bucket_reso_steps must be 1 or more, got {value}",
                value=self.bucket_reso_steps,
            ))  # fmt: skip
        if not 0.0 <= self.validation_split < 1.0:
            raise DatasetError(msg(
                "dataset.spec.validation_split",
                "validation_split must be at least 0 and less than 1 (the fraction of each folder's images held out "
                "for the validation loss, e.g. 0.1), got {value}",
                value=self.validation_split,
            ))  # fmt: skip
        _check_interpolation(self.resize_interpolation)


def parse_face_crop_range(value: object) -> tuple[float, float] | None:
    """'2.0,4.0' (the flag) or [2.0, 4.0] (a dataset config) -> (2.0, 4.0); None stays None. sd-scripts asks
    for two numbers, low <= high; both must be above 0, since the face is scaled by 1/low and 1/high."""
    if value is None or value == "":
        return None
    parts = value.split(",") if isinstance(value, str) else value
    try:
        numbers = tuple(float(str(p).strip()) for p in parts)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != 2 or not 0 < numbers[0] <= numbers[1]:
        raise DatasetError(msg(
            "dataset.subset.face_crop_aug_range",
            "face_crop_aug_range must be two numbers 'low,high' with 0 < low <= high (e.g. 2.0,4.0: the face "
            "becomes a half to a quarter of the resolution's short side), got {value}",
            value=repr(value),
        ))  # fmt: skip
    return numbers[0], numbers[1]


def _check_interpolation(value: str | None) -> None:
    if value is not None and value not in INTERPOLATIONS:
        raise DatasetError(msg(
            "dataset.spec.resize_interpolation", "resize_interpolation {value} is not one of {choices}",
            value=repr(value), choices=", ".join(INTERPOLATIONS),
        ))  # fmt: skip


def parse_resolution(value: object) -> tuple[int, int]:
    """'512' -> (512, 512); '768,512' -> (768, 512) as width,height; also ints and [w, h] lists."""
    if value is None or value == "":
        raise DatasetError(msg(
            "dataset.resolution.missing",
            "no resolution given: set --resolution, e.g. 512 for SD 1.x, 768 for SD 2.x v, 1024 for SDXL",
        ))  # fmt: skip
    parts: Sequence[object]
    if isinstance(value, str):
        parts = [p for p in value.replace("x", ",").split(",") if p.strip()]
    elif isinstance(value, int):
        parts = [value]
    elif isinstance(value, Sequence):
        parts = list(value)
    else:
        raise DatasetError(msg("dataset.resolution.form", "resolution must be 'N' or 'W,H', got {value}", value=repr(value)))
    try:
        numbers = [int(str(p).strip()) for p in parts]
    except ValueError:
        raise DatasetError(msg(
            "dataset.resolution.not_whole", "resolution must be 'N' or 'W,H' with whole numbers, got {value}",
            value=repr(value),
        )) from None  # fmt: skip
    if len(numbers) == 1:
        numbers = numbers * 2
    if len(numbers) != 2 or min(numbers) < 8:
        raise DatasetError(msg(
            "dataset.resolution.too_small", "resolution must be 'N' or 'W,H' with sides of at least 8 pixels, got {value}",
            value=repr(value),
        ))  # fmt: skip
    return numbers[0], numbers[1]


# Subset settings under which an image's caption differs between samples or epochs.
VARYING_CAPTION_SETTINGS = (
    "shuffle_caption", "enable_wildcard", "caption_dropout_rate", "caption_dropout_every_n_epochs",
    "caption_tag_dropout_rate", "token_warmup_step",
)


def varying_caption_settings(subsets: Iterable[SubsetSpec]) -> list[tuple[SubsetSpec, str]]:
    """(subset, setting) for every setting in VARYING_CAPTION_SETTINGS that a subset turns on."""
    return [(s, name) for s in subsets for name in VARYING_CAPTION_SETTINGS if getattr(s, name)]
