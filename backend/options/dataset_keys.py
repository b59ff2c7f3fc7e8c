"""The keys of a `--dataset_config` file: type, where each may be written, which subsets use it.

Mirrors sd-scripts' `ConfigSanitizer` (library/config_util.py) so existing dataset configs keep
working. Levels:

- "subset" keys belong to `[[datasets.subsets]]`; most may also be written once in a
  `[[datasets]]` table or in `[general]` and then apply to every subset below it;
- keys whose levels lack "subset" (batch_size, resolution, buckets...) describe a whole dataset:
  `[[datasets]]` or `[general]`.

Subset kinds: "dreambooth" (image folder + caption files), "fine_tuning" (metadata JSON) and
"controlnet" (image folder + conditioning images).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.messages import msg

DREAMBOOTH, FINE_TUNING, CONTROLNET = "dreambooth", "fine_tuning", "controlnet"
SUBSET_KINDS = (DREAMBOOTH, FINE_TUNING, CONTROLNET)

SUBSET, DATASET, GENERAL = "subset", "dataset", "general"
ANY_LEVEL = (SUBSET, DATASET, GENERAL)  # sd-scripts: "subset ascendable"
DATASET_LEVEL = (DATASET, GENERAL)  # sd-scripts: "dataset ascendable"
SUBSET_ONLY = (SUBSET,)  # sd-scripts: "subset distinct"

# sd-scripts checks a dataset config's value at run time (utils.validate_interpolation_fn), where "box"
# is allowed too; its --resize_interpolation flag leaves box out.
RESIZE_INTERPOLATIONS = ("lanczos", "nearest", "bilinear", "linear", "bicubic", "cubic", "area", "box")


@dataclass(frozen=True)
class DatasetKey:
    name: str
    kind: str  # a kind understood by backend.options.values
    levels: tuple[str, ...]
    help: str
    subset_kinds: tuple[str, ...] = SUBSET_KINDS
    required_for: tuple[str, ...] = ()  # subset kinds that cannot do without it
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    # Why the range/choices refuse what sd-scripts' dataset schema takes (it has no ranges); see
    # Option.range_reason and backend/options/sd_scripts_types.py.
    range_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "levels": list(self.levels),
            "help": self.help,
            "subset_kinds": list(self.subset_kinds),
            "required_for": list(self.required_for),
            "choices": list(self.choices) if self.choices is not None else None,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "range_reason": getattr(self.range_reason, "english", self.range_reason),  # data: English
        }


# Why a range below refuses what sd-scripts' dataset schema takes (it has types only).
_WHY = {
    "batch_size": msg(
        "options.range_reason.train_batch_size",
        "sd-scripts splits each bucket into batches of this size (range() fails on a step of 0; a "
        "negative size gives no batch)"
    ),
    "bucket_reso_steps": msg(
        "dataset.range_reason.bucket_reso_steps",
        "when bucketing, sd-scripts refuses a step that 64 (SD) or 32 (SDXL) does not divide and "
        "fails on 0 with a division by zero"
    ),
    "min_bucket_reso": msg(
        "dataset.range_reason.min_bucket_reso",
        "a bucket side of 0 pixels is no bucket (sd-scripts would build buckets of zero width)"
    ),
    "max_bucket_reso": msg(
        "dataset.range_reason.max_bucket_reso",
        "a bucket side of 0 pixels is no bucket; sd-scripts then fails its check that max_bucket_reso "
        "covers the resolution"
    ),
    "caption_dropout_every_n_epochs": msg(
        "options.range_reason.caption_dropout_every_n_epochs",
        "a count of epochs, 0 = off; sd-scripts tests `> 0`, so a negative count is silently off too, "
        "never what a minus sign meant"
    ),
    "caption_dropout_rate": msg(
        "options.range_reason.caption_dropout_rate",
        "a probability: sd-scripts compares random() < rate, so above 1 every caption is dropped and "
        "below 0 none is, silently"
    ),
    "caption_tag_dropout_rate": msg(
        "options.range_reason.caption_tag_dropout_rate",
        "a probability: sd-scripts compares random() >= rate per tag, so above 1 every tag is dropped and"
        " below 0 none is, silently"
    ),
    "keep_tokens": msg(
        "options.range_reason.keep_tokens",
        "a count of tags, 0 = none kept; sd-scripts tests `> 0`, so a negative count silently keeps none,"
        " never what a minus sign meant"
    ),
    "resolution": msg("dataset.range_reason.resolution", "an image side needs at least 1 pixel"),
    "validation_split": msg(
        "dataset.range_reason.validation_split",
        "a fraction of each subset's images: below 0 or above 1 it is no share of them",
    ),
}

_K = DatasetKey
_KEYS = (
    # Subset keys that may also be set for a whole dataset or in [general].
    _K("num_repeats", "int", ANY_LEVEL, "How many times each image is seen per epoch. Default 1; 0 switches the subset off.", ),
    _K("shuffle_caption", "bool", ANY_LEVEL, "Shuffle the comma-separated caption tags each step. Default false."),
    _K("caption_separator", "str", ANY_LEVEL, 'Separator between caption tags. Default ",".'),
    _K("keep_tokens", "int", ANY_LEVEL, "Leading tags kept in place when shuffling. Default 0.", minimum=0, range_reason=_WHY["keep_tokens"]),
    _K("keep_tokens_separator", "str", ANY_LEVEL, 'Tags before this separator stay in place (e.g. "|||").'),
    _K("secondary_separator", "str", ANY_LEVEL, 'Joins tags that shuffle as one (e.g. ";;;").'),
    _K("enable_wildcard", "bool", ANY_LEVEL, "Pick one {a|b} alternative and one caption line at random."),
    _K("caption_prefix", "str", ANY_LEVEL, "Text added before every caption."),
    _K("caption_suffix", "str", ANY_LEVEL, "Text added after every caption."),
    _K("color_aug", "bool", ANY_LEVEL, "Random hue augmentation (disables latent caching). Default false."),
    _K("flip_aug", "bool", ANY_LEVEL, "Random horizontal flip. Default false."),
    _K("face_crop_aug_range", "float_pair", ANY_LEVEL, "Face-centred crop scale range, e.g. [2.0, 4.0]."),
    _K("random_crop", "bool", ANY_LEVEL, "Random crop instead of centre crop. Default false."),
    _K("token_warmup_min", "int", ANY_LEVEL, "Tags used at the start of token warm-up. Default 1."),
    _K("token_warmup_step", "int_or_float", ANY_LEVEL, "Steps (or ratio of steps if < 1) to reach all tags."),
    _K("custom_attributes", "table", ANY_LEVEL, "Free-form attributes passed to the dataset (a table)."),
    _K("resize_interpolation", "str", ANY_LEVEL, "Resampling filter. Default: area when shrinking, lanczos when enlarging.", choices=RESIZE_INTERPOLATIONS),
    _K("caption_dropout_rate", "float", ANY_LEVEL, "Chance of an empty caption per image. Default 0.", minimum=0, maximum=1, range_reason=_WHY["caption_dropout_rate"]),
    _K("caption_dropout_every_n_epochs", "int", ANY_LEVEL, "Drop all captions every N epochs. Default 0 (off).", minimum=0, range_reason=_WHY["caption_dropout_every_n_epochs"]),
    _K("caption_tag_dropout_rate", "float", ANY_LEVEL, "Chance of dropping each tag. Default 0.", minimum=0, maximum=1, range_reason=_WHY["caption_tag_dropout_rate"]),
    _K("caption_extension", "str", ANY_LEVEL, 'Caption file extension. Default ".caption"; most datasets use ".txt".', subset_kinds=(DREAMBOOTH, CONTROLNET)),
    _K("class_tokens", "str", ANY_LEVEL, "Caption used for images without a caption file.", subset_kinds=(DREAMBOOTH,)),
    _K("cache_info", "bool", ANY_LEVEL, "Cache image sizes and captions in a metadata file. Default false.", subset_kinds=(DREAMBOOTH, CONTROLNET)),
    # Keys of one subset only.
    _K("image_dir", "path", SUBSET_ONLY, "Folder of training images.", required_for=(DREAMBOOTH, CONTROLNET)),
    _K("is_reg", "bool", SUBSET_ONLY, "The images are regularization images. Default false.", subset_kinds=(DREAMBOOTH,)),
    _K("alpha_mask", "bool", SUBSET_ONLY, "Use the image alpha channel as loss mask. Default false.", subset_kinds=(DREAMBOOTH, FINE_TUNING)),
    _K("metadata_file", "path", SUBSET_ONLY, "Metadata JSON with captions, written by the captioning/merge tools.", subset_kinds=(FINE_TUNING,), required_for=(FINE_TUNING,)),
    _K("conditioning_data_dir", "path", SUBSET_ONLY, "Folder of conditioning images with the same names as image_dir.", subset_kinds=(CONTROLNET,), required_for=(CONTROLNET,)),
    # Keys of a whole dataset.
    _K("resolution", "resolution", DATASET_LEVEL, "Training resolution: 512 or [768, 512] (width, height).", minimum=1, range_reason=_WHY["resolution"]),
    _K("batch_size", "int", DATASET_LEVEL, "Images per step for this dataset. Default 1.", minimum=1, range_reason=_WHY["batch_size"]),
    _K("enable_bucket", "bool", DATASET_LEVEL, "Group images by aspect ratio instead of cropping. Default false."),
    _K("min_bucket_reso", "int", DATASET_LEVEL, "Smallest bucket side in pixels. Default 256.", minimum=1, range_reason=_WHY["min_bucket_reso"]),
    _K("max_bucket_reso", "int", DATASET_LEVEL, "Largest bucket side in pixels. Default 1024.", minimum=1, range_reason=_WHY["max_bucket_reso"]),
    _K("bucket_reso_steps", "int", DATASET_LEVEL, "Bucket side granularity in pixels. Default 64.", minimum=1, range_reason=_WHY["bucket_reso_steps"]),
    _K("bucket_no_upscale", "bool", DATASET_LEVEL, "Never upscale small images into larger buckets. Default false."),
    _K("network_multiplier", "float", DATASET_LEVEL, "LoRA strength while training on this dataset. Default 1.0."),
    _K("validation_split", "float", DATASET_LEVEL, "Fraction of images held out for validation. Default 0.", minimum=0, maximum=1, range_reason=_WHY["validation_split"]),
    _K("validation_seed", "int", DATASET_LEVEL, "Seed of the validation split. Default: the training seed."),
)  # fmt: skip

DATASET_KEYS: dict[str, DatasetKey] = {key.name: key for key in _KEYS}

# Command-line names that users carry into dataset configs, and the key to write instead.
RENAMED = {
    "train_batch_size": "batch_size",
    "dataset_repeats": "num_repeats",
    "train_data_dir": "image_dir",
    "reg_data_dir": "image_dir",  # with is_reg = true
    "in_json": "metadata_file",
    "caption_extention": "caption_extension",
}
