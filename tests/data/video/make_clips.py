"""Tiny video files for tests, written with PyAV (also used by the end-to-end video tests).

    write_clip(path, frames=17, size=(64, 64), fps=8, seed=0)   # .mp4 .mov .mkv (h264), .webm (vp9), .gif
    write_image(path, size=(64, 48), seed=0)                      # .png .jpg .webp .bmp
    write_corrupt(path)                                           # a file no decoder reads

Frame `i` of a clip is `clip_frame(i, size, seed)`: a top band (a quarter of the height) whose grey level encodes `i`
(`frame_number(decoded)` reads it back, robust to lossy coding), a background colour chosen by
`seed`, and a square moving left to right. Sizes are (width, height), as PIL gives them.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

_CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9", ".gif": "gif"}
_STEP = 12  # grey levels per frame number: 16 + 12 * i, up to frame 19


def background(seed: int) -> tuple[int, int, int]:
    """The clip's background colour (flat, so decoded colours can be compared with a tolerance)."""
    rng = np.random.default_rng(seed)
    return tuple(int(v) for v in rng.integers(40, 216, size=3))  # type: ignore[return-value]


def clip_frame(index: int, size: tuple[int, int] = (64, 64), seed: int = 0) -> np.ndarray:
    """uint8 [H, W, 3] RGB of frame `index`."""
    width, height = size
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = background(seed)
    frame[: height // 4] = min(255, 16 + _STEP * index)
    side = max(4, min(width, height) // 4)
    left = (index * 4) % max(1, width - side)
    frame[height // 2: height // 2 + side, left: left + side] = (250, 20, 20)
    return frame


def frame_number(frame: np.ndarray) -> int:
    """The frame index encoded in a decoded frame (uint8 [H, W, 3] or [3, H, W]), also after resizing."""
    if frame.shape[0] == 3 and frame.shape[-1] != 3:
        frame = frame.transpose(1, 2, 0)
    band = frame.shape[0] // 4
    grey = float(frame[1: max(2, band - 2), 2:-2].mean())
    return round((grey - 16) / _STEP)


def write_clip(
    path: str | Path, frames: int = 17, size: tuple[int, int] = (64, 64), fps: int = 8, seed: int = 0
) -> Path:
    """A `frames`-frame clip at `size` (width, height; even for h264) and `fps`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = _CODECS[path.suffix.lower()]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        if codec == "gif":
            stream.pix_fmt = "rgb8"
        else:
            stream.pix_fmt = "yuv420p"
            # near-lossless so decoded colours stay within a few levels
            stream.options = {"crf": "4"} if codec == "libx264" else {"crf": "4", "b": "0", "deadline": "realtime"}
        for index in range(frames):
            image = av.VideoFrame.from_ndarray(clip_frame(index, size, seed), format="rgb24")
            container.mux(stream.encode(image))
        container.mux(stream.encode(None))
    return path


def write_image(path: str | Path, size: tuple[int, int] = (64, 48), seed: int = 0) -> Path:
    """Frame 0 of a clip as an image file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(clip_frame(0, size, seed)).save(path)
    return path


def write_corrupt(path: str | Path) -> Path:
    """Bytes no demuxer accepts, under a video name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x01not a video at all" * 64)
    return path
