"""Network (LoRA) files and the families they fit, from the declarations alone (torch-free).

A LoRA file tells its network layout by its key names, and often not the family inside it: SD 1.x
and 2.x share the "sd" layout and differ only in widths. So the tools name what a file was made for
by a *model name*: a family's name when the file tells it ("sd1", "sdxl"), else its layout's name
("sd": SD 1.x or 2.x). A layout that only one family has carries that family's name ("sdxl"), so a
model name is always a family name or a layout name, never one that means two sets of families
(checked at import).
"""

from __future__ import annotations

from collections.abc import Iterable

from backend.families import DECLARATIONS, UnknownFamilyError, names
from backend.families.declaration import IMPL_DIFFUSERS, FamilyDeclaration


def layouts() -> tuple[str, ...]:
    """Every network layout, each once, in the families' order."""
    return tuple(dict.fromkeys(d.network_layout for d in DECLARATIONS if d.network_layout))


def image_layouts() -> tuple[str, ...]:
    """The layouts of the image families: those with sd-scripts (kohya) LoRA files, which the LoRA tools convert,
    merge and resize. Video LoRAs are PEFT files of their own (backend/video/network.py)."""
    return tuple(dict.fromkeys(d.network_layout for d in DECLARATIONS if d.network_layout and not d.is_video))


def _of_layout(layout: str) -> tuple[FamilyDeclaration, ...]:
    return tuple(d for d in DECLARATIONS if d.network_layout == layout)


def families_of(model: str) -> tuple[FamilyDeclaration, ...]:
    """The families a model name covers: a family itself, or every family of a layout."""
    found = tuple(d for d in DECLARATIONS if d.name == model) or _of_layout(model)
    if not found:
        raise UnknownFamilyError(f"unknown model {model!r}; expected one of {', '.join(model_names())}")
    return found


def model_names() -> tuple[str, ...]:
    """Every name a LoRA file's model can have: the families, then the layouts that are no family's name."""
    return (*names(), *(layout for layout in layouts() if layout not in names()))


def layout_of(model: str) -> str:
    return families_of(model)[0].network_layout


def label(model: str) -> str:
    """What users call the model ("SD 1.x", "SD 1.x/2.x" for the "sd" layout)."""
    found = families_of(model)
    return found[0].label if len(found) == 1 else found[0].network_label


def joined_labels(models: Iterable[str], conjunction: str) -> str:
    """'SD 1.x/2.x and SDXL': the models' labels, each once, in the families' order (`conjunction`
    in the user's language)."""
    wanted = set(models)
    ordered = [m for d in DECLARATIONS for m in (d.network_layout, d.name) if m in wanted]
    labels = list(dict.fromkeys(label(m) for m in ordered))
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} {conjunction} {labels[-1]}"


def fits(model: str, family: str) -> bool:
    """Whether a LoRA made for `model` (a family or a layout) fits a model of `family`."""
    return family in {d.name for d in families_of(model)}


def config_sets(model: str) -> tuple[str, ...]:
    """The shipped config sets whose layers name the model's network modules (one per family;
    the v-prediction variant of a family has the same layers as its base)."""
    return tuple(d.epsilon.config_set for d in families_of(model))


def narrowest(layout: str, matches: Iterable[FamilyDeclaration]) -> str:
    """The family when exactly one of the layout's families matches, else the layout's name."""
    found = {d.name for d in matches if d.network_layout == layout}
    every = _of_layout(layout)
    if len(every) == 1:
        return every[0].name
    return found.pop() if len(found) == 1 else layout


def of_text_encoder_width(layout: str, width: int) -> str:
    """The model a layout's first text encoder of this hidden size belongs to (SD 1.x: 768, 2.x: 1024)."""
    return narrowest(layout, (d for d in _of_layout(layout) if d.text_encoder_widths[:1] == (width,)))


def of_cross_attention_width(layout: str, width: int) -> str:
    return narrowest(layout, (d for d in _of_layout(layout) if d.cross_attention_width == width))


def of_base_model_version(version: str | None) -> str | None:
    """The model sd-scripts' `ss_base_model_version` names ("sd_v2_v": SD 2.x; "flux1": FLUX.1, dev or
    schnell, the layout's name), or None."""
    found = [decl for decl in DECLARATIONS
             if version in {facts.base_model_version for facts in (decl.epsilon, decl.v_prediction) if facts}]
    if not found:
        return None
    return found[0].name if len(found) == 1 else narrowest(found[0].network_layout, ())


def _key_evidence(layout: str, keys: list[str]) -> tuple[bool, int, int]:
    """How strongly key names point at a layout, strongest lowest: names of its own (not a U-Net's diffusers
    paths: SD 3.5's files carry diffusers' implementation tag but name SAI's layers), then the denoiser layers
    it names, then all layers it names."""
    first = _of_layout(layout)[0]
    matching = [key for key in keys if key.startswith(first.network_key_prefixes)]
    denoiser = sum(key.startswith("lora_unet_") for key in matching)
    by_diffusers_paths = first.lora_implementation == IMPL_DIFFUSERS and first.denoiser_folder == "unet"
    return by_diffusers_paths, -denoiser, -len(matching)


def layouts_of_network_keys(keys: Iterable[str]) -> list[str]:
    """The layouts whose key prefixes a network file's sd-scripts key names use, most likely first.

    A layout with names of its own (SDXL's U-Net by its original SGM paths, FLUX.1's blocks) comes before
    one named by diffusers paths, because files of every family may also name U-Net layers by their
    diffusers paths; among those, the one naming more denoiser layers (`lora_te1_` is SDXL's CLIP-L and
    FLUX.1's alike), then more layers; the families' order among equals."""
    keys = list(keys)
    matched = [layout for layout in layouts()
               if any(key.startswith(_of_layout(layout)[0].network_key_prefixes) for key in keys)]
    return sorted(matched, key=lambda layout: _key_evidence(layout, keys))


def undecided_layouts(keys: Iterable[str]) -> list[str]:
    """The likeliest layouts that key names cannot tell apart (a LoRA of CLIP-L alone: SDXL's or FLUX.1's)."""
    keys = list(keys)
    ranked = layouts_of_network_keys(keys)
    if not ranked:
        return []
    best = _key_evidence(ranked[0], keys)[:2]
    return [layout for layout in ranked if _key_evidence(layout, keys)[:2] == best]


def layout_of_network_keys(keys: Iterable[str]) -> str:
    """The most likely layout of a network file's sd-scripts key names; when none matches, the first layout."""
    return (layouts_of_network_keys(keys) or [layouts()[0]])[0]


def sd_scripts_v2(family: str) -> bool:
    """sd-scripts' `v2` (its --v2 flag, the `ss_v2` metadata) for a family's models."""
    return bool(families_of(family)[0].implied_options.get("v2", False))


def families_of_tool_flag(flag: str) -> tuple[str, ...]:
    """The families an sd-scripts tool flag says the models are: `--sdxl` names the family (it is
    sd-scripts' name for it), `--v2` selects the families whose training implies v2."""
    flag = flag.removeprefix("--")
    return tuple(d.name for d in DECLARATIONS if d.name == flag or d.implied_options.get(flag) is True)


def _check_names() -> None:
    """A layout named like a family must be that family's alone, or a model name would mean two things."""
    for layout in layouts():
        if layout in names() and [d.name for d in _of_layout(layout)] != [layout]:
            raise ValueError(f"network layout {layout!r} is also a family's name but not that family's alone")


_check_names()
