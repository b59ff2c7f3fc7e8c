"""Baking LoRA-family files into a checkpoint: `W += ratio * delta` for every module of every file.

Deltas come from `lora_files.module_delta` (LoRA/LoCon, and LyCORIS LoHa/LoKr by their own
reconstruction). The family of each file is checked against the model's before the model is loaded.
Every merged layer must stay finite, in the merge precision and in the save precision: a NaN or an
overflow (a huge ratio, fp16) is reported with the layer's module name and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from backend.families import network_files
from backend.finite_weights import check_weights
from backend.messages import msg
from backend.models.checkpoint import split_original
from backend.models.components import Components
from backend.models.configs import arch_for, load_arch_configs
from backend.models.detect import ModelInfo, detect_model
from backend.models.files import is_single_file, read_checkpoint
from backend.models.loading import build_modules, load_components
from backend.tools.cli.light_cli import ToolFailure
from backend.tools.lora.lora_files import LoraFile, module_delta
from backend.tools.lora.lora_layers import lora_layers
from backend.tools.lora.tool_cli import ToolError


@dataclass
class MergeReport:
    path: str
    merged: int
    unmatched: list[str]
    layers: dict[str, torch.nn.Module] = field(default_factory=dict)  # module name -> the layer it changed


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
    """The model a tool reads weights from: a U-Net family's (what `load_weights` builds)."""
    if not Path(path).exists():
        raise ToolError(msg("model.not_found", "model not found: {path}", path=path))
    info = detect_model(path)
    if info.family not in network_files.unet_families():
        raise ToolError(msg(
            "tool.checkpoint_family_unsupported", "{path} is a {family} model: the LoRA tools read the weights of "
            "{supported} checkpoints only (merging into, extracting from, measuring against a model). A {family} "
            "LoRA loads as it is in ComfyUI, Forge and diffusers",
            path=path, family=info.label,
            supported=network_files.joined_labels(network_files.unet_families(), msg("tool.word_and", "and")),
        ))  # fmt: skip
    return info


def load_for_merge(info: ModelInfo, dtype: torch.dtype, save_to: str) -> Components:
    """A single file loads without tokenizers, so it can only be saved as a single file."""
    if info.format != "diffusers" and not is_single_file(save_to):
        raise ToolError(msg("tool.merge_single_file_output", "{path} is a single file: save the merged model as "
                            ".safetensors or .ckpt", path=info.path))
    return load_weights(info, dtype)


def load_weights(info: ModelInfo, dtype: torch.dtype) -> Components:
    """Diffusers folders load whole; single files without tokenizers (the tools do not need them,
    and a real user's may not be cached)."""
    if info.format == "diffusers":
        return load_components(info.path, dtype=dtype, info=info)
    configs = info.configs or load_arch_configs(arch_for(info.family, bool(info.v_prediction)))
    state_dict, _ = read_checkpoint(info.path, dtype=dtype)
    states = split_original(state_dict, configs)
    del state_dict
    unet, vae, text_encoders = build_modules(configs, states.unet, states.vae, states.text_encoders, dtype)
    return Components(info.family, configs, unet, vae, text_encoders, [], extras=states.extras, source=info.path)


@torch.no_grad()
def merge_into(components: Components, lora: LoraFile, ratio: float, device: str) -> MergeReport:
    layers = lora_layers(components.unet, components.text_encoders)
    merged, unmatched, changed = 0, [], {}
    for name, params in lora.modules.items():
        layer = layers.get(name)
        if layer is None:
            unmatched.append(name)
            continue
        weight = layer.weight
        delta = module_delta(name, {k: v.to(device) for k, v in params.items()})
        if delta.numel() != weight.numel():
            raise ToolError(msg(
                "tool.merge_shape_mismatch", "{path}: module {name} has a delta of shape {shape}, the model's layer "
                "{layer_shape} (a LoRA for another model size?)", path=lora.path, name=name,
                shape=tuple(delta.shape), layer_shape=tuple(weight.shape),
            ))
        base = weight.to(device, torch.float32)
        if not bool(torch.isfinite(base).all()):
            raise ToolError(msg(
                "tool.merge_base_nonfinite", "{path}: the layer {name} modifies holds NaN or infinite values; the "
                "checkpoint is damaged: use another copy of it", path=components.source, name=name,
            ))
        updated = base + ratio * delta.reshape(weight.shape)
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
        changed[name] = layer
        merged += 1
    if not merged:
        raise ToolError(msg("tool.merge_no_module_matches",
                            "{path}: no module matches a layer of the model (another architecture?)", path=lora.path))
    return MergeReport(lora.path, merged, unmatched, changed)


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
