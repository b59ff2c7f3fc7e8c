"""`cache_info`: an image folder's image sizes kept in `metadata_cache.json` there (sd-scripts' file).

Scanning a large folder opens every image to read its size; with cache_info the sizes are read from the
file instead. sd-scripts writes `{image path: {"caption": ..., "resolution": [width, height]}}` once and
then trusts it, image list and captions included, so images added, replaced or re-captioned later go
unnoticed. Here the file has the same keys (sd-scripts reads ours), plus each image file's size in bytes
and modification time: the folder is still listed and the captions read from their files each run, and an
entry counts only while its image file is unchanged (entries without those fields, such as sd-scripts' own,
are measured again, also because sd-scripts' sizes ignore the EXIF rotation applied here). The file is
rewritten (atomically, backend/atomic.py) when anything in it changed; a file that is not such a JSON object
is left alone with a warning, as something of the user's.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.atomic import atomic_write_json
from backend.messages import msg

logger = logging.getLogger(__name__)

CACHE_FILE = "metadata_cache.json"  # sd-scripts' DreamBoothDataset.IMAGE_INFO_CACHE_FILE


@dataclass
class InfoCache:
    """One folder's cache file as read: entries by image path, and whether the file may be rewritten."""

    path: Path
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    writable: bool = True

    def size_of(self, image: Path, stat: os.stat_result) -> tuple[int, int] | None:
        """The recorded (width, height) of `image`, if its entry was made from this very file."""
        entry = self.entries.get(str(image))
        if not isinstance(entry, dict) or entry.get("file_size") != stat.st_size \
                or entry.get("mtime_ns") != stat.st_mtime_ns:
            return None
        size = entry.get("resolution")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            return None
        return size[0], size[1]


def read_info_cache(image_dir: str | Path, warn: Callable[[str], None] = logger.warning) -> InfoCache:
    path = Path(image_dir) / CACHE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return InfoCache(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        warn(_not_ours(path, exc))
        return InfoCache(path, writable=False)
    if not isinstance(data, dict):
        warn(_not_ours(path, msg("dataset.info_cache.not_object", "it does not hold a JSON object")))
        return InfoCache(path, writable=False)
    return InfoCache(path, data)


def _not_ours(path: Path, reason: object) -> str:
    return msg(
        "dataset.info_cache.unreadable",
        "cache_info: {path} cannot be read as sd-scripts' image info cache ({reason}); the images are measured "
        "and the file is left as it is. Move it away to let the cache be written",
        path=path, reason=reason,
    )  # fmt: skip


def write_info_cache(
    cache: InfoCache,
    rows: Sequence[tuple[Path, str, tuple[int, int], os.stat_result]],
    warn: Callable[[str], None] = logger.warning,
) -> bool:
    """Record `rows` ((image, caption, (width, height), its stat)) as the folder's cache when they differ from
    what the file holds; True when written. A folder that cannot be written is said once, not an error."""
    entries = {
        str(image): {"caption": caption, "resolution": list(size), "file_size": stat.st_size,
                     "mtime_ns": stat.st_mtime_ns}
        for image, caption, size, stat in rows
    }  # fmt: skip
    if not cache.writable or entries == cache.entries:
        return False
    try:
        atomic_write_json(entries, cache.path)
    except OSError as exc:
        warn(msg("dataset.info_cache.not_written", "cache_info: cannot write {path} ({reason}); the image sizes "
                 "are measured again next time", path=cache.path, reason=exc.strerror or exc))
        return False
    cache.entries = entries
    return True
