"""Image files: header probing, decoding to RGB, resizing into a bucket, augmentation, tensors.

Decoding rules, chosen so that no file in a dataset folder surprises the trainer:
- EXIF orientation is applied (phone photos are stored sideways), also when probing sizes, so
  the bucket matches the pixels the model sees;
- anything with transparency (RGBA, LA, palette with a transparent colour) is composited onto
  white; with alpha_mask the alpha channel is also returned as the loss mask (a mask image of
  --conditioning_data_dir takes its place: `load_mask`), resized and cropped with the pixels;
- 16-bit grayscale is scaled to 8 bits rather than clipped to white, other modes go through RGB.

`probe_image` reads headers only (plus PNG chunk CRCs and the JPEG end marker, which are cheap)
so that broken files are found before training starts rather than mid-run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from backend.data.errors import DatasetError
from backend.messages import msg

_EXIF_ORIENTATION = 0x0112
_SWAPS_SIDES = {5, 6, 7, 8}  # orientations that rotate by 90 degrees

_FILTERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "linear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "cubic": Image.Resampling.BICUBIC,
    "area": Image.Resampling.BOX,  # PIL's box filter is area averaging, like cv2.INTER_AREA
    "box": Image.Resampling.BOX,  # sd-scripts resizes "box" with PIL's box filter
}


@dataclass(frozen=True)
class ImageProbe:
    path: Path
    size: tuple[int, int] | None  # (width, height) after EXIF orientation; None if unreadable
    problem: str | None = None


def probe_image(path: Path) -> ImageProbe:
    """Size of `path` from its header, or the reason it cannot be used."""
    try:
        with Image.open(path) as img:
            size = img.size
            fmt = img.format
            orientation = _orientation(img)
            if fmt == "PNG":
                img.verify()  # walks every chunk and checks its CRC, without decompressing
            elif fmt != "JPEG":
                img.load()  # webp/bmp: no cheap integrity check, and decoding them is quick
        if fmt == "JPEG" and not _jpeg_ends_cleanly(path):
            with Image.open(path) as img:
                img.load()  # raises when the data is really cut short
    except Exception as exc:  # PIL raises many types for bad files; all mean "unusable"
        return ImageProbe(path, None, _describe_failure(path, exc))
    if orientation in _SWAPS_SIDES:
        size = (size[1], size[0])
    if min(size) < 1:
        return ImageProbe(path, None, msg("dataset.image.no_pixels", "image has no pixels"))
    return ImageProbe(path, size)


def _orientation(img: Image.Image) -> int:
    if img.format == "PNG":
        # PngImageFile.getexif() decodes the whole image to look for a late eXIf chunk; only use
        # the EXIF block seen in the header (load_image re-checks sizes after decoding anyway).
        raw = img.info.get("exif")
        if not raw:
            return 1
        exif = Image.Exif()
        exif.load(raw)
        return int(exif.get(_EXIF_ORIENTATION, 1))
    return int(img.getexif().get(_EXIF_ORIENTATION, 1))


def _jpeg_ends_cleanly(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-2, 2)
        return f.read(2) == b"\xff\xd9"


def _describe_failure(path: Path, exc: Exception) -> str:
    if path.stat().st_size == 0:
        return msg("dataset.image.empty", "file is empty (0 bytes)")
    if isinstance(exc, Image.UnidentifiedImageError):
        return msg(
            "dataset.image.not_an_image", "not an image PIL can read (the extension says {ext})", ext=path.suffix.lower()
        )
    text = str(exc) or type(exc).__name__  # PIL's own (English) words
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return msg("dataset.image.truncated", "file is truncated (incomplete download or copy): {detail}", detail=text)
    return msg("dataset.image.undecodable", "cannot be decoded: {detail}", detail=text)


@dataclass
class LoadedImage:
    rgb: np.ndarray  # (H, W, 3) uint8
    alpha: np.ndarray | None  # (H, W) uint8 when requested, 255 where the image has no alpha


def load_image(path: str | Path, with_alpha: bool = False) -> LoadedImage:
    try:
        with Image.open(path) as img:
            img.load()
            img = _orient(img)
            rgba = _to_rgba_or_rgb(img)
    except Exception as exc:
        raise DatasetError(msg(
            "dataset.image.cannot_load", "cannot load image {path}: {error}; run --preflight to list every bad file",
            path=path, error=exc,
        )) from exc  # fmt: skip
    arr = np.asarray(rgba)
    if arr.shape[2] == 4:
        alpha = arr[:, :, 3]
        weight = alpha[:, :, None].astype(np.float32) / 255.0
        rgb = (arr[:, :, :3] * weight + 255.0 * (1.0 - weight) + 0.5).astype(np.uint8)
    else:
        alpha = None
        rgb = np.ascontiguousarray(arr)
    if with_alpha and alpha is None:
        alpha = np.full(rgb.shape[:2], 255, dtype=np.uint8)
    return LoadedImage(rgb, alpha if with_alpha else None)


def _orient(img: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # malformed EXIF must not make a viewable image unusable
        return img


def _eight_bit(img: Image.Image) -> Image.Image:
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit grayscale: PIL's convert('L') clips at 255, so scale explicitly.
        arr = np.asarray(img, dtype=np.float64)
        scale = 257.0 if arr.max(initial=0) > 255 else 1.0
        img = Image.fromarray(np.clip(arr / scale + 0.5, 0, 255).astype(np.uint8), "L")
    return img


def _to_rgba_or_rgb(img: Image.Image) -> Image.Image:
    img = _eight_bit(img)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    return img.convert("RGBA" if has_alpha else "RGB")


def load_mask(path: str | Path) -> np.ndarray:
    """A loss-mask image (--conditioning_data_dir) as (H, W) uint8: its red channel after PIL's RGB
    conversion, which drops an alpha channel, as sd-scripts' apply_masked_loss reads it (R / 255).
    EXIF orientation is applied, as to the training images, so both keep their displayed layout."""
    try:
        with Image.open(path) as img:
            img.load()
            rgb = _eight_bit(_orient(img)).convert("RGB")
    except Exception as exc:
        raise DatasetError(msg(
            "dataset.mask.cannot_load", "cannot load the mask {path}: {error}; run --preflight to list every bad file",
            path=path, error=exc,
        )) from exc  # fmt: skip
    return np.ascontiguousarray(np.asarray(rgb)[:, :, 0])


def resize_array(arr: np.ndarray, size: tuple[int, int], interpolation: str | None) -> np.ndarray:
    """Resize an (H, W[, C]) uint8 array to `size` (width, height); default area/lanczos as sd-scripts."""
    height, width = arr.shape[:2]
    if (width, height) == size:
        return arr
    if interpolation is None:
        interpolation = "area" if width >= size[0] and height >= size[1] else "lanczos"
    return np.asarray(Image.fromarray(arr).resize(size, _FILTERS[interpolation]))


@dataclass
class FittedImage:
    rgb: np.ndarray  # (bucket H, bucket W, 3) uint8
    alpha: np.ndarray | None
    crop_ltrb: tuple[int, int, int, int]  # crop box inside the resized image


def fit_to_bucket(
    image: LoadedImage,
    bucket_reso: tuple[int, int],
    resized_size: tuple[int, int],
    random_crop: bool,
    rng: random.Random | None,
    interpolation: str | None,
) -> FittedImage:
    """Resize to `resized_size` (which covers the bucket) and crop to `bucket_reso`, centered or random.

    crop_ltrb is the real crop box in resized pixels; SDXL's crop conditioning uses (top, left).
    """
    rgb = resize_array(image.rgb, resized_size, interpolation)  # (unchanged when it has that size)
    bw, bh = bucket_reso
    extra_w, extra_h = resized_size[0] - bw, resized_size[1] - bh
    if extra_w < 0 or extra_h < 0:
        raise DatasetError(f"internal error: resized size {resized_size} does not cover bucket {bucket_reso}")
    if random_crop and rng is not None:
        left, top = rng.randint(0, extra_w), rng.randint(0, extra_h)
    else:
        left, top = extra_w // 2, extra_h // 2
    crop = (left, top, left + bw, top + bh)
    rgb = rgb[top : top + bh, left : left + bw]
    alpha = None if image.alpha is None else fit_mask(image.alpha, resized_size, crop, interpolation)
    return FittedImage(rgb, alpha, crop)


def fit_mask(
    mask: np.ndarray, resized_size: tuple[int, int], crop_ltrb: tuple[int, int, int, int], interpolation: str | None
) -> np.ndarray:
    """A mask (H, W) uint8 of the image's original size through the image's own resize and crop, so each
    mask pixel stays on its image pixel (also for cached latents, whose resize and crop box are recorded)."""
    left, top, right, bottom = crop_ltrb
    return resize_array(mask, resized_size, interpolation)[top:bottom, left:right]


def color_aug(rgb: np.ndarray, rng: random.Random) -> np.ndarray:
    """sd-scripts' weak colour augmentation: 1 in 3 images get a hue shift of up to +-8 (OpenCV units,
    i.e. +-16 degrees) or a gamma in [0.95, 1.05]. Gamma is applied to [0, 1] values as albumentations
    (which sd-scripts replaced) did, not to 0-255 values, which would mostly clip to white."""
    if rng.random() > 0.33:
        return rgb
    if rng.random() > 0.5:
        shift = rng.uniform(-8.0, 8.0) / 180.0  # fraction of the hue circle
        hsv = np.asarray(Image.fromarray(rgb).convert("HSV")).copy()
        hsv[:, :, 0] = ((hsv[:, :, 0].astype(np.int32) + round(shift * 256)) % 256).astype(np.uint8)
        return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))
    gamma = rng.uniform(0.95, 1.05)
    return (np.power(rgb.astype(np.float32) / 255.0, gamma) * 255.0 + 0.5).clip(0, 255).astype(np.uint8)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1]."""
    tensor = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float()  # copy: PIL arrays are read-only
    return tensor / 127.5 - 1.0


def mask_to_tensor(alpha: np.ndarray) -> torch.Tensor:
    """(H, W) uint8 alpha -> (H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.array(alpha)).float() / 255.0
