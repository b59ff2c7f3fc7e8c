"""The last state of each training form, kept on disk so a reloaded page (or a browser that crashed,
or a restarted GUI) opens with what the user had typed.

One JSON file per training kind, in preset format (gui/training/presets.py), written atomically whenever a
field is left or a preset/import filled the form, and read back through the same checks as a preset.
Unlike a preset (which the user manages, and which is refused as a whole when a value is wrong), a
value that does not pass is left out and reported, so one bad field does not lose the rest. It lives in `user_state/` in the
repository (git-ignored), or in `$KOHYA_GUI_STATE_DIR` (tests use a temporary folder). Server-side
rather than in the browser's storage: Gradio encrypts its browser state with a key that changes at
every start, so that would not survive a restart of the GUI.

A page reload during a run restores the run's own form instead (kept with the run by the runner:
gui/training/lora_actions.py `start`). No gradio here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from backend.atomic import atomic_write_json
from gui.training.presets import Preset, load_preset, parse_preset
from gui.training.training_kinds import REPO, TrainingKind

STATE_DIR_ENV = "KOHYA_GUI_STATE_DIR"


def state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV) or REPO / "user_state")


def state_path(kind: TrainingKind) -> Path:
    return state_dir() / f"{kind.key}_form.json"


def save_form(kind: TrainingKind, data: Mapping[str, Any]) -> Path | None:
    """Write the form (`TabValues.form_data()`); None when it cannot be written (never an error: the
    form itself is unaffected, only the next reload would start from an older state)."""
    path = state_path(kind)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(dict(data), path)
    except OSError:
        return None
    return path


def load_form(kind: TrainingKind) -> Preset | None:
    """The saved form (values that do not pass left out, in `problems`), or None when there is none
    or nothing in it can be used (not JSON, not an object)."""
    path = state_path(kind)
    if not path.is_file():
        return None
    loaded = load_preset(path, kind)
    return None if loaded.problems and not (loaded.values or loaded.gui) else loaded


def run_form(meta: Mapping[str, Any], kind: TrainingKind) -> Preset | None:
    """The form a run was started with (its runner `meta`), when it is a run of `kind`."""
    form = meta.get("form")
    if meta.get("kind") != kind.key or not isinstance(form, Mapping):
        return None
    loaded = parse_preset(form, kind)
    return None if loaded.problems else loaded
