"""Frames -> an mp4 file (H.264 through PyAV), written atomically: validation videos of the video families.

yuv420p needs even sizes: an odd width or height is padded by one pixel (repeating the edge). The
sample's parameters go into the container's `comment` tag, as sample PNGs carry them in `parameters`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from backend.atomic import atomic_path

DEFAULT_FPS = 8


def write_mp4(frames: Sequence[Image.Image], path: str | Path, fps: int = DEFAULT_FPS, comment: str = "") -> Path:
    import av

    if not frames:
        raise ValueError("no frames to write")
    path = Path(path)
    arrays = [_even(np.asarray(frame.convert("RGB"))) for frame in frames]
    height, width = arrays[0].shape[:2]
    with atomic_path(path, keep_suffix=True) as temp, av.open(str(temp), mode="w", format="mp4") as container:
        if comment:
            container.metadata["comment"] = comment
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18"}
        for array in arrays:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _even(array: np.ndarray) -> np.ndarray:
    pad_h, pad_w = array.shape[0] % 2, array.shape[1] % 2
    if pad_h or pad_w:
        array = np.pad(array, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(array)
