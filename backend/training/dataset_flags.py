"""Preflight for the dataset and caption flags that combine badly with others: latent caching against
per-sample crops, a face crop that buckets switch off, weighted captions against cached text-encoder outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backend.data.latent_cache import uncacheable_problem
from backend.data.specs import DatasetSpec
from backend.messages import msg
from backend.options.schema import LORA_COMMANDS
from backend.training.option_slice import OptionSlice


@dataclass(frozen=True)
class DatasetFlagsConfig(OptionSlice):
    cache_latents: bool
    cache_latents_to_disk: bool
    weighted_captions: bool = False  # the commands of families without caption weights do not take it
    cache_text_encoder_outputs: bool = False
    cache_text_encoder_outputs_to_disk: bool = False


def dataset_flag_problems(
    config: DatasetFlagsConfig, command: str, specs: Sequence[DatasetSpec]
) -> tuple[list[str], list[str]]:
    """(errors, warnings) of the run's dataset and caption flags together."""
    errors: list[str] = []
    warnings: list[str] = []
    if config.cache_latents or config.cache_latents_to_disk:
        problem = uncacheable_problem(specs)
        if problem:
            errors.append(problem)
    bucketed = sorted({s.name for spec in specs if spec.enable_bucket for s in spec.subsets if s.face_crop_aug_range})
    if bucketed:
        warnings.append(msg(
            "preflight.face_crop_with_buckets",
            "face_crop_aug_range does nothing with enable_bucket (subsets {subsets}): as in sd-scripts, images are "
            "cropped around their face only without buckets. Turn off enable_bucket to crop around faces",
            subsets=", ".join(repr(name) for name in bucketed),
        ))  # fmt: skip
    caching = config.cache_text_encoder_outputs or config.cache_text_encoder_outputs_to_disk
    if config.weighted_captions and caching and command not in LORA_COMMANDS:
        # sd-scripts' sdxl_train refuses the pair; its sdxl_train_network caches the weighted outputs, as here.
        errors.append(msg(
            "preflight.weighted_captions_text_cache",
            "--weighted_captions cannot be used with --cache_text_encoder_outputs in {command} (sd-scripts refuses "
            "the pair for full fine-tuning too): leave out one of them. LoRA training caches the weighted outputs",
            command=command,
        ))  # fmt: skip
    return errors, warnings
