"""Resolution buckets for video training, as finetrainers takes them. Torch-free.

`--video_resolution_buckets 49x512x768 ...` (frames x height x width) and `--image_resolution_buckets
512x768 ...` (height x width; images are one-frame clips). A clip's bucket, as finetrainers (0.1+)
picks it: the largest bucket frame count not above the clip's frames, then among the buckets with
that frame count the nearest aspect ratio (|W/H - w/h|, ties to the larger bucket). Frames are
then chosen evenly spread over the whole clip (finetrainers: `linspace(0, N - 1, F)`), or with
`frame_selection="first"` the first F frames (keeps the clip's speed, decodes less).

Where finetrainers is vague or silently wrong, this does the clearer thing:
- a clip shorter than every bucket is not trained at a wrong frame count: `choose_bucket` gives
  None and the scan lists it with what to do;
- images pick among the image buckets; without `--image_resolution_buckets` among the video
  buckets' sizes, at one frame (finetrainers would push them through the video buckets);
- bucket frame counts and sizes are checked against the family's VAE (`check_buckets`) before any
  decoding, naming the nearest valid values, instead of failing inside the VAE;
- no buckets given: `default_video_buckets` gives finetrainers' defaults (49 frames x its
  256..1536 sizes) limited to the sizes the model takes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from backend.data.video.errors import VideoDataError, collected
from backend.messages import msg

FRAME_SELECTIONS = ("spread", "first")
# finetrainers' DEFAULT_*_BUCKETS (constants.py): 49 frames, these heights x these widths.
FINETRAINERS_DEFAULT_FRAMES = 49
FINETRAINERS_DEFAULT_SIDES = (256, 320, 384, 480, 512, 576, 720, 768, 960, 1024, 1280, 1536)

VideoBucket = tuple[int, int, int]  # (frames, height, width)


@dataclass(frozen=True)
class Buckets:
    """The video buckets (F, H, W) and the image buckets (H, W) of one run."""

    video: tuple[VideoBucket, ...] = ()
    image: tuple[tuple[int, int], ...] = ()

    @property
    def image_candidates(self) -> tuple[VideoBucket, ...]:
        """One-frame buckets for images: the image buckets, else the video buckets' sizes."""
        sizes = self.image or tuple(dict.fromkeys((h, w) for _, h, w in self.video))
        return tuple((1, h, w) for h, w in sizes)

    @property
    def min_video_frames(self) -> int | None:
        return min((f for f, _, _ in self.video), default=None)

    def all(self) -> tuple[VideoBucket, ...]:
        return tuple(dict.fromkeys(self.video + self.image_candidates))


def parse_buckets(video: str | Sequence[str] | None, image: str | Sequence[str] | None = None) -> Buckets:
    """Both flags' values (a string of space- or comma-separated tokens, or a list of tokens)."""
    problems: list[str] = []
    videos = _parse(video, 3, "video_resolution_buckets", "FxHxW (frames x height x width), e.g. 49x512x768", problems)
    images = _parse(image, 2, "image_resolution_buckets", "HxW (height x width), e.g. 512x768", problems)
    if problems:
        raise VideoDataError(collected(msg("video.bucket.bad_tokens", "resolution buckets cannot be read:"), problems))
    if not videos and not images:
        raise VideoDataError(msg(
            "video.bucket.none",
            "no resolution buckets: pass --video_resolution_buckets (FxHxW, e.g. 49x512x768) and/or "
            "--image_resolution_buckets (HxW, e.g. 512x768)",
        ))  # fmt: skip
    return Buckets(tuple(videos), tuple(images))  # type: ignore[arg-type]


def parse_video_buckets(text: str | Sequence[str] | None) -> tuple[VideoBucket, ...]:
    return parse_buckets(text).video


def parse_image_buckets(text: str | Sequence[str] | None) -> tuple[tuple[int, int], ...]:
    return parse_buckets(None, text).image


