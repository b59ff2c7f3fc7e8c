"""Baking LoRA-family files into a checkpoint: `W += ratio * delta` for every module of every file.

Deltas come from `lora_files.module_delta` (LoRA/LoCon, and LyCORIS LoHa/LoKr by their own
reconstruction). The family of each file is checked against the model's before the model is loaded,
which its family's spec loads (`ModelSpecification.load_weights`). A layer the original model fuses
(FLUX.1's qkv, three diffusers Linears) takes its delta split by rows over its members, in order.
Every merged layer must stay finite, in the merge precision and in the save precision: a NaN or an
overflow (a huge ratio, fp16) is reported with the layer's module name and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from backend.families import network_files
from backend.families.loaded import get_spec
from backend.finite_weights import check_weights
from backend.messages import msg
from backend.models.components import Components
from backend.models.detect import ModelInfo, detect_model
from backend.models.files import is_single_file
from backend.networks.naming import TEXT_ENCODER_PREFIX
from backend.networks.swapped import swap_halves
from backend.tools.cli.light_cli import ToolFailure
from backend.tools.lora.lora_files import LoraFile, module_delta
from backend.tools.lora.lora_layers import layer_refs
from backend.tools.lora.tool_cli import ToolError


@dataclass
class MergeReport:
    path: str
    merged: int
    unmatched: list[str]
    # module name -> the layer it changed (a fused layer: one entry per member, "<name> (part N)")
    layers: dict[str, torch.nn.Module] = field(default_factory=dict)


def check_family(lora: LoraFile, family: str, what: str) -> None:
    """`what`: the model, named for the message ("model.safetensors (its evidence)")."""
    if network_files.fits(lora.family, family):
        return
    names = {"path": lora.path, "family": network_files.label(lora.family), "model": what,
             "model_family": network_files.label(family)}
    if "ss_base_model_version" in lora.metadata:
        raise ToolError(msg(
            "tool.lora_family_mismatch_metadata", "{path} is a LoRA for {family} (its key names and "
            "ss_base_model_version), but {model} is {model_family}", **names,
        ))
    raise ToolError(msg(
        "tool.lora_family_mismatch", "{path} is a LoRA for {family} (its key names), but {model} is {model_family}",
        **names,
    ))


def detect_checkpoint(path: str) -> ModelInfo:
    """The model a tool reads weights from (any family: its spec loads the weights, `load_weights`)."""
    if not Path(path).exists():
        raise ToolError(msg("model.not_found", "model not found: {path}", path=path))
    return detect_model(path)


def load_for_merge(info: ModelInfo, dtype: torch.dtype, save_to: str) -> Components:
    """A single file loads without tokenizers (FLUX.1: the transformer alone), so it can only be saved as a
    single file."""
    if info.format != "diffusers" and not is_single_file(save_to):
        raise ToolError(msg("tool.merge_single_file_output", "{path} is a single file: save the merged model as "
                            ".safetensors or .ckpt", path=info.path))
    return load_weights(info, dtype)


def load_weights(info: ModelInfo, dtype: torch.dtype, *, text_encoders: bool = True) -> Components:
    """The model's weights as its family's spec loads them for the tools: diffusers folders whole, single
    files without tokenizers (the tools do not need them, and a real user's may not be cached); FLUX.1's
    BFL file is its transformer alone. `text_encoders` False: only the denoiser is needed."""
    return get_spec(info.family).load_weights(info, dtype, text_encoders=text_encoders)


def text_encoder_modules(names: list[str]) -> list[str]:
    """The names of text-encoder modules (`lora_te`, `lora_te1`, `lora_te3`, ...) among `names`."""
    return [name for name in names if name.startswith(TEXT_ENCODER_PREFIX)]


def without_text_encoders_note(components: Components, count: int) -> str:
    """Why `count` text-encoder modules found no layer in a model loaded without text encoders."""
    return msg(
        "tool.merge_no_text_encoders", "{count} text-encoder modules were not merged: {model} holds no text "
        "encoders (a transformer file); to bake them in too, pass the model's diffusers folder (with "
        "text_encoder/ and text_encoder_2/) as --sd_model", count=count, model=components.source,
    )  # fmt: skip


def _split_rows(delta: torch.Tensor, parts: tuple[torch.nn.Module, ...]) -> list[torch.Tensor]:
    """A fused layer's delta, one piece per member by its rows (its out_features), in order."""
    if len(parts) == 1:
        return [delta.reshape(parts[0].weight.shape)]
    rows = [int(part.weight.shape[0]) for part in parts]
    pieces = torch.split(delta.reshape(sum(rows), -1), rows)
    return [piece.reshape(part.weight.shape) for piece, part in zip(pieces, parts, strict=True)]


@torch.no_grad()
def merge_into(components: Components, lora: LoraFile, ratio: float, device: str) -> MergeReport:
    layers = layer_refs(components.unet, components.text_encoders)
    merged, unmatched, changed = 0, [], {}
    for name, params in lora.modules.items():
        layer = layers.get(name)
        if layer is None:
            unmatched.append(name)
            continue
        delta = module_delta(name, {k: v.to(device) for k, v in params.items()})
        if delta.numel() != layer.numel():
            raise ToolError(msg(
                "tool.merge_shape_mismatch", "{path}: module {name} has a delta of shape {shape}, the model's layer "
                "{layer_shape} (a LoRA for another model size?)", path=lora.path, name=name,
                shape=tuple(delta.shape), layer_shape=tuple(layer.weight().shape),
            ))
        if layer.swapped_halves:  # the file's rows are in the original order (SD 3.5's (shift, scale))
            delta = swap_halves(delta.reshape(layer.weight().shape))
        for index, (part, piece) in enumerate(zip(layer.parts, _split_rows(delta, layer.parts), strict=True)):
            _merge_part(components, lora, name, part.weight, piece, ratio, device)
            changed[name if len(layer.parts) == 1 else f"{name} (part {index + 1})"] = part
        merged += 1
    if not merged:
        skipped = text_encoder_modules(unmatched)
        if skipped and not components.text_encoders:
            raise ToolError(f"{lora.path}: {without_text_encoders_note(components, len(skipped))}")
        raise ToolError(msg("tool.merge_no_module_matches",
                            "{path}: no module matches a layer of the model (another architecture?)", path=lora.path))
    return MergeReport(lora.path, merged, unmatched, changed)


def _merge_part(components: Components, lora: LoraFile, name: str, weight: torch.Tensor, delta: torch.Tensor,
                ratio: float, device: str) -> None:
    """`weight += ratio * delta` in float32, refusing a damaged base and a result that is not finite."""
    base = weight.to(device, torch.float32)
    if not bool(torch.isfinite(base).all()):
        raise ToolError(msg(
            "tool.merge_base_nonfinite", "{path}: the layer {name} modifies holds NaN or infinite values; the "
            "checkpoint is damaged: use another copy of it", path=components.source, name=name,
        ))
    updated = base + ratio * delta
    weight.copy_(updated.to(weight.device, weight.dtype))
    if not bool(torch.isfinite(weight).all()):
        names = {"path": lora.path, "ratio": ratio, "name": name}
        if bool(torch.isfinite(updated).all()):  # finite in float32: the merge precision is too small
            raise ToolFailure(msg(
                "tool.merge_overflow", "merging {path} at ratio {ratio} gives values too large for {precision} in "
                "the layer of {name}; nothing was written: merge with --precision float",
                precision=_dtype_name(weight.dtype), **names,
            ))
        raise ToolFailure(msg(
            "tool.merge_nonfinite", "merging {path} at ratio {ratio} gives NaN or infinite values in the layer of "
            "{name}; nothing was written", **names,
        ))


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def check_merged_layers(layers: dict[str, torch.nn.Module], dtype: torch.dtype | None, save_to: str) -> None:
    """The merged layers must stay finite in the save precision (fp16 overflows above 65504)."""
    problems = check_weights({name: layer.weight for name, layer in layers.items()}, dtype)
    if problems and problems.nonfinite:
        raise ToolFailure(msg("tool.merged_model_nonfinite", "the merged model was not written to {path}: of the "
                              "merged layers, {problems}", path=save_to, problems=problems.describe()))
    if problems:
        raise ToolFailure(msg("tool.merged_model_overflow", "the merged model was not written to {path}: of the "
                              "merged layers, {problems}; save with --save_precision float or bf16",
                              path=save_to, problems=problems.describe()))
