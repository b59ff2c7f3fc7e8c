"""`convert_lora --to comfyui`: a video LoRA in the diffusers/PEFT layout (`transformer.<diffusers path>.lora_A`
/ `.lora_B`, what train_video and finetrainers write) -> `diffusion_model.<original path>.lora_A/lora_B`, the
names ComfyUI maps for every model (its loader does not map diffusers-named Wan keys).

The family is --model_type, else the video family whose transformer (built from its shipped config on the
meta device) has every module the file names. Original names come from the family
(`ModelFamily.native_module_name`). A file whose adapter metadata (`lora_adapter_metadata`, diffusers'
`save_lora_weights`) gives lora_alpha != r gets alpha / r baked into lora_B, since ComfyUI applies a
PEFT-named file at scale 1; our own files have it baked already.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from backend import families
from backend.families.loaded import family
from backend.messages import msg
from backend.networks.weights_io import load_weights_file, save_weights_file
from backend.tools.lora.tool_cli import ToolError

PREFIX = "transformer."
SUFFIXES = (".lora_A.weight", ".lora_B.weight")


def module_paths(tensors: dict[str, torch.Tensor], source: str) -> set[str]:
    odd = [k for k in tensors if not (k.startswith(PREFIX) and k.endswith(SUFFIXES))]
    if odd or not tensors:
        raise ToolError(msg(
            "tool.comfyui_not_peft", "{path}: --to comfyui converts video LoRAs in the diffusers/PEFT layout "
            "(transformer.<module>.lora_A/lora_B.weight, what train_video and finetrainers write); {key} is not one",
            path=source, key=odd[0] if odd else "-",
        ))
    return {k[len(PREFIX): -len(SUFFIXES[0])] for k in tensors}


def _transformer_modules(decl: families.FamilyDeclaration) -> set[str]:
    import diffusers
    from accelerate import init_empty_weights

    from backend.models.configs import load_arch_configs

    configs = load_arch_configs(decl.epsilon.config_set)
    cls = getattr(diffusers, configs.model_index[decl.denoiser_folder][1])
    with init_empty_weights():
        model = cls.from_config(configs.unet)
    return {name for name, _ in model.named_modules()}


def video_family(paths: set[str], model_type: str | None, source: str) -> str:
    video = [d for d in families.DECLARATIONS if d.is_video]
    if model_type:
        if model_type not in {d.name for d in video}:
            raise ToolError(msg("tool.comfyui_not_video", "--to comfyui is for video LoRAs; --model_type {name} is "
                                "not a video family ({video})", name=model_type,
                                video=", ".join(d.name for d in video)))
        return model_type
    fitting = [d.name for d in video if paths <= _transformer_modules(d)]
    if len(fitting) != 1:
        raise ToolError(msg("tool.comfyui_family", "{path}: its modules fit {count} video families' transformers; "
                            "name the family with --model_type ({video})", path=source, count=len(fitting),
                            video=", ".join(d.name for d in video)))
    return fitting[0]


def alpha_scale(metadata: dict[str, str]) -> float:
    """lora_alpha / r of diffusers' adapter metadata (1 when there is none)."""
    try:
        config: Any = json.loads(metadata.get("lora_adapter_metadata", "{}"))
        config = config.get("transformer", config)
        return float(config.get("lora_alpha", config.get("r", 1))) / float(config.get("r", 1))
    except (ValueError, TypeError, AttributeError, ZeroDivisionError):
        return 1.0


def convert_to_comfyui(args: argparse.Namespace, dtype: torch.dtype | None) -> None:
    tensors, metadata = load_weights_file(args.model)
    paths = module_paths(tensors, args.model)
    name = video_family(paths, args.model_type, args.model)
    torch_family = family(name)
    scale = alpha_scale(metadata)
    out: dict[str, torch.Tensor] = {}
    for path in sorted(paths):
        native = f"diffusion_model.{torch_family.native_module_name(path)}"
        out[f"{native}.lora_A.weight"] = tensors[f"{PREFIX}{path}.lora_A.weight"]
        up = tensors[f"{PREFIX}{path}.lora_B.weight"]
        out[f"{native}.lora_B.weight"] = up if scale == 1.0 else (up.float() * scale).to(up.dtype)
    kept = {k: v for k, v in metadata.items() if k != "lora_adapter_metadata"}
    save_weights_file(args.save_to, out, dtype, kept)
    print(msg("tool.converted_comfyui", "converted {count} modules of a {family} LoRA to ComfyUI's names "
              "(diffusion_model.<original module>); saved {path}", count=len(paths), family=families.label(name),
              path=args.save_to))
