"""Text a training form can show as it will run.

The forms' text boxes hold one line (list fields: one item a line). A browser drops the line breaks
of a value put into a one-line box, and shows a tab as a space, so a preset, an import or a config
default holding them would show one thing in the field and run another. The trainer refuses control
characters only in paths and names (`backend.options.values`); for the GUI every text value is one
line of printable text, checked wherever values enter a form (presets and run snapshots, kohya_ss
imports, the GUI config's [defaults]) and again before anything is written (run, export, preset
save). Pure data: no gradio.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend.messages import msg
from backend.options.values import control_character, subject_problem, visible_text


def text_problem(value: Any) -> str | None:
    """What makes `value` (a string or a list of strings) unshowable in a form field, or None."""
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(item, str) and (found := control_character(item)):
            return msg(
                "gui.form.unshowable_text",
                "{text} has {found}, which a form field cannot show; edit the value where it came from, or re-type "
                "it in the field",
                text=visible_text(item), found=found,
            )
    return None


def form_text_problems(values: Mapping[str, Any]) -> list[str]:
    """One message per value (option name -> value) that a form field cannot show, naming the option."""
    return [
        subject_problem(name, problem)
        for name, value in values.items()
        if (problem := text_problem(value))
    ]
