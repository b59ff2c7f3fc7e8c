"""Validation videos (mp4 `sample` events of the video trainer) for a progress panel's video player.

Gradio serves a returned file only from the working folder, the system's temp folder or the paths given
to `launch`; a run's output folder lies anywhere. So the newest video is copied once into a folder of
this GUI under the temp folder and the player gets the copy (a tick re-sends it only when the newest
sample changes: gui/training/progress_panel.py).

Torch-free and gradio-free: paths in, paths out.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov")


def is_video(path: str) -> bool:
    return path.lower().endswith(VIDEO_SUFFIXES)


def video_samples(snapshot: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The run's sample events whose file is a video, in the order they were written."""
    return [sample for sample in snapshot.get("samples", []) if is_video(str(sample.get("path") or ""))]


def newest_video(samples: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    found = list(samples)
    return found[-1] if found else None


def servable_folder() -> Path:
    return Path(tempfile.gettempdir()) / "kohya_gui_sample_videos"


def servable_copy(path: str, folder: Path | None = None) -> str | None:
    """A copy of the video at `path` that Gradio may serve (named by the source's path, size and time, so
    a rewritten file gets a new copy); None when the file cannot be read (still being written: a later
    tick tries again)."""
    folder = folder or servable_folder()
    try:
        stat = os.stat(path)
        if stat.st_size == 0:
            return None
        key = hashlib.sha256(f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:20]
        target = folder / f"{key}{Path(path).suffix.lower()}"
        if not target.exists():
            folder.mkdir(parents=True, exist_ok=True)
            # A name of its own: two overlapping ticks copying the same video must not write one file.
            partial = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}.part")
            shutil.copyfile(path, partial)
            os.replace(partial, target)
    except OSError:
        return None
    return str(target)
