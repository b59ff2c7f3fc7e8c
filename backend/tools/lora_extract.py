"""Extracting a LoRA from the difference of two models: the work behind `python -m
backend.tools.extract_lora_from_models` (whose docstring describes the method). A layer whose
difference is not finite (either model holds NaN/inf there) is refused by name.
"""

from __future__ import annotations

import argparse
import json

import torch

from backend.models.components import Components
from backend.models.keymap_unet import unet_module_to_original
from backend.networks.naming import Target, identity_name, is_sdxl_unet, text_encoder_targets, unet_targets
from backend.tools.lora_files import lora_module, save_lora
from backend.tools.lowrank import factorize
from backend.tools.merge_into_model import detect_checkpoint, load_weights
from backend.tools.tool_cli import ToolError, check_device, dtype_of
from backend.training.metadata import architecture, base_model_version


def targets_of(components: Components, with_conv: bool) -> list[Target]:
    unet = components.unet
    names = (lambda path: unet_module_to_original(path, unet.config)) if is_sdxl_unet(unet) else identity_name
    return text_encoder_targets(components.text_encoders) + unet_targets(unet, with_conv, names)


@torch.no_grad()
def extract_modules(
    org: Components, tuned: Components, args: argparse.Namespace
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, list[str]]]:
    """({lora name: module}, {"text encoder"/"U-Net": skipped names})."""
    with_conv = args.conv_dim is not None
    tuned_targets = {t.lora_name: t for t in targets_of(tuned, with_conv)}
    modules: dict[str, dict[str, torch.Tensor]] = {}
    skipped: dict[str, list[str]] = {"text encoder": [], "U-Net": []}
    for target in targets_of(org, with_conv):
        other = tuned_targets.get(target.lora_name)
        org_weight = target.module.weight
        if other is None or other.module.weight.shape != org_weight.shape:
            raise ToolError(f"{target.lora_name}: the models do not have the same architecture")
        diff = other.module.weight.to(args.device, torch.float32) - org_weight.to(args.device, torch.float32)
        if not bool(torch.isfinite(diff).all()):
            broken = args.model_org if not bool(torch.isfinite(org_weight).all()) else args.model_tuned
            raise ToolError(f"{broken} holds NaN or infinite values in the layer of {target.lora_name}; "
                            "a LoRA cannot be extracted from a damaged or diverged model")
        part = "U-Net" if target.text_encoder_index is None else "text encoder"
        if float(diff.abs().max()) < args.min_diff:
            skipped[part].append(target.lora_name)
            continue
        rank = args.conv_dim if target.kind == "conv" else args.dim
        low = factorize(diff, rank, clamp_quantile=args.clamp_quantile)
        modules[target.lora_name] = lora_module(low.up.cpu(), low.down.cpu(), low.rank)
    return modules, skipped


def extract_metadata(family: str, v_prediction: bool, args: argparse.Namespace) -> dict[str, str]:
    metadata = {
        "ss_v2": str(family == "sd2"),
        "ss_base_model_version": base_model_version(family, v_prediction),
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(args.dim),
        "ss_network_alpha": str(float(args.dim)),
        "ss_network_args": json.dumps({"conv_dim": str(args.conv_dim), "conv_alpha": str(float(args.conv_dim))})
        if args.conv_dim is not None else "None",
    }
    if not args.no_metadata:
        metadata["modelspec.sai_model_spec"] = "1.0.1"
        metadata["modelspec.architecture"] = architecture(family, v_prediction, lora=True)
        metadata["ss_training_comment"] = f"extracted from {args.model_org} and {args.model_tuned}"
    return metadata


def extract_file(args: argparse.Namespace) -> None:
    """Load both models, extract the modules as the checked arguments say, and write --save_to."""
    check_device(args.device)
    org_info, tuned_info = detect_checkpoint(args.model_org), detect_checkpoint(args.model_tuned)
    if org_info.family != tuned_info.family:
        raise ToolError(f"{args.model_org} is {org_info.label} but {args.model_tuned} is {tuned_info.label}")
    if (args.sdxl and org_info.family != "sdxl") or (args.v2 and org_info.family != "sd2"):
        raise ToolError(f"the models are {org_info.label} ({org_info.evidence}); check --sdxl/--v2")
    dtype = dtype_of(args.load_precision) or torch.float32
    org, tuned = load_weights(org_info, dtype), load_weights(tuned_info, dtype)
    modules, skipped = extract_modules(org, tuned, args)
    for part, names in skipped.items():
        if names:
            print(f"{part}: {len(names)} layers differ by less than --min_diff {args.min_diff} and were skipped")
    if not modules:
        raise ToolError(f"the models differ by less than --min_diff {args.min_diff} everywhere; nothing to extract")
    metadata = extract_metadata(org_info.family, bool(org.v_prediction), args)
    save_lora(args.save_to, modules, metadata, dtype_of(args.save_precision))
    print(f"extracted {len(modules)} modules; saved {args.save_to}")


