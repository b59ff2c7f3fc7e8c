"""Extracting a LoRA from the difference of two models: the work behind `python -m
backend.tools.extract_lora_from_models` (whose docstring describes the method). A layer whose
difference is not finite (either model holds NaN/inf there) is refused by name.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from backend.families import declaration, network_files
from backend.families.loaded import family as family_of
from backend.messages import msg
from backend.models.components import Components
from backend.networks.models import Models
from backend.networks.naming import Target, resolve_unet_module_name, text_encoder_targets, unet_targets
from backend.networks.swapped import swap_halves
from backend.tools.lora.lora_files import lora_module, save_lora
from backend.tools.lora.lowrank import factorize
from backend.tools.lora.merge_into_model import detect_checkpoint, load_weights
from backend.tools.lora.tool_cli import ToolError, check_device, dtype_of
from backend.training.metadata import architecture, base_model_version


def targets_of(components: Components, with_conv: bool) -> list[Target]:
    """The layers to extract: a family's own network layout's (FLUX.1: the blocks' layers by their BFL
    names, fused qkv as one), else our LoRA's targets under sd-scripts' names."""
    models = Models.of(components.text_encoders, components.unet, None)
    if models.network_layout is not None:
        return models.network_layout.extracted_targets(models)
    unet = components.unet
    names = resolve_unet_module_name(unet, None)  # the family's names (SDXL: original SGM paths)
    classes = family_of(components.family).network_targets
    return text_encoder_targets(components.text_encoders, classes) + unet_targets(unet, with_conv, names, classes)


def target_weight(target: Target) -> torch.Tensor:
    """The weight of the layer a file names: a fused layer's (FLUX.1's qkv) is its members' stacked by
    rows, so one LoRA module covers them, as sd-scripts extracts BFL's fused Linear."""
    if not target.members:
        weight = target.module.weight
        return swap_halves(weight) if target.swapped_halves else weight  # the original's rows (SD 3.5)
    return torch.cat([member.weight for member in target.members])


@torch.no_grad()
def extract_modules(
    org: Components, tuned: Components, args: argparse.Namespace
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, list[str]]]:
    """({lora name: module}, {"text_encoder"/"unet": skipped names})."""
    with_conv = args.conv_dim is not None
    tuned_targets = {t.lora_name: t for t in targets_of(tuned, with_conv)}
    modules: dict[str, dict[str, torch.Tensor]] = {}
    skipped: dict[str, list[str]] = {"text_encoder": [], "unet": []}
    for target in targets_of(org, with_conv):
        other = tuned_targets.get(target.lora_name)
        org_weight = target_weight(target)
        if other is None or len(other.members) != len(target.members) or target_weight(other).shape != org_weight.shape:
            raise ToolError(msg("tool.extract_architectures_differ", "{name}: the models do not have the same "
                                "architecture", name=target.lora_name))
        diff = target_weight(other).to(args.device, torch.float32) - org_weight.to(args.device, torch.float32)
        if not bool(torch.isfinite(diff).all()):
            broken = args.model_org if not bool(torch.isfinite(org_weight).all()) else args.model_tuned
            raise ToolError(msg("tool.extract_nonfinite", "{path} holds NaN or infinite values in the layer of {name}; "
                                "a LoRA cannot be extracted from a damaged or diverged model",
                                path=broken, name=target.lora_name))
        part = "unet" if target.text_encoder_index is None else "text_encoder"
        if float(diff.abs().max()) < args.min_diff:
            skipped[part].append(target.lora_name)
            continue
        rank = args.conv_dim if target.kind == "conv" else args.dim
        low = factorize(diff, rank, clamp_quantile=args.clamp_quantile)
        modules[target.lora_name] = lora_module(low.up.cpu(), low.down.cpu(), low.rank)
    return modules, skipped


