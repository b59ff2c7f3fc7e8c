"""Model families as plug-ins: everything a family knows lives in its package here.

This module is torch-free (the GUI and the option schema read it): it lists the families'
declarations (`declaration.py`). The torch side, which the trainer and tools ask for tokenizing,
encoding, the training objective, conditioning extras, sampling pipelines and network block layouts,
is `backend.families.loaded.family(name)`. Adding a family: docs/adding-a-family.md.

Nothing outside this package (and the command entry points) branches on a family's name: it asks
the family (`tests/families/test_no_family_branches.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from backend.families.chroma.declaration import DECLARATIONS as _CHROMA
from backend.families.cogvideox.declaration import DECLARATIONS as _COGVIDEOX
from backend.families.declaration import FamilyDeclaration
from backend.families.flux.declaration import DECLARATIONS as _FLUX
from backend.families.hunyuan_video.declaration import DECLARATIONS as _HUNYUAN_VIDEO
from backend.families.ltx_video.declaration import DECLARATIONS as _LTX_VIDEO
from backend.families.sd3.declaration import DECLARATIONS as _SD3
from backend.families.sdxl.declaration import DECLARATIONS as _SDXL
from backend.families.stable_diffusion.declaration import DECLARATIONS as _SD
from backend.families.wan.declaration import DECLARATIONS as _WAN

# In the order the GUI offers them.
DECLARATIONS: tuple[FamilyDeclaration, ...] = (*_SD, *_SDXL, *_FLUX, *_CHROMA, *_SD3, *_LTX_VIDEO, *_WAN,
                                                *_HUNYUAN_VIDEO, *_COGVIDEOX)
_BY_NAME = {d.name: d for d in DECLARATIONS}
TRAINING_KINDS = ("lora", "finetune", "dreambooth", "textual_inversion", "leco")


class UnknownFamilyError(ValueError):
    pass


def names() -> tuple[str, ...]:
    return tuple(_BY_NAME)


def declaration(name: str) -> FamilyDeclaration:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownFamilyError(f"unknown model family {name!r}; expected one of {', '.join(_BY_NAME)}") from None


def label(name: str) -> str:
    return declaration(name).label


# The image trainers' kinds (sd-scripts' scripts, one per family and kind). Video families train with
# finetrainers' one command for every model (`VIDEO_COMMAND`, kind "video"), whose flags are finetrainers'
# own: the sd-scripts option sets derived below (`commands_where`) never include it.
# "dreambooth": kohya_ss's DreamBooth tab, a fine-tune from '<repeats>_<class>' folders with regularization images;
# SD 1.x/2.x have a command of its own (sd-scripts' train_db), the others run it with their fine-tune command.
# "textual_inversion": new token embeddings trained in a frozen model (SD 1.x/2.x and SDXL, as in sd-scripts).
# "leco": sd-scripts' train_leco / sdxl_train_leco, a U-Net LoRA trained from the model's own predictions on the
# prompts of a prompt file, no images (SD 1.x/2.x and SDXL). Not an image kind: its commands take no dataset
# options, so the option sets derived from the image kinds (`commands_where`) leave them out; their options are
# their LoRA command's, as far as sd-scripts' LECO scripts take them (backend/options/defs/leco.py).
IMAGE_KINDS = tuple(kind for kind in TRAINING_KINDS if kind != "leco")
VIDEO_KIND = "video"
VIDEO_COMMAND = "train_video"


def commands(kind: str | None = None) -> tuple[str, ...]:
    """Every image training command (of one kind), each once, in the families' order; kind "video":
    the video command (declared by the video families)."""
    found: list[str] = []
    for decl in DECLARATIONS:
        for each, command in decl.commands.items():
            if (each == kind if kind is not None else each in IMAGE_KINDS) and command not in found:
                found.append(command)
    return tuple(found)


def commands_where(test: Callable[[FamilyDeclaration], bool]) -> tuple[str, ...]:
    """Every image training command of the families passing `test`, each once, in the families' order."""
    found: list[str] = []
    for decl in DECLARATIONS:
        if test(decl):
            found += [command for kind, command in decl.commands.items() if kind in IMAGE_KINDS]
    return tuple(dict.fromkeys(found))


