"""gui/ never names a model family: the model types come from backend/families (through the option
schema's `model_types()`), so a family added there needs no GUI change."""

from __future__ import annotations

import ast
from pathlib import Path

from backend.families import names

GUI = Path(__file__).resolve().parents[2] / "gui"
# File (relative to gui/) -> why it may hold a string equal to a family's name.
ALLOWED = {
    "kohya_import/tables.py": 'kohya_ss\'s own config keys ("sdxl" is its SDXL checkbox) and the families they pick',
}


def family_names_in(path: Path) -> list[str]:
    """'line: text' of each string literal in the file that equals a family's name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        f"{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names()
    ]


def test_no_string_in_gui_names_a_family() -> None:
    found = {}
    for path in sorted(GUI.rglob("*.py")):
        relative = path.relative_to(GUI).as_posix()
        if relative not in ALLOWED and (hits := family_names_in(path)):
            found[relative] = hits
    assert found == {}, "gui/ names model families; ask gui.training.model_types (the declared families) instead"


def test_the_allow_list_is_needed() -> None:
    """An allowed file that no longer names a family comes off the list."""
    assert all(family_names_in(GUI / relative) for relative in ALLOWED)
