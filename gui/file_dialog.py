"""Native file/folder pickers (easygui over tkinter): a convenience only where a display exists.

Every path can be typed; `--headless` (and a machine without a display) turns the pickers off, so
no dialog ever blocks a server that nobody sits in front of.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def dialogs_available(headless: bool) -> bool:
    if headless:
        return False
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def browse(current: str, folder: bool) -> str:
    """The picked path, or `current` when the dialog is cancelled or cannot open."""
    try:
        import easygui  # imported late: it loads tkinter, which a headless GUI never needs
    except ImportError:
        return current
    start = str(Path(current).expanduser()) if current else None
    try:
        picked = easygui.diropenbox(default=start) if folder else easygui.fileopenbox(default=start)
    except Exception:  # noqa: BLE001  (a broken Tk install must not break the form)
        return current
    return picked or current