def _tokens(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    parts = [value] if isinstance(value, str) else list(value)
    return [t for part in parts for t in str(part).replace(",", " ").split() if t]


def _parse(value: str | Sequence[str] | None, size: int, flag: str, form: str, problems: list[str]) -> list[tuple]:
    buckets: dict[tuple, None] = {}  # ordered, duplicates once
    for token in _tokens(value):
        parts = token.lower().split("x")
        numbers = [int(p) for p in parts if p.isdigit()]
        if len(parts) != size or len(numbers) != size:
            problems.append(msg(
                "video.bucket.bad_token", "--{flag} {token}: expected {form}",
                flag=flag, token=repr(token), form=form,
            ))  # fmt: skip
        elif min(numbers) < 1:
            problems.append(msg(
                "video.bucket.zero", "--{flag} {token}: every number must be at least 1", flag=flag, token=token
            ))  # fmt: skip
        else:
            buckets[tuple(numbers)] = None
    return list(buckets)


def valid_frame_neighbours(frames: int, temporal: int) -> tuple[int, int]:
    """The valid frame counts (1 + k * temporal) just below and above `frames` (below is >= 1)."""
    below = 1 + max(0, (frames - 1) // temporal) * temporal
    return below, below + temporal


def check_buckets(buckets: Buckets, temporal: int, spatial: int, model: str) -> None:
    """Every bucket fits the family's VAE: frames 1 + k * `temporal`, height and width multiples of
    `spatial` (the VAE's compression times the transformer's patch size: Wan 16, LTX-Video 32)."""
    problems: list[str] = []
    for frames, height, width in buckets.video:
        if (frames - 1) % temporal:
            below, above = valid_frame_neighbours(frames, temporal)
            problems.append(msg(
                "video.bucket.frames",
                "{bucket}: {frames} frames: {model}'s VAE takes 1 + {temporal}k frames: use {below} or {above}",
                bucket=f"{frames}x{height}x{width}", frames=frames, model=model, temporal=temporal, below=below,
                above=above,
            ))  # fmt: skip
    for height, width in dict.fromkeys([(h, w) for _, h, w in buckets.video] + list(buckets.image)):
        for side, value in (("height", height), ("width", width)):
            if value % spatial:
                below = value // spatial * spatial
                choices = (msg("video.bucket.either", "{below} or {above}", below=below, above=below + spatial)
                           if below > 0 else str(below + spatial))
                problems.append(msg(
                    "video.bucket.size",
                    "{size}: {side} {value} is not a multiple of {spatial}, which {model} needs: use {choices}",
                    size=f"{height}x{width}", side=side, value=value, spatial=spatial, model=model, choices=choices,
                ))  # fmt: skip
    if problems:
        raise VideoDataError(collected(msg(
            "video.bucket.invalid", "resolution buckets {model} cannot train on:", model=model
        ), problems))  # fmt: skip


def default_video_buckets(temporal: int, spatial: int) -> Buckets:
    """finetrainers' default buckets (when neither bucket flag is given) that the model can take."""
    sides = [s for s in FINETRAINERS_DEFAULT_SIDES if s % spatial == 0]
    frames = FINETRAINERS_DEFAULT_FRAMES
    if (frames - 1) % temporal:
        frames = valid_frame_neighbours(frames, temporal)[0]
    return Buckets(tuple((frames, h, w) for h in sides for w in sides))


def choose_bucket(buckets: Buckets, frames: int, height: int, width: int, image: bool = False) -> VideoBucket | None:
    """The bucket a clip of `frames` x `height` x `width` trains in; None when it is shorter than every
    video bucket (images: always a one-frame bucket when any bucket exists)."""
    candidates = buckets.image_candidates if image else buckets.video
    fitting = [b for b in candidates if b[0] <= frames]
    if not fitting:
        return None
    longest = max(b[0] for b in fitting)
    aspect = width / height
    same_length = [b for b in fitting if b[0] == longest]
    return min(same_length, key=lambda b: (abs(b[2] / b[1] - aspect), -b[1], -b[2]))


def frame_indices(total: int, count: int, selection: str = "spread") -> list[int]:
    """Which `count` of a clip's `total` frames a bucket of `count` frames takes (`total >= count`)."""
    if selection not in FRAME_SELECTIONS:
        raise VideoDataError(msg(
            "video.bucket.frame_selection", "frame selection {value}: use one of {choices}",
            value=repr(selection), choices=", ".join(FRAME_SELECTIONS),
        ))  # fmt: skip
    if count > total:
        raise VideoDataError(msg(
            "video.bucket.too_few_frames", "{count} frames asked of a clip with {total}", count=count, total=total
        ))  # fmt: skip
    if selection == "first" or count == 1:
        return list(range(count))
    # finetrainers: torch.linspace(0, total - 1, count).long(), i.e. evenly spread, truncated.
    return [i * (total - 1) // (count - 1) for i in range(count)]


def describe(buckets: Iterable[VideoBucket]) -> str:
    return " ".join(f"{f}x{h}x{w}" for f, h, w in buckets)
