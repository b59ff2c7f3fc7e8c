"""The base checkpoint's layer behind each LoRA module, for recipes that measure a LoRA against the
weights it modifies (resize_lora's `fro_ckpt` / `spn_ckpt`).

The checkpoint (a diffusers folder or a single file; FLUX.1's BFL file is its transformer alone) is
checked against the LoRA's family before any weight is read, then loaded in float16: only per-layer
norms are needed, which float16 storage changes by far less than any threshold can resolve, and a
real SDXL then takes half the memory. Layers are found by the names LoRA files use (`lora_layers`:
sd-scripts names, SDXL U-Net by SGM and by diffusers paths; a fused FLUX.1 layer is its members'
weights stacked by rows). Every module must have its layer, of the module's shape: a norm taken
from the wrong layer would silently choose wrong ranks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from backend.messages import msg
from backend.tools.lora.lora_files import LoraFile
from backend.tools.lora.lora_layers import layer_refs
from backend.tools.lora.merge_into_model import (
    check_family,
    detect_checkpoint,
    load_weights,
    text_encoder_modules,
)
from backend.tools.lora.tool_cli import ToolError

NORMS = {"fro": "Frobenius", "spectral": "spectral"}


def module_weight_numel(params: Mapping[str, torch.Tensor]) -> int:
    """Element count of the layer weight a LoRA/LoCon module's delta has."""
    up, down = params["lora_up.weight"], params["lora_down.weight"]
    return int(up.shape[0]) * math.prod(down.shape[1:])


def layer_norm(weight: torch.Tensor, kind: str, device: str) -> float:
    """Frobenius or spectral norm of a Linear/Conv2d weight, flattened to `[out, in * kh * kw]`."""
    matrix = weight.detach().to(device, torch.float32).flatten(1)
    return float(torch.linalg.matrix_norm(matrix, ord="fro" if kind == "fro" else 2))


@torch.no_grad()
def base_layer_norms(base_model: str, lora: LoraFile, kind: str, device: str = "cpu") -> dict[str, float]:
    """{module name: norm of the base layer it modifies}; every module of `lora` must have one."""
    if kind not in NORMS:
        raise ValueError(f"unknown norm {kind!r}; expected one of {', '.join(NORMS)}")
    info = detect_checkpoint(base_model)
    check_family(lora, info.family, f"--base_model {base_model} ({info.evidence})")
    components = load_weights(info, torch.float16)
    layers = layer_refs(components.unet, components.text_encoders)
    missing = sorted(name for name in lora.modules if name not in layers)
    absent = text_encoder_modules(missing) if not components.text_encoders else []
    if absent:  # a model file without text encoders (FLUX.1's transformer file)
        raise ToolError(msg(
            "tool.base_model_no_text_encoders", "{path} has {count} text-encoder modules, but --base_model {model} "
            "holds no text encoders (a transformer file): pass the model's diffusers folder as --base_model",
            path=lora.path, count=len(absent), model=base_model,
        ))
    if missing:
        raise ToolError(msg(
            "tool.base_model_missing_layers", "{count} modules of {path} have no layer in {model}, for example {first}; "
            "pass the checkpoint the LoRA was trained on", count=len(missing), path=lora.path, model=base_model,
            first=missing[0],
        ))
    norms: dict[str, float] = {}
    for name, params in lora.modules.items():
        weight = layers[name].weight()  # a fused layer (FLUX.1's qkv): its members' weights stacked
        if weight.numel() != module_weight_numel(params):
            raise ToolError(msg(
                "tool.base_model_layer_shape", "{path}: module {name} does not fit the layer of {model} (layer weight "
                "{shape}); pass the checkpoint the LoRA was trained on", path=lora.path, name=name, model=base_model,
                shape=tuple(weight.shape),
            ))
        norms[name] = layer_norm(weight, kind, device)
    return norms
