"""Opening an image for a captioning or tagging model, with a reason when it cannot be used.

As in the trainer (backend/data/images.py): EXIF orientation is applied (phone photos are stored
sideways) and transparency is composited onto white, which is what the WD14 taggers were trained
on and avoids black backgrounds from a bare RGBA->RGB conversion.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps

from backend.messages import msg


class UnreadableImage(Exception):
    """The file is not an image PIL can decode; the message says why, for the tool's summary."""


def load_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
    except Exception as exc:  # PIL raises many types for bad files; all mean "unusable"
        raise UnreadableImage(msg("tool.image_unreadable", "unreadable image ({error})",
                                  error=f"{type(exc).__name__}: {exc}")) from None
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB") if image.mode != "RGB" else image
