"""Preflight of the loss-mask options: --masked_loss, --conditioning_data_dir and alpha_mask.

sd-scripts' rules, stated as errors before a model loads: a conditioning folder is read only with
--masked_loss (a dataset config's conditioning_data_dir without it is refused there too), and a
fine-tuning metadata file has no conditioning images. Where sd-scripts says nothing, a warning or
an error says what would otherwise pass silently: --masked_loss without any mask (the loss is
not masked), and two mask sources for the same images. The masks themselves (one per image, same
size) are checked with the dataset's files (backend/data/masks.py, scan.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backend.data.specs import DatasetSpec
from backend.messages import msg
from backend.training.option_slice import OptionSlice


@dataclass(frozen=True)
class MaskConfig(OptionSlice):
    alpha_mask: bool
    in_json: str | None
    dataset_config: str | None
    # Not fine_tune's (sd-scripts' fine_tune.py has neither).
    masked_loss: bool = False
    conditioning_data_dir: str | None = None


def mask_problems(config: MaskConfig, specs: Sequence[DatasetSpec]) -> tuple[list[str], list[str]]:
    """(errors, warnings) of the mask options against the run's datasets."""
    errors: list[str] = []
    warnings: list[str] = []
    folder = config.conditioning_data_dir
    if folder and not config.masked_loss:
        errors.append(msg(
            "preflight.masks.folder_without_masked_loss",
            "--conditioning_data_dir {folder} holds loss masks, which only --masked_loss applies: add --masked_loss, "
            "or remove --conditioning_data_dir",
            folder=folder,
        ))  # fmt: skip
    elif folder and config.dataset_config:
        warnings.append(msg(
            "preflight.masks.folder_with_dataset_config",
            "--dataset_config is given, so --conditioning_data_dir is ignored (as --train_data_dir is); set "
            "conditioning_data_dir in the config's subsets",
        ))  # fmt: skip
    elif folder and config.in_json:
        errors.append(msg(
            "preflight.masks.folder_with_in_json",
            "--conditioning_data_dir goes with image folders (--train_data_dir), not with --in_json metadata; as in "
            "sd-scripts, use --alpha_mask (masks in the images' alpha channel) for a metadata dataset",
        ))  # fmt: skip
    elif folder and config.alpha_mask:
        errors.append(msg(
            "preflight.masks.two_sources",
            "--alpha_mask and --conditioning_data_dir are two masks for the same images; keep one of them",
        ))  # fmt: skip
    subsets = [subset for spec in specs for subset in spec.subsets]
    masked = any(s.alpha_mask or s.conditioning_data_dir for s in subsets)
    if config.masked_loss and subsets and not masked and not errors:
        warnings.append(msg(
            "preflight.masks.nothing_to_mask",
            "--masked_loss: no subset has conditioning_data_dir or alpha_mask, so there is no mask and the loss is "
            "not masked (sd-scripts does the same); give --conditioning_data_dir or --alpha_mask",
        ))  # fmt: skip
    return errors, warnings
