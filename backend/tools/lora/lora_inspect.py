"""Describing a LoRA-family file: the work behind `python -m backend.tools.inspect_lora` (whose
docstring lists what is reported). Tensors holding NaN or infinite values are listed too: inspect
is where a user looks when a LoRA does nothing or breaks the image.

The training resolution is `ss_resolution` for a LoRA trained on folders, and each dataset's
`resolution` inside `ss_datasets` for one trained with --dataset_config (sd-scripts writes no
`ss_resolution` then). The text report is in the user's language; the JSON keys and block names
are data and stay as they are.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from typing import Any

from backend.families import network_files
from backend.messages import msg
from backend.tools.lora.lora_files import (
    KNOWN_PARAMS,
    LoraFile,
    alpha_of,
    load_lora,
    lora_state_dict,
    module_algorithm,
    nonfinite_keys,
)
from backend.tools.lora.lora_layers import arch_layer_names

SUMMARY_KEYS = (
    "ss_output_name", "ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_network_args",
    "ss_learning_rate", "ss_unet_lr", "ss_text_encoder_lr", "ss_optimizer", "ss_lr_scheduler",
    "ss_num_train_images", "ss_num_epochs", "ss_epoch", "ss_steps", "ss_max_train_steps", "ss_seed",
    "ss_mixed_precision", "ss_resolution", "ss_clip_skip", "ss_noise_offset", "ss_min_snr_gamma",
    "ss_sd_model_name", "ss_training_comment", "ss_training_started_at", "ss_training_finished_at",
)
_BLOCK = re.compile(r"^lora_unet_(down_blocks|input_blocks|mid_block|middle_block|up_blocks|output_blocks)_(\d+)?")
# FLUX.1's transformer blocks, by sd-scripts' (BFL) names and by diffusers' paths.
_FLUX_BLOCK = re.compile(r"^lora_unet_(double_blocks|single_blocks|transformer_blocks|single_transformer_blocks)_(\d+)_")
_FLUX_KINDS = {"double_blocks": "double", "transformer_blocks": "double", "single_blocks": "single",
               "single_transformer_blocks": "single"}
_PARTS = {"down_blocks": "down", "input_blocks": "down", "mid_block": "mid", "middle_block": "mid",
          "up_blocks": "up", "output_blocks": "up"}


def block_of(name: str) -> str:
    if name.startswith("lora_te"):
        prefix = name.split("_text_model")[0]
        return {"lora_te": "text encoder", "lora_te1": "text encoder 1", "lora_te2": "text encoder 2",
                "lora_te3": "text encoder 3"}.get(prefix.split("_encoder_")[0], prefix)
    flux = _FLUX_BLOCK.match(name)
    if flux:
        return f"{_FLUX_KINDS[flux.group(1)]} block {int(flux.group(2)):02d}"
    match = _BLOCK.match(name)
    if not match:
        return "U-Net other"
    part = _PARTS[match.group(1)]
    return f"U-Net {part}" if part == "mid" else f"U-Net {part} {match.group(2)}"


def _rank(params: dict) -> int | None:
    for key in ("lora_down.weight", "hada_w1_b", "lokr_w2_b", "lokr_w1_b"):
        if key in params:
            return int(params[key].shape[0])
    return None


def block_summary(lora: LoraFile) -> dict[str, dict[str, Any]]:
    blocks: dict[str, dict[str, Any]] = {}
    for name, params in lora.modules.items():
        entry = blocks.setdefault(block_of(name), {"modules": 0, "ranks": Counter(), "alphas": Counter()})
        entry["modules"] += 1
        rank = _rank(params)
        entry["ranks"][str(rank)] += 1
        if "alpha" in params or rank is not None:
            entry["alphas"][str(alpha_of(params, rank or 1))] += 1
    return {b: {"modules": e["modules"], "ranks": dict(e["ranks"]), "alphas": dict(e["alphas"])}
            for b, e in sorted(blocks.items())}


def unknown_keys(lora: LoraFile) -> list[str]:
    # The names of the shipped architecture of the file's (first) family: SD 1.x and 2.x share U-Net names.
    layers = arch_layer_names(network_files.config_sets(lora.family)[0])
    unknown = []
    for name, params in lora.modules.items():
        for param in params:
            if name not in layers or param not in KNOWN_PARAMS:
                unknown.append(f"{name}.{param}")
    return sorted(unknown)


def top_tags(metadata: dict[str, str], top: int) -> list[tuple[str, int]]:
    try:
        frequency = json.loads(metadata.get("ss_tag_frequency", "{}"))
    except json.JSONDecodeError:
        return []
    counts: Counter[str] = Counter()
    for tags in frequency.values() if isinstance(frequency, dict) else []:
        for tag, count in tags.items():
            counts[tag.strip()] += int(count)
    return counts.most_common(top)


def _reso(value: Any) -> str | None:
    """'512x768' from [512, 768], (512, 768), "(512, 768)", "512,768" or 512; None when it is none of those."""
    if isinstance(value, str):
        numbers = re.findall(r"\d+", value)
        value = [int(n) for n in numbers] if numbers and not re.search(r"[^\d\s,()\[\]]", value) else None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = [value[0], value[0]]
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"
    return None


def resolutions(metadata: dict[str, str]) -> list[str]:
    """The training resolution(s) the metadata records: `ss_resolution`, else each dataset's in `ss_datasets`."""
    if "ss_resolution" in metadata:
        return [_reso(metadata["ss_resolution"]) or metadata["ss_resolution"]]
    try:
        datasets = json.loads(metadata.get("ss_datasets", "[]"))
    except json.JSONDecodeError:
        return []
    found = [_reso(d.get("resolution")) for d in datasets if isinstance(d, dict)] if isinstance(datasets, list) else []
    return list(dict.fromkeys(r for r in found if r))


