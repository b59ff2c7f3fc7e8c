"""The first frame of a video as a small PIL image, for the GUI's caption editor.

Torch-free on purpose (the GUI process imports it): `backend/data/video/decode.py` reads clips for training
but imports torch, and importing anything from `backend.data` runs its package `__init__` (torch too). This
decodes one frame with PyAV and turns it upright as players show it (phones store portrait videos as
landscape with a rotation), the same rule as decode.py's.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def first_frame(path: str | Path, max_px: int = 320) -> Image.Image | None:
    """The video's first frame, upright, at most `max_px` on its longer side; None when no frame can be
    decoded (not a video, a damaged file, a codec PyAV lacks)."""
    import av  # only when a video is shown

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                image = frame.to_image()
                turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
                if turns:
                    image = image.rotate(90 * turns, expand=True)
                image.thumbnail((max_px, max_px))
                return image.convert("RGB")
    except (av.FFmpegError, OSError, ValueError):
        return None
    return None
