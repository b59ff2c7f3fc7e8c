"""`face_crop_aug_range`: crop around a face whose place the image's file name gives (sd-scripts' convention).

sd-scripts' face detection tool (tools/detect_face_rotate.py) names its crops
`<name>_<face cx>_<face cy>_<face w>_<face h>.<ext>` in the image's pixels. With `face_crop_aug_range`
(low, high) and without buckets, such an image is scaled so the face's larger side becomes 1/high to 1/low of
the resolution's short side (drawn per sample; never enlarged beyond its own size unless it would not cover
the resolution), then cut to the resolution around the face: centred, shifted a little when low < high, or
anywhere that keeps the face likely near the middle with `random_crop`. Images without the four numbers are
fitted as usual. The same steps as sd-scripts' `BaseDataset.crop_target`, with this project's per-sample
`random.Random` in place of the global one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.data.images import FittedImage, LoadedImage, resize_array


@dataclass(frozen=True)
class FaceBox:
    """The face's centre and size in the image's pixels, as the file name gives them."""

    cx: int
    cy: int
    width: int
    height: int


def face_in_name(path: str | Path) -> FaceBox | None:
    """The face of `<name>_<cx>_<cy>_<w>_<h>.png`, or None when the name has no such numbers (sd-scripts reads
    the last four `_` parts whenever there are five or more; names whose parts are not numbers are fitted as
    usual here instead of stopping the run). A centre x of 0 means "no face", as in sd-scripts."""
    parts = Path(path).stem.split("_")
    if len(parts) < 5:
        return None
    try:
        cx, cy, width, height = (int(p) for p in parts[-4:])
    except ValueError:
        return None
    return FaceBox(cx, cy, width, height) if cx > 0 else None


def face_crop(
    image: LoadedImage,
    target: tuple[int, int],
    face: FaceBox,
    aug_range: tuple[float, float],
    random_crop: bool,
    rng: random.Random,
    interpolation: str | None,
) -> tuple[FittedImage, tuple[int, int]]:
    """`image` scaled for the face and cut to `target` (width, height) around it, and the scaled size (width,
    height); crop_ltrb is in scaled pixels."""
    height, width = image.rgb.shape[:2]
    target_w, target_h = target
    if (width, height) == target:
        return FittedImage(image.rgb, image.alpha, (0, 0, width, height)), (width, height)
    face_size = max(face.width, face.height, 1)  # a face of no size: scale as for the smallest face
    short = min(target_w, target_h)
    cover = max(target_h / height, target_w / width)  # the least scale that still covers the target
    low, high = aug_range
    min_scale = min(1.0, max(cover, short / (face_size * high)))
    max_scale = min(1.0, max(min_scale, short / (face_size * low)))
    scale = min_scale if min_scale >= max_scale else rng.uniform(min_scale, max_scale)
    scale = max(scale, cover)  # an image smaller than the target is enlarged to cover it (sd-scripts stops)
    new_w, new_h = max(target_w, int(width * scale + 0.5)), max(target_h, int(height * scale + 0.5))
    rgb, alpha = image.rgb, image.alpha
    if (new_w, new_h) != (width, height):
        rgb = resize_array(rgb, (new_w, new_h), interpolation)
        alpha = None if alpha is None else resize_array(alpha, (new_w, new_h), interpolation)
    starts = []
    for size, length, centre in ((target_h, new_h, int(face.cy * scale + 0.5)), (target_w, new_w, int(face.cx * scale + 0.5))):
        start = centre - size // 2  # the face in the middle
        if random_crop:
            # Anywhere, but more often near the middle: the sum of two draws (sd-scripts' "good random").
            reach = max(length - centre, centre)
            start += rng.randint(0, reach) + rng.randint(0, reach) - reach
        elif low != high and face_size > short // 10 and face_size >= 40:
            start += rng.randint(-face_size // 20, face_size // 20)  # a little jitter with a range of sizes
        starts.append(max(0, min(start, length - size)))
    top, left = starts
    rgb = np.ascontiguousarray(rgb[top : top + target_h, left : left + target_w])
    alpha = None if alpha is None else np.ascontiguousarray(alpha[top : top + target_h, left : left + target_w])
    return FittedImage(rgb, alpha, (left, top, left + target_w, top + target_h)), (new_w, new_h)
