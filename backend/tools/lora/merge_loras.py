"""Merging LoRA/LoCon files into one LoRA, weighted by ratios.

- concat: the factors are stacked, so the result is exactly `sum(ratio_i * scale_i * up_i @ down_i)`
  at the sum of the input ranks (alpha = rank, scale 1; each factor carries `sqrt(|ratio * scale|)`).
- SVD: the summed delta of each module is factorised to `new_rank` (`new_conv_rank` for 3x3 convs),
  as sd-scripts' svd_merge_lora does; alpha = rank.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from backend.families import network_files
from backend.messages import msg
from backend.tools.lora.lora_files import (
    LoraFile,
    lora_module,
    lora_rank,
    lora_scale,
    module_algorithm,
    module_delta,
)
from backend.tools.lora.lowrank import factorize
from backend.tools.lora.tool_cli import ToolError

Modules = dict[str, dict[str, torch.Tensor]]


def check_mergeable(loras: Sequence[LoraFile]) -> None:
    for lora in loras:
        refused = sorted({module_algorithm(p) for p in lora.modules.values()} - {"LoRA", "LoCon"})
        if refused:
            raise ToolError(msg(
                "tool.merge_not_lora", "{path} holds {algorithms} modules; LoRA files merge only LoRA/LoCon (bake "
                "LoHa/LoKr into a checkpoint with --sd_model instead)", path=lora.path, algorithms=", ".join(refused),
            ))
    layouts = {network_files.layout_of(lora.family) for lora in loras}
    if len(layouts) > 1:  # SD 1.x and 2.x LoRAs share one layout: they merge
        raise ToolError(msg("tool.merge_mixed_layouts", "the LoRAs are for different architectures ({models}) and "
                            "cannot be merged", models=network_files.joined_labels(layouts, msg("tool.word_and", "and"))))


def _by_module(loras: Sequence[LoraFile], ratios: Sequence[float]) -> dict[str, list[tuple[float, dict]]]:
    grouped: dict[str, list[tuple[float, dict]]] = {}
    for lora, ratio in zip(loras, ratios, strict=True):
        for name, params in lora.modules.items():
            grouped.setdefault(name, []).append((ratio, params))
    return grouped


@torch.no_grad()
def concat_loras(loras: Sequence[LoraFile], ratios: Sequence[float]) -> Modules:
    out: Modules = {}
    for name, parts in _by_module(loras, ratios).items():
        ups, downs = [], []
        for ratio, params in parts:
            factor = math.sqrt(abs(ratio * lora_scale(params)))
            sign = -1.0 if ratio * lora_scale(params) < 0 else 1.0
            ups.append(params["lora_up.weight"].float() * factor * sign)
            downs.append(params["lora_down.weight"].float() * factor)
        if len({tuple(d.shape[1:]) for d in downs}) > 1:
            raise ToolError(msg("tool.merge_concat_shapes", "{name}: the LoRAs' down weights have different shapes and "
                                "cannot be concatenated", name=name))
        rank = sum(d.shape[0] for d in downs)
        out[name] = lora_module(torch.cat(ups, dim=1), torch.cat(downs, dim=0), rank)
    return out


@torch.no_grad()
def svd_merge_loras(
    loras: Sequence[LoraFile], ratios: Sequence[float], new_rank: int, new_conv_rank: int, device: str
) -> Modules:
    out: Modules = {}
    for name, parts in _by_module(loras, ratios).items():
        deltas = [ratio * module_delta(name, {k: v.to(device) for k, v in p.items()}) for ratio, p in parts]
        if len({tuple(d.shape) for d in deltas}) > 1:
            raise ToolError(msg("tool.merge_svd_shapes", "{name}: the LoRAs' modules have different shapes and cannot "
                                "be merged", name=name))
        delta = torch.stack(deltas).sum(0)
        is_conv = delta.dim() == 4 and tuple(delta.shape[2:]) != (1, 1)
        low = factorize(delta, new_conv_rank if is_conv else new_rank)
        out[name] = lora_module(low.up.cpu(), low.down.cpu(), low.rank)
    return out


def default_rank(loras: Sequence[LoraFile]) -> int:
    return max(lora_rank(p) for lora in loras for p in lora.modules.values())
