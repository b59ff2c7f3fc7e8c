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
their text encoders differ only in depth, so "sd" (1.x or 2.x, unknown) uses both tables. A table is
named by a model name of `backend.families.network_files` (a family, or a network layout). The
denoiser's component is the family's denoiser folder (`unet`, FLUX.1's `transformer`).

The tables are the full-size architectures'; a smaller model of the family built the same way has the
same names, except that which block is last (SD 3.5's halves-swapped modulation) follows its depth.

A layer the original model fuses (FLUX.1's qkv, its single blocks' linear1) is one sd-scripts module
over several diffusers layers: `fused` lists their keys and row counts in the order their weights
stack, and `member_of` names the module a member key belongs to.

The same tables tell which layout a diffusers-layout file is for: a key lies in a part of the model
(its path or one of its parents, `unet.down_blocks.0.attentions`) that only one layout's models have.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from backend.families import network_files, of_config_set
from backend.tools.lora.lora_layers import iter_lora_layers, meta_models


@dataclass(frozen=True)
class NameTable:
    family: str
    to_diffusers: dict[str, str]  # lora name (canonical or alias) -> "<component>.<path>"
    to_lora: dict[str, str]  # "<component>.<path>" -> canonical lora name
    # lora name of a fused layer -> ((member key, its rows), ...) in the order the rows stack
    fused: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    member_of: dict[str, str] = field(default_factory=dict)  # member key -> the fused layer's lora name
    # lora names of layers whose output halves the original orders the other way round (SD 3.5's
    # modulations): files keep the original's rows, diffusers' layout its own
    swapped: frozenset[str] = frozenset()
    # swapped in some of the layout's models only (SD 3.5 Medium's last block is 23, Large's 37): the model
    # must be named to convert them
    ambiguous: frozenset[str] = frozenset()

    @property
    def label(self) -> str:
        return network_files.label(self.family)


_Table = tuple[dict[str, str], dict[str, str], dict[str, tuple[tuple[str, int], ...]], frozenset[str]]


@lru_cache(maxsize=8)
def _arch_table(arch: str) -> _Table:
    denoiser, text_encoders = meta_models(arch)
    family = of_config_set(arch)
    components = family.text_encoder_folders
    paths = {id(module): path for path, module in denoiser.named_modules()}
    to_diffusers: dict[str, str] = {}
    to_lora: dict[str, str] = {}
    fused: dict[str, tuple[tuple[str, int], ...]] = {}
    swapped: set[str] = set()
    for ref in iter_lora_layers(denoiser, text_encoders):
        if ref.swapped_halves:
            swapped.add(ref.name)
        if ref.members:  # only the denoiser's layers are fused
            fused[ref.name] = tuple((f"{family.denoiser_folder}.{paths[id(member)]}", int(member.weight.shape[0]))
                                    for member in ref.members)
            continue
        component = family.denoiser_folder if ref.text_encoder_index is None else components[ref.text_encoder_index]
        key = f"{component}.{ref.path}"
        to_diffusers[ref.name] = key
        if ref.canonical:
            to_lora[key] = ref.name
    return to_diffusers, to_lora, fused, frozenset(swapped)


def name_table(family: str) -> NameTable:
    """The table of a model name: a family ("sd1", "sdxl") or a network layout ("sd": SD 1.x or 2.x)."""
    to_diffusers: dict[str, str] = {}
    to_lora: dict[str, str] = {}
    fused: dict[str, tuple[tuple[str, int], ...]] = {}
    swapped_per_arch: list[frozenset[str]] = []
    for arch in network_files.config_sets(family):  # the first family's name wins (FLUX.1's T5 folder, not Chroma's)
        forward, backward, arch_fused, arch_swapped = _arch_table(arch)
        swapped_per_arch.append(arch_swapped)
        to_diffusers.update({k: v for k, v in forward.items() if k not in to_diffusers})
        to_lora.update({k: v for k, v in backward.items() if k not in to_lora})
        fused.update({k: v for k, v in arch_fused.items() if k not in fused})
    member_of = {key: name for name, members in fused.items() for key, _ in members}
    swapped = frozenset.intersection(*swapped_per_arch) if swapped_per_arch else frozenset()
    ambiguous = frozenset().union(*swapped_per_arch) - swapped
    return NameTable(family, to_diffusers, to_lora, fused, member_of, swapped, ambiguous)


def _parts(key: str) -> set[str]:
    """The key's path and every parent path ("unet", "unet.down_blocks", ...)."""
    pieces = key.split(".")
    return {".".join(pieces[:end]) for end in range(1, len(pieces) + 1)}


@lru_cache(maxsize=1)
def _layout_parts() -> dict[str, frozenset[str]]:
    """Per network layout, the module paths (and parents) that no other layout's models have."""
    parts = {layout: set().union(*map(_parts, [*table.to_lora, *table.member_of]))
             for layout in network_files.image_layouts() for table in [name_table(layout)]}
    return {layout: frozenset(own - set().union(*(other for name, other in parts.items() if name != layout)))
            for layout, own in parts.items()}


def layouts_of_keys(keys: Iterable[str]) -> list[str]:
    """The layouts whose own parts diffusers-layout module keys ("<component>.<path>") lie in, in
    the families' order: none when every key is of parts all layouts have."""
    found = {layout for key in keys for layout, own in _layout_parts().items() if _parts(key) & own}
    return [layout for layout in network_files.image_layouts() if layout in found]
