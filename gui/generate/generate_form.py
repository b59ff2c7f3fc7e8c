"""The Generate page's last values on disk (`generate_form.json` in the GUI's state folder, as the training forms'
in gui/training/form_state.py), written when Generate is pressed and put into the served page
(gui/page_values.py), so a reload or a restarted GUI opens with the last generation's settings. A saved value of
the wrong type, an unknown name or text a field cannot show is left out; an unreadable file is no saved form."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from backend.atomic import atomic_write_json
from gui.form_text import text_problem
from gui.generate.generate_args import DEFAULTS
from gui.training.form_state import state_dir


def form_path() -> Path:
    return state_dir() / "generate_form.json"


def save_form(values: Mapping[str, Any]) -> None:
    """Never an error: the page works on without a saved form."""
    data = {name: values.get(name) for name in DEFAULTS if name in values}
    try:
        form_path().parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(data, form_path())
    except OSError:
        pass


MULTILINE = ("prompt", "embedding", "x_values", "y_values")  # one item a line


def _fits(name: str, value: Any) -> bool:
    if isinstance(DEFAULTS[name], bool):
        return isinstance(value, bool)
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return False
    return text_problem(str(value).splitlines() if name in MULTILINE else str(value)) is None


def load_form() -> dict[str, Any]:
    """The saved values that fit their fields ({} when there is no readable file)."""
    try:
        data = json.loads(form_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {name: value for name, value in data.items() if name in DEFAULTS and _fits(name, value)}
