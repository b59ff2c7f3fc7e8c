"""LoRA module names in the sd-scripts layout <-> module paths in the diffusers layout.

sd-scripts names a module `lora_unet_<path>` / `lora_te[1|2]_<path>` with the dots of the path
replaced by `_` (SDXL U-Net: the original SGM path); diffusers names it `<component>.<path>` with
the dots kept (`unet.down_blocks.0...`, `text_encoder.text_model.encoder...`, SDXL's second text
encoder `text_encoder_2.`). Underscores cannot be turned back into dots by rule
(`transformer_blocks`, `to_q`), so both directions come from enumerating the layers of the shipped
architecture, built on the meta device (`lora_layers.iter_lora_layers`): a name that is not a layer
of the family is reported, never guessed.

The shipped full-size architectures hold every layer name of smaller models of their family built
the same way (the tiny test models keep block types, levels and `layers_per_block`; see
`tiny_model_configs`), so the full-size table serves them too. SD 1.x and 2.x share U-Net names;
their text encoders differ only in depth, so "sd" (1.x or 2.x, unknown) uses both tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from backend.models.configs import FAMILY_LABELS, TEXT_ENCODER_FOLDERS, family_of_arch
from backend.tools.lora.lora_layers import iter_lora_layers, meta_models

ARCHS_OF_FAMILY = {"sd1": ("sd15",), "sd2": ("sd2",), "sd": ("sd15", "sd2"), "sdxl": ("sdxl",)}
FAMILY_NAMES = {**FAMILY_LABELS, "sd": "SD 1.x/2.x"}


@dataclass(frozen=True)
class NameTable:
    family: str
    to_diffusers: dict[str, str]  # lora name (canonical or alias) -> "<component>.<path>"
    to_lora: dict[str, str]  # "<component>.<path>" -> canonical lora name

    @property
    def label(self) -> str:
        return FAMILY_NAMES[self.family]


@lru_cache(maxsize=4)
def _arch_table(arch: str) -> tuple[dict[str, str], dict[str, str]]:
    unet, text_encoders = meta_models(arch)
    components = TEXT_ENCODER_FOLDERS[family_of_arch(arch)]
    to_diffusers: dict[str, str] = {}
    to_lora: dict[str, str] = {}
    for ref in iter_lora_layers(unet, text_encoders):
        component = "unet" if ref.text_encoder_index is None else components[ref.text_encoder_index]
        key = f"{component}.{ref.path}"
        to_diffusers[ref.name] = key
        if ref.canonical:
            to_lora[key] = ref.name
    return to_diffusers, to_lora


def name_table(family: str) -> NameTable:
    """The table of `family` ("sd1", "sd2", "sd" or "sdxl")."""
    to_diffusers: dict[str, str] = {}
    to_lora: dict[str, str] = {}
    for arch in ARCHS_OF_FAMILY[family]:
        forward, backward = _arch_table(arch)
        to_diffusers.update(forward)
        to_lora.update(backward)
    return NameTable(family, to_diffusers, to_lora)
