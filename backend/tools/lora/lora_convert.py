"""Converting a LoRA between the diffusers/PEFT and the sd-scripts layouts: the work behind
`python -m backend.tools.convert_lora` (whose docstring describes the layouts). A file with NaN/inf
weights is refused: a conversion would only spread it.
"""

from __future__ import annotations

import argparse
import collections
from collections.abc import Mapping

import torch

from backend.families import names, network_files
from backend.messages import msg
from backend.networks.weights_io import is_safetensors, save_weights_file
from backend.tools.lora.lora_diffusers import (
    ADAPTER_METADATA_KEY,
    diffusers_family,
    from_sd_scripts,
    is_diffusers_layout,
    parse_keys,
    resolve_alphas,
    to_sd_scripts,
)
from backend.tools.lora.lora_diffusers_names import name_table
from backend.tools.lora.lora_files import (
    check_finite_modules,
    check_finite_result,
    load_lora,
    read_weights,
    save_lora,
)
from backend.tools.lora.tool_cli import ToolError, dtype_of
from backend.training.metadata import base_model_version

Modules = dict[str, dict[str, torch.Tensor]]


def _family(detected: str | None, requested: str | None, path: str) -> str:
    if requested is None:
        if detected is None:
            models = network_files.joined_labels(network_files.image_layouts(), msg("tool.word_or", "or"))
            raise ToolError(msg("tool.convert_model_unknown", "{path}: cannot tell whether this LoRA is for {models}; "
                                "pass --model_type", path=path, models=models))
        return detected
    if detected is not None and not network_files.fits(detected, requested):
        raise ToolError(msg(
            "tool.convert_family_contradicts", "{path} is a LoRA for {family} (its key names), but --model_type is "
            "{requested}", path=path, family=network_files.label(detected), requested=network_files.label(requested),
        ))
    return requested


def read_any(path: str, model_type: str | None) -> tuple[str, str, Modules, dict[str, str]]:
    """(input layout, family, sd-scripts-layout modules, metadata without diffusers' own keys)."""
    tensors, metadata = read_weights(path)
    if is_diffusers_layout(list(tensors)):
        parsed = parse_keys(tensors, path)
        resolve_alphas(parsed, metadata, path)
        family = _family(diffusers_family(parsed, metadata), model_type, path)
        modules = to_sd_scripts(parsed, name_table(family), path)
        layout = "diffusers"
    else:
        lora = load_lora(path)
        family = _family(lora.family, model_type, path)
        modules, layout = lora.modules, "kohya"
    kept = {k: v for k, v in metadata.items() if k not in (ADAPTER_METADATA_KEY, "format")}
    return layout, family, modules, kept


def sd_scripts_metadata(metadata: Mapping[str, str], family: str, modules: Modules) -> dict[str, str]:
    """The file's metadata, with the ss_* keys loaders look at filled in where missing."""
    out = dict(metadata)
    ranks = collections.Counter(int(p["lora_down.weight"].shape[0]) for p in modules.values() if "lora_down.weight" in p)
    alphas = collections.Counter(float(p["alpha"].float()) for p in modules.values() if "alpha" in p)
    out.setdefault("ss_network_module", "networks.lora")
    if ranks:
        out.setdefault("ss_network_dim", str(ranks.most_common(1)[0][0]))
    if alphas:
        out.setdefault("ss_network_alpha", str(alphas.most_common(1)[0][0]))
    if family in names():  # not only a layout: the family is known
        out.setdefault("ss_base_model_version", base_model_version(family, False))
        out.setdefault("ss_v2", str(network_files.sd_scripts_v2(family)))
    return out


def convert_file(args: argparse.Namespace) -> None:
    """Read --model in either layout and write it in the other (or the same) to --save_to."""
    if args.to == "comfyui":
        from backend.tools.lora.video_convert import convert_to_comfyui

        convert_to_comfyui(args, dtype_of(args.save_precision))
        return
    layout, family, modules, metadata = read_any(args.model, args.model_type)
    check_finite_modules(modules, args.model, "--model")
    target = args.to or ("kohya" if layout == "diffusers" else "diffusers")
    dtype = dtype_of(args.save_precision)
    if target == "diffusers":
        if not is_safetensors(args.save_to):
            raise ToolError(msg("tool.convert_diffusers_needs_safetensors",
                                "the diffusers layout keeps the alphas in safetensors metadata: save as .safetensors"))
        tensors, adapter_metadata = from_sd_scripts(modules, name_table(family), args.model)
        check_finite_result(tensors, args.save_to, dtype)
        save_weights_file(args.save_to, tensors, dtype, {**metadata, **adapter_metadata})
    else:
        save_lora(args.save_to, modules, sd_scripts_metadata(metadata, family, modules), dtype)
    unet = sum(name.startswith("lora_unet") for name in modules)
    print(msg(
        "tool.converted", "converted {count} modules ({unet} U-Net, {text_encoder} text encoder) of a {family} LoRA "
        "from the {layout} layout to the {target} layout; saved {path}", count=len(modules),
        text_encoder=len(modules) - unet, unet=unet, family=network_files.label(family), layout=layout, target=target,
        path=args.save_to,
    ))


