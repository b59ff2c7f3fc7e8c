"""Nothing outside `backend/families` (and the command entry points) tests a family's name: it asks
the family (issue 16). Read with `ast`: a string constant equal to a family name ("sd1", "sd2",
"sdxl", ...) or an identifier naming one (`is_sdxl`, `SDXL_COMMANDS`) is a branch on the family.

Rooms not yet moved onto the seam are listed in NOT_YET_ON_THE_SEAM with what keeps them there; the
test also fails when a listed file no longer needs its entry, so the list only shrinks.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from backend.families import names

BACKEND = Path(__file__).resolve().parents[2] / "backend"
ENTRY_POINTS = {"train_network.py", "sdxl_train_network.py", "fine_tune.py", "sdxl_train.py"}

NOT_YET_ON_THE_SEAM = {
    # sd-scripts' own argument groups: its library names one `sdxl` (add_sdxl_training_arguments)
    "options/sd_scripts_flags.py": "sd-scripts' argument group names (its 'sdxl' group)",
    # sd-scripts' own choices for its flags, recorded as its parsers have them (--model_type flux|chroma)
    "options/sd_scripts_types.py": "sd-scripts' --model_type choices (its 'chroma')",
    # finetrainers' own --model_name choices, recorded as its parser has them (its 'ltx_video', 'wan')
    "options/finetrainers_flags.py": "finetrainers' --model_name choices (its 'ltx_video', 'wan')",
    # sd-scripts' own tool flags, named after the model they say (its --sdxl; --v2 is no family's name)
    "tools/lora/lora_extract.py": "reads sd-scripts' --sdxl tool flag (args.sdxl)",
    "tools/lora/extract_lora_from_models.py": "checks sd-scripts' --sdxl tool flag (args.sdxl) against --v2",
    "tools/flags/lora.py": "declares sd-scripts' --sdxl flag of extract_lora_from_models",
}

_FAMILY_IDENTIFIER = re.compile(r"(^|_)(sdxl|sd1|sd2)($|_)", re.IGNORECASE)


def _family_mentions(path: Path) -> list[str]:
    family_names = set(names())
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in family_names:
            found.append(f"{node.lineno}: {node.value!r}")
        elif isinstance(node, ast.Name) and _FAMILY_IDENTIFIER.search(node.id):
            found.append(f"{node.lineno}: {node.id}")
        elif isinstance(node, ast.Attribute) and _FAMILY_IDENTIFIER.search(node.attr):
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.arg) and _FAMILY_IDENTIFIER.search(node.arg):
            found.append(f"{node.lineno}: parameter {node.arg}")
        elif isinstance(node, ast.FunctionDef | ast.ClassDef) and _FAMILY_IDENTIFIER.search(node.name):
            found.append(f"{node.lineno}: def {node.name}")
    return found


def _checked_files() -> list[Path]:
    return [path for path in sorted(BACKEND.rglob("*.py"))
            if path.relative_to(BACKEND).parts[0] != "families"
            and not (path.parent == BACKEND and path.name in ENTRY_POINTS)]


def test_no_family_name_outside_the_families() -> None:
    offenders = {}
    for path in _checked_files():
        relative = path.relative_to(BACKEND).as_posix()
        if relative in NOT_YET_ON_THE_SEAM:
            continue
        mentions = _family_mentions(path)
        if mentions:
            offenders[relative] = mentions
    assert not offenders, f"ask backend.families instead of testing a family's name: {offenders}"


def test_the_not_yet_list_only_shrinks() -> None:
    stale = [name for name in NOT_YET_ON_THE_SEAM if not _family_mentions(BACKEND / name)]
    assert not stale, f"these files no longer name a family; remove them from NOT_YET_ON_THE_SEAM: {stale}"


def test_the_check_sees_a_branch(tmp_path: Path) -> None:
    sample = tmp_path / "room.py"
    sample.write_text('def f(components, is_sdxl):\n    return components.family == "sdxl"\n')
    assert sorted(_family_mentions(sample)) == ["1: parameter is_sdxl", "2: 'sdxl'"]
