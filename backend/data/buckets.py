"""Aspect-ratio buckets, compatible with sd-scripts' BucketManager.

Three ways to pick an image's training resolution (width, height):
- predefined buckets (enable_bucket): every (w, h) with sides in [min_bucket_reso,
  max_bucket_reso], multiples of bucket_reso_steps, and area up to resolution W*H; an image goes
  to the bucket with the nearest aspect ratio and is resized to cover it, then cropped;
- per-image buckets (enable_bucket + bucket_no_upscale): images larger than the area are shrunk
  keeping their aspect ratio, smaller ones are kept; the bucket is the size rounded down to steps;
- a single bucket (no enable_bucket): everything is resized to cover `resolution` and cropped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from backend.data.errors import DatasetError
from backend.data.specs import DatasetSpec
from backend.messages import msg

logger = logging.getLogger(__name__)


def make_bucket_resolutions(
    max_reso: tuple[int, int], min_size: int = 256, max_size: int = 1024, divisible: int = 64
) -> list[tuple[int, int]]:
    """sd-scripts' model_util.make_bucket_resolutions, same output (sorted)."""
    max_area = max_reso[0] * max_reso[1]
    side = int(math.sqrt(max_area) // divisible) * divisible
    resos = {(side, side)}
    width = min_size
    while width <= max_size:
        height = min(max_size, int((max_area // width) // divisible) * divisible)
        if height >= min_size:
            resos.add((width, height))
            resos.add((height, width))
        width += divisible
    return sorted(resos)


def cover_size(image_size: tuple[int, int], bucket: tuple[int, int]) -> tuple[int, int]:
    """Size that keeps the aspect ratio and covers `bucket` on both sides with one side equal."""
    width, height = image_size
    scale = bucket[1] / height if width / height > bucket[0] / bucket[1] else bucket[0] / width
    return max(bucket[0], int(width * scale + 0.5)), max(bucket[1], int(height * scale + 0.5))


@dataclass(frozen=True)
class BucketChoice:
    reso: tuple[int, int]  # bucket (width, height)
    resized_size: tuple[int, int]  # image size after resize, before the crop to `reso`
    ar_error: float  # bucket aspect ratio minus image aspect ratio


def bucket_choice(image_size: tuple[int, int], reso: tuple[int, int]) -> BucketChoice:
    """An image put into a given bucket: resized to cover it, then cropped."""
    return BucketChoice(reso, cover_size(image_size, reso), reso[0] / reso[1] - image_size[0] / image_size[1])


class BucketSelector:
    def __init__(self, spec: DatasetSpec, warn: Callable[[str], None] = logger.warning) -> None:
        self.no_upscale = spec.enable_bucket and spec.bucket_no_upscale
        self.steps = spec.bucket_reso_steps
        self.max_area = spec.resolution[0] * spec.resolution[1]
        self.predefined: list[tuple[int, int]] = []
        if not spec.enable_bucket:
            self.predefined = [spec.resolution]
        elif not self.no_upscale:
            min_reso, max_reso = _checked_min_max(spec, warn)
            self.predefined = make_bucket_resolutions(spec.resolution, min_reso, max_reso, self.steps)
        else:
            warn(msg(
                "dataset.bucket.no_upscale_ignores_range",
                "min_bucket_reso and max_bucket_reso are ignored with bucket_no_upscale: buckets follow image sizes",
            ))  # fmt: skip
        self._predefined_set = set(self.predefined)

    def select(self, width: int, height: int) -> BucketChoice:
        aspect = width / height
        if self.no_upscale:
            resized = self._shrunk_size(width, height, aspect) if width * height > self.max_area else (width, height)
            reso = (resized[0] - resized[0] % self.steps, resized[1] - resized[1] % self.steps)
            if min(reso) < 1:
                raise DatasetError(msg(
                    "dataset.bucket.image_too_small",
                    "image of {width}x{height} is smaller than bucket_reso_steps={steps} on one side, so "
                    "bucket_no_upscale gives it an empty bucket: remove or enlarge it, or turn off bucket_no_upscale",
                    width=width, height=height, steps=self.steps,
                ))  # fmt: skip
        else:
            reso = (width, height)
            if reso not in self._predefined_set:
                reso = min(self.predefined, key=lambda r: abs(r[0] / r[1] - aspect))
            resized = cover_size((width, height), reso)
        return BucketChoice(reso, resized, reso[0] / reso[1] - aspect)

    def _round(self, x: float) -> int:
        x = int(x + 0.5)
        return x - x % self.steps

    def _shrunk_size(self, width: int, height: int, aspect: float) -> tuple[int, int]:
        # Same rule as sd-scripts: round either side to steps and keep whichever distorts less.
        resized_w = math.sqrt(self.max_area * aspect)
        resized_h = self.max_area / resized_w
        w_rounded = self._round(resized_w)
        h_in_w = self._round(w_rounded / aspect)
        h_rounded = self._round(resized_h)
        w_in_h = self._round(h_rounded * aspect)
        error_w = abs(w_rounded / h_in_w - aspect) if h_in_w else math.inf
        error_h = abs(w_in_h / h_rounded - aspect) if h_rounded else math.inf
        if error_w < error_h:
            return w_rounded, int(w_rounded / aspect + 0.5)
        return int(h_rounded * aspect + 0.5), h_rounded


def _checked_min_max(spec: DatasetSpec, warn: Callable[[str], None]) -> tuple[int, int]:
    steps, min_reso, max_reso = spec.bucket_reso_steps, spec.min_bucket_reso, spec.max_bucket_reso
    if min_reso % steps:
        adjusted = max(steps, min_reso - min_reso % steps)  # never 0: a bucket side of 0 is no bucket
        warn(msg(
            "dataset.bucket.min_not_multiple",
            "min_bucket_reso {value} is not a multiple of bucket_reso_steps {steps}: using {adjusted}",
            value=min_reso, steps=steps, adjusted=adjusted,
        ))  # fmt: skip
        min_reso = adjusted
    if max_reso % steps:
        adjusted = max_reso + steps - max_reso % steps
        warn(msg(
            "dataset.bucket.max_not_multiple",
            "max_bucket_reso {value} is not a multiple of bucket_reso_steps {steps}: using {adjusted}",
            value=max_reso, steps=steps, adjusted=adjusted,
        ))  # fmt: skip
        max_reso = adjusted
    if min(spec.resolution) < min_reso:
        raise DatasetError(msg(
            "dataset.bucket.min_above_resolution",
            "min_bucket_reso {value} is larger than the resolution's short side {side}: lower min_bucket_reso (256 is "
            "usual) or raise the resolution",
            value=min_reso, side=min(spec.resolution),
        ))  # fmt: skip
    if max(spec.resolution) > max_reso:
        raise DatasetError(msg(
            "dataset.bucket.max_below_resolution",
            "max_bucket_reso {value} is smaller than the resolution's long side {side}: raise max_bucket_reso to at "
            "least {side}",
            value=max_reso, side=max(spec.resolution),
        ))  # fmt: skip
    return min_reso, max_reso


def bucket_reso_range(spec: DatasetSpec) -> tuple[int, int] | tuple[None, None]:
    """(min_bucket_reso, max_bucket_reso) as the buckets use them (moved to multiples of the steps);
    (None, None) without enable_bucket, where they play no part (sd-scripts records them so)."""
    if not spec.enable_bucket:
        return None, None
    return _checked_min_max(spec, lambda _message: None)


def verify_bucket_reso_steps(spec: DatasetSpec, multiple: int) -> None:
    """Model families need bucket sides divisible by their latent/U-Net stride (SD 1.x: 64, SDXL: 32)."""
    sides = [spec.bucket_reso_steps] if spec.enable_bucket else list(spec.resolution)
    bad = [s for s in sides if s % multiple]
    if bad:
        what = "bucket_reso_steps" if spec.enable_bucket else "resolution"  # option names
        raise DatasetError(msg(
            "dataset.bucket.not_divisible", "{name} {value} must be divisible by {multiple} for this model",
            name=what, value=bad[0], multiple=multiple,
        ))  # fmt: skip
