"""DatasetSpecs from the flat training options (the folder convention or --in_json).

`specs_from_args` covers runs without `--dataset_config`; `specs_from_dataset_config` adapts a
validated dataset config. Missing keys take the defaults declared in backend/options, so the two
can never disagree.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

from backend.data.discovery import subsets_from_folders
from backend.data.errors import DatasetError
from backend.data.specs import DatasetSpec, SubsetSpec
from backend.messages import msg
from backend.options.dataset_config import DatasetGroupConfig
from backend.options.schema import all_options

logger = logging.getLogger(__name__)

# Options that become SubsetSpec fields under the same name.
SUBSET_OPTIONS = (
    "caption_extension",
    "shuffle_caption",
    "caption_separator",
    "keep_tokens",
    "keep_tokens_separator",
    "secondary_separator",
    "enable_wildcard",
    "caption_prefix",
    "caption_suffix",
    "caption_dropout_rate",
    "caption_dropout_every_n_epochs",
    "caption_tag_dropout_rate",
    "flip_aug",
    "color_aug",
    "random_crop",
    "alpha_mask",
    "token_warmup_min",
    "token_warmup_step",
    "face_crop_aug_range",
    "cache_info",
)


def specs_from_args(
    args: argparse.Namespace | Mapping[str, Any],
    default_resolution: str | int | None = None,
    warn: Callable[[str], None] = logger.warning,
) -> list[DatasetSpec]:
    """One DatasetSpec from --train_data_dir/--reg_data_dir folders, or from --in_json.

    `default_resolution` is the model family's native size, used when --resolution is not set.
    """
    values = dict(vars(args) if isinstance(args, argparse.Namespace) else args)
    defaults = {name: option.default for name, option in all_options().items()}

    def get(name: str) -> Any:
        value = values.get(name)
        return defaults.get(name) if value is None else value

    if values.get("caption_extention") is not None:  # sd-scripts' misspelled legacy flag wins, as there
        values["caption_extension"] = values["caption_extention"]
    settings = {name: get(name) for name in SUBSET_OPTIONS}

    if get("in_json"):
        subsets = [
            SubsetSpec(
                image_dir=get("train_data_dir"),
                metadata_file=get("in_json"),
                num_repeats=int(get("dataset_repeats")),
                **settings,
            )
        ]
    elif get("train_data_dir"):
        subsets = subsets_from_folders(get("train_data_dir"), get("reg_data_dir"), warn=warn,
                                       conditioning_data_dir=get("conditioning_data_dir"), **settings)
    else:
        raise DatasetError(msg(
            "dataset.no_training_data",
            "no training data: set --train_data_dir (the parent of folders named like '10_name'), --in_json, or "
            "--dataset_config",
        ))  # fmt: skip
    return [
        DatasetSpec(
            subsets=tuple(subsets),
            resolution=get("resolution") or default_resolution,
            batch_size=int(get("train_batch_size")),
            enable_bucket=bool(get("enable_bucket")),
            min_bucket_reso=int(get("min_bucket_reso")),
            max_bucket_reso=int(get("max_bucket_reso")),
            bucket_reso_steps=int(get("bucket_reso_steps")),
            bucket_no_upscale=bool(get("bucket_no_upscale")),
            prior_loss_weight=float(get("prior_loss_weight")),
            resize_interpolation=get("resize_interpolation"),
            validation_split=float(get("validation_split")),
            validation_seed=get("validation_seed"),
            skip_unreadable_images=bool(get("skip_unreadable_images")),
        )
    ]


def specs_from_dataset_config(
    config: DatasetGroupConfig,
    args: argparse.Namespace | Mapping[str, Any],
    default_resolution: str | int | None = None,
) -> list[DatasetSpec]:
    """DatasetSpecs from a validated `--dataset_config`, falling back to the command-line options
    (then their defaults) for keys the file leaves out, as sd-scripts does."""
    values = dict(vars(args) if isinstance(args, argparse.Namespace) else args)
    defaults = {name: option.default for name, option in all_options().items()}

    def fallback(name: str) -> Any:
        value = values.get(name)
        return defaults.get(name) if value is None else value

    subset_fields = {f.name for f in fields(SubsetSpec)}
    dataset_fields = {f.name for f in fields(DatasetSpec)} - {"subsets"}
    specs: list[DatasetSpec] = []
    unsupported: list[str] = []
    for d_index, dataset in enumerate(config.datasets):
        subsets = []
        for s_index, subset in enumerate(dataset.subsets):
            where = f"{config.path}: datasets[{d_index}].subsets[{s_index}]"
            ignored = sorted(k for k in subset.params if k not in subset_fields)
            unsupported += [f"{where}: {key!r}" for key in ignored]
            settings = {name: fallback(name) for name in SUBSET_OPTIONS}
            # sd-scripts fills a num_repeats the file leaves out from --dataset_repeats (its argparse name).
            settings["num_repeats"] = int(fallback("dataset_repeats"))
            settings.update({k: v for k, v in subset.params.items() if k in subset_fields})
            if "caption_extension" not in subset.params and values.get("caption_extention") is not None:
                settings["caption_extension"] = values["caption_extention"]
            subsets.append(SubsetSpec(**settings))
        params = {k: v for k, v in dataset.params.items() if k in dataset_fields or k == "batch_size"}
        ignored = sorted(k for k in dataset.params if k not in dataset_fields)
        unsupported += [f"{config.path}: datasets[{d_index}]: {key!r}" for key in ignored]
        specs.append(
            DatasetSpec(
                subsets=tuple(subsets),
                resolution=params.get("resolution") or fallback("resolution") or default_resolution,
                batch_size=int(params.get("batch_size", fallback("train_batch_size"))),
                enable_bucket=bool(params.get("enable_bucket", fallback("enable_bucket"))),
                min_bucket_reso=int(params.get("min_bucket_reso", fallback("min_bucket_reso"))),
                max_bucket_reso=int(params.get("max_bucket_reso", fallback("max_bucket_reso"))),
                bucket_reso_steps=int(params.get("bucket_reso_steps", fallback("bucket_reso_steps"))),
                bucket_no_upscale=bool(params.get("bucket_no_upscale", fallback("bucket_no_upscale"))),
                prior_loss_weight=float(fallback("prior_loss_weight")),
                resize_interpolation=params.get("resize_interpolation", fallback("resize_interpolation")),
                validation_split=float(params.get("validation_split", fallback("validation_split"))),
                validation_seed=params.get("validation_seed", fallback("validation_seed")),
                # A run-wide choice, from the command line or --config_file (a dataset config stays sd-scripts').
                skip_unreadable_images=bool(fallback("skip_unreadable_images")),
            )
        )
    if unsupported:
        raise DatasetError(msg(
            "dataset.config.not_implemented",
            "the dataset config uses keys sd-scripts knows but this trainer does not implement yet; remove them:\n  "
            "{keys}",
            keys="\n  ".join(unsupported),
        ))  # fmt: skip
    return specs
