"""Convert a LoRA between the diffusers/PEFT layout and the sd-scripts (kohya) layout, or change its
precision.

    python -m backend.tools.convert_lora --model IN --save_to OUT [--to diffusers|kohya]
        [--model_type sd1|sd2|sdxl] [--save_precision float|fp16|bf16]

The input layout is recognised from the keys: `lora_unet_*`/`lora_te*` is sd-scripts' (what
A1111, ComfyUI and sd-scripts load, and what our trainer writes); `unet.*`/`text_encoder*.*` with
`lora_A`/`lora_B` (or the older `lora.down`/`lora.up` and attention-processor keys) is diffusers'
(`pipe.save_lora_weights`, diffusers' training scripts). --to defaults to the other layout; the same
layout with --save_precision only changes the precision. SD 1.x, 2.x and SDXL (U-Net by SGM names
in sd-scripts files, both text encoders). The family comes from the keys (and ss_base_model_version);
--model_type names it when keys cannot tell, and a --model_type the file contradicts (an SDXL LoRA
as sd1) is an error.

Tensors are not touched and each module's scale is kept exactly (see `lora_diffusers`): the
diffusers file carries the alphas in its `lora_adapter_metadata`, so `pipe.load_lora_weights` gives
the same result as loading the sd-scripts file, and converting back gives the same keys and tensor
bytes. Other metadata (ss_*, modelspec.*) travels along. Only plain LoRA/LoCon modules have a
diffusers layout; LoHa/LoKr/DoRA files can be re-saved in the sd-scripts layout (precision) only.
"""

from __future__ import annotations

import argparse
import collections
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from backend.networks.weights_io import is_safetensors, load_weights_file, save_weights_file
from backend.tools.lora_diffusers import (
    ADAPTER_METADATA_KEY,
    diffusers_family,
    from_sd_scripts,
    is_diffusers_layout,
    parse_keys,
    resolve_alphas,
    to_sd_scripts,
)
from backend.tools.lora_diffusers_names import FAMILY_NAMES, name_table
from backend.tools.lora_files import load_lora, save_lora
from backend.tools.merge_into_model import families_fit
from backend.tools.tool_cli import PRECISIONS, ToolError, dtype_of, run_tool
from backend.training.metadata import base_model_version

LAYOUTS = ("diffusers", "kohya")
Modules = dict[str, dict[str, torch.Tensor]]


def _read(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not Path(path).is_file():
        raise ToolError(f"LoRA file not found: {path}")
    try:
        return load_weights_file(path)
    except Exception as exc:  # safetensors/torch raise many types for a corrupt or foreign file
        raise ToolError(f"{path} cannot be read as a LoRA file: {exc}") from exc


def _family(detected: str | None, requested: str | None, path: str) -> str:
    if requested is None:
        if detected is None:
            raise ToolError(f"{path}: cannot tell whether this LoRA is for SD 1.x/2.x or SDXL; pass --model_type")
        return detected
    if detected is not None and not families_fit(detected, requested):
        raise ToolError(
            f"{path} is a LoRA for {FAMILY_NAMES[detected]} (its key names), but --model_type is "
            f"{FAMILY_NAMES[requested]}"
        )
    return requested


def read_any(path: str, model_type: str | None) -> tuple[str, str, Modules, dict[str, str]]:
    """(input layout, family, sd-scripts-layout modules, metadata without diffusers' own keys)."""
    tensors, metadata = _read(path)
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
    if family in ("sd1", "sd2", "sdxl"):
        out.setdefault("ss_base_model_version", base_model_version(family, False))
        out.setdefault("ss_v2", str(family == "sd2"))
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend.tools.convert_lora", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="LoRA file in either layout (.safetensors, .ckpt, .pt, .bin)")
    parser.add_argument("--save_to", required=True, help="output file (.safetensors; diffusers layout needs it)")
    parser.add_argument("--to", choices=LAYOUTS, default=None,
                        help="layout of the output (default: the other layout than the input's)")
    parser.add_argument("--model_type", choices=("sd1", "sd2", "sdxl"), default=None,
                        help="the LoRA's base model family (default: detected from the keys)")
    parser.add_argument("--save_precision", choices=tuple(PRECISIONS), default=None,
                        help="precision of the saved weights (default: unchanged)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    layout, family, modules, metadata = read_any(args.model, args.model_type)
    target = args.to or ("kohya" if layout == "diffusers" else "diffusers")
    dtype = dtype_of(args.save_precision)
    if target == "diffusers":
        if not is_safetensors(args.save_to):
            raise ToolError("the diffusers layout keeps the alphas in safetensors metadata: save as .safetensors")
        tensors, adapter_metadata = from_sd_scripts(modules, name_table(family), args.model)
        save_weights_file(args.save_to, tensors, dtype, {**metadata, **adapter_metadata})
    else:
        save_lora(args.save_to, modules, sd_scripts_metadata(metadata, family, modules), dtype)
    parts = collections.Counter("U-Net" if name.startswith("lora_unet") else "text encoder" for name in modules)
    print(f"converted {len(modules)} modules ({', '.join(f'{n} {p}' for p, n in sorted(parts.items()))}) "
          f"of a {FAMILY_NAMES[family]} LoRA from the {layout} layout to the {target} layout; saved {args.save_to}")


if __name__ == "__main__":
    raise SystemExit(run_tool(main))
