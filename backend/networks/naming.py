"""Which modules get LoRA, and the sd-scripts key names they are saved under.

A key is `<prefix>_<module path with "." -> "_">.<param>`, prefix `lora_unet`, `lora_te` (one text
encoder) or `lora_te1`/`lora_te2` (SDXL). The module path is the one sd-scripts' own models have:

- U-Net, SD 1.x/2.x: diffusers paths (`down_blocks.0.attentions.0...`), which is what we train.
- U-Net, SDXL: sd-scripts trains the original SGM U-Net, so files name `input_blocks.4.1...`. We
  train diffusers' `UNet2DConditionModel`, so the caller injects `unet_module_name`, a mapper from
  a diffusers module path to the SGM path (backend/models owns that table).
- Text encoders: `text_model.encoder.layers.0.self_attn.q_proj`. transformers 5 flattened
  `CLIPTextModel` (no `text_model` child any more) while `CLIPTextModelWithProjection` kept it, so
  paths of a model without a `text_model` child get that prefix back.

Targets are exactly sd-scripts': every Linear and Conv2d inside the listed classes; 3x3 convs only
when conv LoRA is on (those classes also add their Linear `time_emb_proj` and 1x1 `conv_shortcut`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from torch import nn

from backend.families.loaded import family_of_modules
from backend.families.network_targets import NetworkTargets

UNET_PREFIX = "lora_unet"
TEXT_ENCODER_PREFIX = "lora_te"


ModuleNameMap = Callable[[str], str]
LayerKind = Literal["linear", "conv1x1", "conv"]


def identity_name(path: str) -> str:
    return path


def lora_name(prefix: str, module_path: str) -> str:
    return f"{prefix}_{module_path.replace('.', '_')}"


def text_encoder_prefixes(count: int) -> list[str]:
    if count == 1:
        return [TEXT_ENCODER_PREFIX]
    return [f"{TEXT_ENCODER_PREFIX}{i + 1}" for i in range(count)]


def family_text_encoder_prefixes(unet: nn.Module | None, count: int) -> list[str]:
    """The text encoders' key prefixes for this denoiser's family: its network layout's (FLUX.1: `lora_te1`,
    `lora_te3`), else by the count as sd-scripts' networks/lora.py names them."""
    layout = family_of_modules(unet, count).network_layout if unet is not None else None
    return layout.text_encoder_prefixes(count) if layout is not None else text_encoder_prefixes(count)


def text_encoder_module_name(text_encoder: nn.Module) -> ModuleNameMap:
    """Map a path inside `text_encoder` to the path the CLIPTextModel of transformers 4 had."""
    if hasattr(text_encoder, "text_model"):
        return identity_name
    return lambda path: f"text_model.{path}"


def as_list(text_encoder: nn.Module | Sequence[nn.Module] | None) -> list[nn.Module]:
    if text_encoder is None:
        return []
    if isinstance(text_encoder, nn.Module):
        return [text_encoder]
    return [te for te in text_encoder if te is not None]


def layer_kind(module: nn.Module) -> LayerKind | None:
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.Conv2d):
        return "conv1x1" if tuple(module.kernel_size) == (1, 1) else "conv"
    return None


@dataclass(frozen=True)
class Target:
    """One layer that can carry LoRA."""

    lora_name: str  # the sd-scripts name, key prefix in files
    diffusers_name: str  # the same layer named by our model's own path (for files named that way)
    module: nn.Module
    kind: LayerKind
    text_encoder_index: int | None  # None for the U-Net
    # Layers that stand for one fused layer of the original model, fed the same input (FLUX.1's qkv): one
    # LoRA module over all of them (backend/networks/fused.py). Empty: just `module`.
    members: tuple[nn.Module, ...] = ()
    # The original layer's output is ours with its two halves swapped (SD 3.5's last context modulation:
    # (shift, scale) there, (scale, shift) in diffusers): files keep the original order (backend/networks/swapped.py).
    swapped_halves: bool = False


def find_targets(
    root: nn.Module,
    prefix: str,
    target_classes: Sequence[str],
    module_name: ModuleNameMap,
    text_encoder_index: int | None = None,
) -> Iterator[Target]:
    """Every Linear/Conv2d inside modules whose class name is in `target_classes`, in model order."""
    seen: set[str] = set()
    for parent_path, parent in root.named_modules():
        if type(parent).__name__ not in target_classes:
            continue
        for child_path, child in parent.named_modules():
            kind = layer_kind(child)
            if kind is None:
                continue
            path = f"{parent_path}.{child_path}" if parent_path else child_path
            if path in seen:
                continue
            seen.add(path)
            yield Target(
                lora_name=lora_name(prefix, module_name(path)),
                diffusers_name=lora_name(prefix, path),
                module=child,
                kind=kind,
                text_encoder_index=text_encoder_index,
            )


def text_encoder_targets(text_encoders: Sequence[nn.Module], classes: NetworkTargets) -> list[Target]:
    targets: list[Target] = []
    prefixes = text_encoder_prefixes(len(text_encoders))
    for index, (te, prefix) in enumerate(zip(text_encoders, prefixes, strict=True)):
        targets += find_targets(te, prefix, classes.text_encoder, text_encoder_module_name(te), index)
    return targets


def unet_targets(unet: nn.Module, with_conv: bool, unet_module_name: ModuleNameMap,
                 classes: NetworkTargets) -> list[Target]:
    wrapped = classes.denoiser + (classes.denoiser_conv if with_conv else ())
    return list(find_targets(unet, UNET_PREFIX, wrapped, unet_module_name))


def resolve_unet_module_name(unet: nn.Module | None, unet_module_name: ModuleNameMap | None) -> ModuleNameMap:
    """The injected mapper, else the names the U-Net's family gives network files (SDXL: the original
    SGM paths sd-scripts-era tools expect), else the diffusers paths."""
    if unet_module_name is not None:
        return unet_module_name
    if unet is None:
        return identity_name
    return family_of_modules(unet, 0).network_module_names(unet) or identity_name