def extract_metadata(family: str, v_prediction: bool, args: argparse.Namespace) -> dict[str, str]:
    """sd-scripts' minimum ss_* keys (its extract_lora_from_models, or the family's own extractor: FLUX.1's
    flux_extract_lora writes networks.lora_flux and empty network args), and modelspec keys."""
    layout = family_of(family).network_layout
    if layout is not None:
        network_args = json.dumps({})
    elif args.conv_dim is not None:
        network_args = json.dumps({"conv_dim": str(args.conv_dim), "conv_alpha": str(float(args.conv_dim))})
    else:
        network_args = "None"
    metadata = {
        "ss_v2": str(network_files.sd_scripts_v2(family)),
        "ss_base_model_version": base_model_version(family, v_prediction),
        "ss_network_module": layout.network_module if layout is not None else "networks.lora",
        "ss_network_dim": str(args.dim),
        "ss_network_alpha": str(float(args.dim)),
        "ss_network_args": network_args,
    }
    if not args.no_metadata:
        metadata["modelspec.sai_model_spec"] = "1.0.1"
        metadata["modelspec.architecture"] = architecture(family, v_prediction, lora=True)
        metadata["modelspec.implementation"] = declaration(family).implementation_url(lora=True)
        metadata["modelspec.title"] = Path(args.save_to).stem
        metadata["ss_training_comment"] = f"extracted from {args.model_org} and {args.model_tuned}"
    return metadata


def extract_file(args: argparse.Namespace) -> None:
    """Load both models, extract the modules as the checked arguments say, and write --save_to."""
    check_device(args.device)
    org_info, tuned_info = detect_checkpoint(args.model_org), detect_checkpoint(args.model_tuned)
    if org_info.family != tuned_info.family:
        raise ToolError(msg("tool.extract_families_differ", "{org} is {org_family} but {tuned} is {tuned_family}",
                            org=args.model_org, org_family=org_info.label, tuned=args.model_tuned,
                            tuned_family=tuned_info.label))
    given = {"--sdxl": args.sdxl, "--v2": args.v2}  # sd-scripts' flags saying what the models are
    if any(on and org_info.family not in network_files.families_of_tool_flag(flag) for flag, on in given.items()):
        raise ToolError(msg("tool.extract_flag_family", "the models are {family} ({evidence}); check --sdxl/--v2",
                            family=org_info.label, evidence=org_info.evidence))
    layout = family_of(org_info.family).network_layout
    refusal = layout.refused_reason("conv_dim") if layout is not None and args.conv_dim is not None else None
    if refusal:
        raise ToolError(msg("tool.extract_conv_refused", "--conv_dim does not apply: {reason}", reason=refusal))
    text_encoders = layout is None or layout.extracts_text_encoders
    dtype = dtype_of(args.load_precision) or torch.float32
    org = load_weights(org_info, dtype, text_encoders=text_encoders)
    tuned = load_weights(tuned_info, dtype, text_encoders=text_encoders)
    modules, skipped = extract_modules(org, tuned, args)
    if skipped["text_encoder"]:
        print(msg("tool.extract_skipped_text_encoder", "text encoder: {count} layers differ by less than --min_diff "
                  "{min_diff} and were skipped", count=len(skipped["text_encoder"]), min_diff=args.min_diff))
    if skipped["unet"]:
        counts = {"count": len(skipped["unet"]), "min_diff": args.min_diff}
        if declaration(org_info.family).denoiser_folder == "unet":
            print(msg("tool.extract_skipped_unet", "U-Net: {count} layers differ by less than --min_diff {min_diff} "
                      "and were skipped", **counts))
        else:
            print(msg("tool.extract_skipped_transformer", "transformer: {count} layers differ by less than "
                      "--min_diff {min_diff} and were skipped", **counts))
    if not modules:
        raise ToolError(msg("tool.extract_nothing", "the models differ by less than --min_diff {min_diff} everywhere; "
                            "nothing to extract", min_diff=args.min_diff))
    metadata = extract_metadata(org_info.family, bool(org.v_prediction), args)
    save_lora(args.save_to, modules, metadata, dtype_of(args.save_precision))
    print(msg("tool.extracted", "extracted {count} modules; saved {path}", count=len(modules), path=args.save_to))