def inspect(lora: LoraFile, top: int) -> dict[str, Any]:
    algorithms = Counter(module_algorithm(p) for p in lora.modules.values())
    return {
        "file": lora.path,
        "algorithm": lora.algorithm,
        "algorithms": dict(algorithms),
        "modules": len(lora.modules),
        "base_model": lora.family,
        "ss_base_model_version": lora.metadata.get("ss_base_model_version"),
        "resolution": resolutions(lora.metadata),
        "blocks": block_summary(lora),
        "metadata": {k: lora.metadata[k] for k in SUMMARY_KEYS if k in lora.metadata},
        "top_tags": top_tags(lora.metadata, top),
        "unknown_keys": unknown_keys(lora),
        "nonfinite_tensors": nonfinite_keys(lora_state_dict(lora.modules)),
    }


def print_text(report: dict[str, Any]) -> None:
    print(msg("tool.inspect_header", "{file}: {algorithm}, {modules} modules, base model {base_model} "
              "(ss_base_model_version {version})", file=report["file"], algorithm=report["algorithm"],
              modules=report["modules"], base_model=report["base_model"], version=report["ss_base_model_version"]))
    for block, entry in report["blocks"].items():
        ranks = ", ".join(f"{r} x{n}" for r, n in entry["ranks"].items())
        alphas = ", ".join(f"{a} x{n}" for a, n in entry["alphas"].items())
        print(msg("tool.inspect_block", "  {block}: {modules} modules, rank {ranks}; alpha {alphas}",
                  block=block, modules=entry["modules"], ranks=ranks, alphas=alphas))
    if report["resolution"] and "ss_resolution" not in report["metadata"]:
        print(msg("tool.inspect_resolution", "  resolution: {resolution}", resolution=", ".join(report["resolution"])))
    for key, value in report["metadata"].items():
        print(f"  {key}: {value}")
    if report["top_tags"]:
        print(msg("tool.inspect_top_tags", "  top tags: {tags}",
                  tags=", ".join(f"{tag} ({count})" for tag, count in report["top_tags"])))
    if report["unknown_keys"]:
        print(msg("tool.inspect_unknown_keys", "  {count} keys a loader does not recognise for {base_model}:",
                  count=len(report["unknown_keys"]), base_model=report["base_model"]))
        for key in report["unknown_keys"]:
            print(f"    {key}")
    else:
        print(msg("tool.inspect_keys_recognised", "  all keys are recognised"))
    bad = report["nonfinite_tensors"]
    if bad:
        print(msg("tool.inspect_nonfinite", "  {count} tensors hold NaN or infinite values (the training diverged; the "
                  "file is broken), for example {names}", count=len(bad), names=", ".join(bad[:3])))


def inspect_file(args: argparse.Namespace) -> None:
    report = inspect(load_lora(args.file), args.top)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print_text(report)
