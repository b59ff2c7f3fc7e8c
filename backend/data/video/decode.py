"""Reading videos (PyAV) and images (PIL) as frames.

    probe(path) -> VideoInfo(frames, width, height, fps)
    read_clip(path, frame_indices) -> uint8 tensor [F, 3, H, W]

Images (.png .jpg .jpeg .webp .bmp) are one-frame videos (fps 0). `probe` reads the container's
stream metadata and decodes only the first frame: that proves the codec can decode the file and
gives the displayed size (phones store portrait videos as landscape with a rotation; frames are
turned upright here, as players show them). When the container does not record a frame count
(webm, mkv) it is counted by demuxing the packets, which reads the file but decodes nothing.
`read_clip` decodes from the start only as far as the last frame asked for.

Every failure is a `VideoDecodeError(path, reason)` saying what is wrong and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from backend.data.video.errors import VideoDecodeError
from backend.data.video.sources import MEDIA_EXTENSIONS, is_image_path
from backend.messages import msg


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    width: int
    height: int
    fps: float  # 0.0 for images


def probe(path: str | Path) -> VideoInfo:
    """Frame count, displayed size and frame rate of a video or image file."""
    path = Path(path)
    _check_readable(path)
    if is_image_path(path):
        width, height = _image(path).size
        return VideoInfo(1, width, height, 0.0)
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container, path)
            first = next(container.decode(stream), None)
            if first is None:
                raise VideoDecodeError(str(path), msg("video.decode.no_frames", "it has no frames"))
            width, height = first.width, first.height
            if _quarter_turns(first) % 2:
                width, height = height, width
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            frames = stream.frames
        if frames <= 0:
            frames = _count_packets(path)
    except av.FFmpegError as exc:
        raise VideoDecodeError(str(path), _reason(exc)) from exc
    return VideoInfo(frames, width, height, fps)


def read_clip(path: str | Path, frame_indices: list[int]) -> torch.Tensor:
    """The frames at `frame_indices` (0-based, any order, repeats allowed) as uint8 [F, 3, H, W]."""
    path = Path(path)
    _check_readable(path)
    if not frame_indices:
        raise ValueError("read_clip needs at least one frame index")
    if is_image_path(path):
        if set(frame_indices) != {0}:
            raise VideoDecodeError(str(path), msg(
                "video.decode.image_frames", "it is an image (one frame); frames {indices} were asked for",
                indices=sorted(set(frame_indices)),
            ))  # fmt: skip
        array = np.asarray(_image(path))
        frames = {0: array}
    else:
        frames = _decode_frames(path, set(frame_indices))
    clip = np.stack([frames[i] for i in frame_indices])  # [F, H, W, 3]
    return torch.from_numpy(clip).permute(0, 3, 1, 2).contiguous()


def _decode_frames(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    last = max(wanted)
    frames: dict[int, np.ndarray] = {}
    decoded = 0
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container, path)
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                decoded = index + 1
                if index in wanted:
                    frames[index] = _upright(frame)
                if index >= last:
                    break
    except av.FFmpegError as exc:
        raise VideoDecodeError(str(path), _reason(exc)) from exc
    if len(frames) < len(wanted):
        raise VideoDecodeError(str(path), msg(
            "video.decode.short",
            "it ends after {decoded} decodable frame(s) but frame {last} was asked for (the file may be cut short "
            "or report more frames than it has)",
            decoded=decoded, last=last,
        ))  # fmt: skip
    return frames


def _upright(frame: av.VideoFrame) -> np.ndarray:
    array = frame.to_ndarray(format="rgb24")
    turns = _quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(array, k=turns)) if turns else array


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that show the frame upright (its display matrix's rotation)."""
    rotation = getattr(frame, "rotation", 0) or 0
    return round(rotation / 90) % 4


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    if not container.streams.video:
        raise VideoDecodeError(str(path), msg("video.decode.no_stream", "it has no video stream (audio only?)"))
    return container.streams.video[0]


def _count_packets(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size > 0)


def _image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise VideoDecodeError(str(path), msg(
            "video.decode.image", "not a readable image ({reason})", reason=str(exc) or type(exc).__name__
        )) from exc  # fmt: skip


def _check_readable(path: Path) -> None:
    if path.suffix.lower() not in MEDIA_EXTENSIONS:
        raise VideoDecodeError(str(path), msg(
            "video.decode.extension", "unknown extension {suffix}; supported: {extensions}",
            suffix=path.suffix or "(none)", extensions=" ".join(MEDIA_EXTENSIONS),
        ))  # fmt: skip
    if not path.is_file():
        raise VideoDecodeError(str(path), msg("video.decode.missing", "the file does not exist"))


def _reason(exc: av.FFmpegError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__

