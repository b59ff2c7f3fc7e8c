"""The LECO page's "new prompt file" action: a commented starting prompt TOML (sd-scripts' two formats, an erase
entry or a slider target) written where the user says, else beside the run's outputs, never over a file.

kohya_ss's LECO tab has only a path field for this file, so a first-time user starts from sd-scripts' docs. The
comments are in the UI language; the prompts stay English (the text encoder reads them). The page's Preflight
reads the file with the trainer's own reader (backend/training/leco_prompts.py), so what it says about a file
edited afterwards is what the run would say.

Pure functions on named values (no gradio): the page wires them (gui/training/lora_tab.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backend import families
from gui.i18n import Translator
from gui.markdown_text import md_t

TEMPLATES = ("erase", "slider")
SUFFIX = ".toml"
DEFAULT_STEM = "leco"

# The TOML below each template's comment block. {resolution} is the chosen model type's native size.
BODIES = {
    "erase": """\
[[prompts]]
target = "van gogh"
positive = "van gogh"
unconditional = ""
neutral = ""
action = "erase"
guidance_scale = 1.0
resolution = {resolution}
batch_size = 1
multiplier = 1.0
weight = 1.0
""",
    "slider": """\
guidance_scale = 1.0
resolution = {resolution}
batch_size = 1
neutrals = ["", "photo of a person", "portrait of a person"]

[[targets]]
target_class = "person"
positive = "smiling person"
negative = "expressionless person"
multiplier = 1.0
weight = 1.0
""",
}


@dataclass(frozen=True)
class NewPromptFile:
    path: Path | None  # the file written; None when nothing was
    message: str  # Markdown in the UI language


def template_text(template: str, t: Translator, resolution: int = 512) -> str:
    """The file's text: the template's comment block (UI language, `# ` lines) over its TOML."""
    comment = "\n".join(f"# {line}".rstrip() for line in t.t(f"ui.leco_prompts.comment_{template}").splitlines())
    return f"{comment}\n\n{BODIES[template].format(resolution=resolution)}"


def native_resolution(model_type: str | None) -> int:
    """The side the model type's base model was trained at (the prompt file's `resolution`); 512 when unknown."""
    try:
        return families.declaration(model_type or "").native_resolution(False)
    except (KeyError, ValueError):
        return 512


def target_path(where: str, output_dir: str, output_name: str) -> Path | None:
    """Where the file goes: `where` when it names a .toml file; else the folder `where` (or, empty, the output
    folder) with `<output_name>_prompts.toml`, beside the LoRA files the run writes. None: no place given."""
    where, output_dir = _path_text(where), _path_text(output_dir)
    if where.lower().endswith(SUFFIX):
        return Path(where).expanduser()
    folder = where or output_dir
    if not folder:
        return None
    stem = Path(_path_text(output_name) or DEFAULT_STEM).name or DEFAULT_STEM
    return Path(folder).expanduser() / f"{stem}_prompts{SUFFIX}"


def new_prompt_file(
    template: str, where: str, output_dir: str, output_name: str, t: Translator, model_type: str | None = None
) -> NewPromptFile:
    """Write the starting file of `template` ("erase" or "slider"); an existing file is left as it is."""
    target = target_path(where, output_dir, output_name)
    if target is None:
        return NewPromptFile(None, t.t("ui.leco_prompts.where_needed"))
    target = target.absolute()
    if target.exists():
        return NewPromptFile(None, md_t(t, "ui.leco_prompts.exists", path=target))
    text = template_text(template if template in TEMPLATES else TEMPLATES[0], t, native_resolution(model_type))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "x", encoding="utf-8", newline="\n") as file:  # "x": never over a file made meanwhile
            file.write(text)
    except FileExistsError:
        return NewPromptFile(None, md_t(t, "ui.leco_prompts.exists", path=target))
    except OSError as error:
        return NewPromptFile(None, md_t(t, "ui.leco_prompts.not_written", path=target,
                                        error=error.strerror or error))  # fmt: skip
    return NewPromptFile(target, md_t(t, "ui.leco_prompts.written", path=target))


def _path_text(text: str | None) -> str:
    return (text or "").strip().strip('"').strip("'").strip()
