"""Loss masks from a conditioning folder (sd-scripts' ControlNet subsets with --masked_loss).

Every image of a subset with `conditioning_data_dir` has its mask there under the same file name
(any image extension): `image_dir/a.png` -> `conditioning_data_dir/a.jpg` is fine. As in sd-scripts,
an image without a mask and a mask without an image are both errors (a misnamed mask shows up as
one of each), and the mask must have its image's size; here all of them are found before training
(the scan's problems) instead of one assertion at a time. A mask's red channel is the weight
(`images.load_mask`); it is resized, cropped and flipped with its image (`images.fit_mask`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from backend.data.discovery import list_images
from backend.data.errors import DatasetError
from backend.messages import msg


@dataclass
class MaskMatch:
    """A subset's images paired with their masks."""

    masks: dict[Path, Path] = field(default_factory=dict)  # image -> its mask
    missing: list[Path] = field(default_factory=list)  # images without a mask
    extra: list[Path] = field(default_factory=list)  # masks without an image
    ambiguous: dict[Path, list[Path]] = field(default_factory=dict)  # image -> its several masks


def match_masks(folder: str | Path, images: list[Path]) -> MaskMatch:
    """Pair `images` with the files of the same stem in `folder` (a DatasetError when it is no folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(msg(
            "dataset.mask.no_folder",
            "conditioning_data_dir {folder} (the loss masks of {count} image(s)) does not exist or is not a folder; "
            "each training image needs a mask there with the same file name (--conditioning_data_dir: one folder "
            "per '<repeats>_<name>' folder of --train_data_dir, named the same)",
            folder=folder, count=len(images),
        ))  # fmt: skip
    by_stem: dict[str, list[Path]] = {}
    for mask in list_images(folder):
        by_stem.setdefault(mask.stem, []).append(mask)
    match = MaskMatch()
    used: set[str] = set()
    for image in images:
        found = by_stem.get(image.stem, [])
        if not found:
            match.missing.append(image)
            continue
        used.add(image.stem)
        if len(found) > 1:
            match.ambiguous[image] = found
        else:
            match.masks[image] = found[0]
    match.extra = [mask for stem, masks in sorted(by_stem.items()) if stem not in used for mask in masks]
    return match