def for_command(command: str) -> tuple[FamilyDeclaration, ...]:
    """The families a training command trains (train_network: SD 1.x and 2.x)."""
    return tuple(d for d in DECLARATIONS if command in d.commands.values())


def default_for_command(command: str) -> FamilyDeclaration | None:
    """The family a command trains when no model tells (its first)."""
    found = for_command(command)
    return found[0] if found else None


def same_network_layout(first: str, second: str) -> bool:
    """Whether a network trained on one family's model fits the other's (SD 1.x and 2.x share names)."""
    return declaration(first).network_layout == declaration(second).network_layout


def model_file_options() -> tuple[str, ...]:
    """Every option naming a model part given as a file of its own (`FamilyDeclaration.model_files`), once."""
    found: list[str] = []
    for decl in DECLARATIONS:
        found += [name for name in decl.model_files if name not in found]
    return tuple(found)


def config_sets() -> tuple[str, ...]:
    """Every shipped config set ("sd15", "sd2", "sd2-v", "sdxl"), each once."""
    found: list[str] = []
    for decl in DECLARATIONS:
        for facts in (decl.epsilon, decl.v_prediction):
            if facts is not None and facts.config_set not in found:
                found.append(facts.config_set)
    return tuple(found)


def of_config_set(config_set: str) -> FamilyDeclaration:
    """The family whose real model a shipped config set describes."""
    for decl in DECLARATIONS:
        if config_set in {decl.epsilon.config_set, decl.v_prediction.config_set if decl.v_prediction else None}:
            return decl
    raise UnknownFamilyError(f"unknown architecture {config_set!r}; expected one of {', '.join(config_sets())}")


def model_types() -> list[dict]:
    """The model types the GUI offers, as the schema dump carries them; `unused_options`: the options its
    commands take for other families only (Chroma: FLUX.1's --clip_l), which the GUI hides for it."""
    found = []
    for decl in DECLARATIONS:
        siblings = [d for d in DECLARATIONS if set(d.commands.values()) & set(decl.commands.values())]
        others = dict.fromkeys(name for d in siblings for name in d.own_options if name not in decl.own_options)
        found.append({**decl.as_json(), "unused_options": list(others)})
    return found


def joint_label(found: Iterable[FamilyDeclaration]) -> str:
    """One label for several families, their shared first words said once ("SD 1.x/2.x")."""
    words = [d.label.split(" ") for d in found]
    if len(words) <= 1:
        return " ".join(words[0]) if words else ""
    shared = 0
    while all(len(each) > shared + 1 and each[shared] == words[0][shared] for each in words):
        shared += 1
    return " ".join([*words[0][:shared], "/".join(" ".join(each[shared:]) for each in words)])


def of_pipeline_index(index: Mapping[str, Any]) -> FamilyDeclaration:
    """The family whose diffusers folder layout a model_index.json describes: of those whose pipeline
    class it names or whose text encoders it lists, the one with the most text encoders (SDXL's folders
    hold SD's too), then one whose class it names (FLUX.1 and SDXL folders both hold two text encoders:
    the class decides), then the most specific class; the first declared where several share a layout
    (their configs tell them apart: `FamilyDeclaration.detection`), and where none matches."""
    class_name = str(index.get("_class_name", ""))

    def named(d: FamilyDeclaration) -> int:  # the length of its class prefix the index names, else 0
        return len(d.pipeline_class_prefix) if d.pipeline_class_prefix and class_name.startswith(
            d.pipeline_class_prefix) else 0

    found = [d for d in DECLARATIONS if named(d) or all(name in index for name in d.text_encoder_folders)]
    return max(found, key=lambda d: (len(d.text_encoder_folders), named(d) > 0, named(d)), default=DECLARATIONS[0])
