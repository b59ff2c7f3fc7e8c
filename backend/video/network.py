"""The video trainer's LoRA: finetrainers' `--rank`, `--lora_alpha`, `--target_modules` on the transformer,
saved as diffusers/PEFT `pytorch_lora_weights.safetensors` (`transformer.<module path>.lora_A.weight` and
`.lora_B.weight`), the file finetrainers writes and diffusers' `load_lora_weights` reads.

Which layers: PEFT's rules as finetrainers hands them over. Several names match a Linear whose path is
the name or ends with `.<name>` (`to_q to_k to_v to_out.0`, finetrainers' default); a single name is a
regular expression matched against the whole path (finetrainers passes one value to PEFT as a string),
and, unlike PEFT, a single plain name that matches no path as a regular expression is taken as a suffix
(`--target_modules to_q` trains the `to_q` layers instead of failing).

The strength is baked into the file: `lora_B` is saved times alpha / rank. A PEFT file has no alpha of
its own, and diffusers (without adapter metadata) and ComfyUI then apply it at alpha = rank, so a file
trained with `--lora_alpha` != `--rank` would otherwise load at the wrong strength in every loader.

The layers are our LoRA modules (backend/networks/module.py) in a LoRANetwork, so the training loop,
resume states and the per-process checks treat it as any other network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from backend.messages import msg
from backend.networks.module import LoRAModule
from backend.networks.network import LoRANetwork
from backend.networks.weights_io import save_weights_file

DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # the attention projections finetrainers trains
FINETRAINERS_DEFAULT = "(transformer_blocks|single_transformer_blocks).*(to_q|to_k|to_v|to_out.0)"
FILE_PREFIX = "transformer."  # diffusers' component prefix in pytorch_lora_weights.safetensors


class TargetModulesError(ValueError):
    """--target_modules matched no layer, or a non-Linear one."""


def matches(path: str, targets: tuple[str, ...], as_pattern: bool) -> bool:
    if as_pattern:
        return re.fullmatch(targets[0], path) is not None
    return any(path == name or path.endswith("." + name) for name in targets)


def target_layers(transformer: nn.Module, targets: Iterable[str]) -> dict[str, nn.Linear]:
    """The Linear layers `targets` names, by module path (finetrainers' / PEFT's matching, see above)."""
    names = tuple(t for t in targets if t)
    if not names:
        names = DEFAULT_TARGETS
    linears = {path: module for path, module in transformer.named_modules() if isinstance(module, nn.Linear)}
    found: dict[str, nn.Linear] = {}
    if len(names) == 1:
        try:
            found = {p: m for p, m in linears.items() if matches(p, names, as_pattern=True)}
        except re.error:
            found = {}
    if not found:
        found = {p: m for p, m in linears.items() if matches(p, names, as_pattern=False)}
    if not found and names == (FINETRAINERS_DEFAULT,):
        # finetrainers' default pattern names LTX/Hunyuan/CogVideoX blocks; Wan's are `blocks.N`: the same
        # attention projections, by name.
        found = {p: m for p, m in linears.items() if matches(p, DEFAULT_TARGETS, as_pattern=False)}
    if not found:
        examples = ", ".join(sorted({p.rsplit(".", 1)[-1] for p in linears})[:12])
        raise TargetModulesError(msg(
            "video.lora.no_targets", "--target_modules {targets} matches no Linear layer of the transformer; its "
            "layers end in names such as {examples}", targets=" ".join(names), examples=examples,
        ))
    return found


def lora_name(path: str) -> str:
    """A module path as an attribute name of the network (dots are not allowed there)."""
    return "transformer_" + path.replace(".", "_")


class PeftLoraNetwork(LoRANetwork):
    """LoRA modules on the transformer's target layers; saved in the PEFT layout with the strength baked."""

    def __init__(self, layers: Mapping[str, nn.Linear], rank: int, alpha: float, multiplier: float = 1.0,
                 dropout: float | None = None) -> None:
        loras = [LoRAModule(lora_name(path), layer, multiplier, rank, alpha, dropout=dropout)
                 for path, layer in layers.items()]
        super().__init__([], loras, {}, {}, multiplier)
        self.paths = {lora_name(path): path for path in layers}

    def peft_state_dict(self) -> dict[str, torch.Tensor]:
        """The file's tensors: lora_A = down, lora_B = up x alpha / rank (float32 for the product)."""
        tensors: dict[str, torch.Tensor] = {}
        for lora in self.unet_loras:
            key = FILE_PREFIX + self.paths[lora.lora_name]
            tensors[f"{key}.lora_A.weight"] = lora.lora_down.weight.detach()
            tensors[f"{key}.lora_B.weight"] = lora.lora_up.weight.detach().float() * lora.scale
        return tensors

    def save_weights(self, file: Any, dtype: torch.dtype | None, metadata: Mapping[str, str] | None) -> None:
        tensors = self.peft_state_dict()
        if dtype is None:  # the trained dtype, not the float32 of the baked product
            dtype = self.unet_loras[0].lora_up.weight.dtype
        save_weights_file(file, tensors, dtype, metadata)

    def is_mergeable(self) -> bool:
        return False


def create_network(
    multiplier: float,
    network_dim: int | None,
    network_alpha: float | None,
    vae: Any,
    text_encoder: Any,
    unet: nn.Module | None,
    neuron_dropout: float | None = None,
    unet_module_name: Any = None,
    target_modules: str = "",
    **unknown: Any,
) -> PeftLoraNetwork:
    """sd-scripts' network-module entry: `unet` is the video transformer; `target_modules` the
    space-separated --target_modules (network_args, as the video command passes them)."""
    if unknown:
        raise ValueError(f"unknown network_args for the video LoRA: {', '.join(sorted(unknown))}")
    if unet is None:
        raise ValueError("the video LoRA needs the transformer")
    rank = int(network_dim or 4)
    layers = target_layers(unet, target_modules.split())
    return PeftLoraNetwork(layers, rank, float(network_alpha or rank), multiplier, neuron_dropout)


def create_network_from_weights(*args: Any, **kwargs: Any) -> PeftLoraNetwork:
    raise ValueError(msg("video.lora.from_weights", "the video trainer starts a LoRA from scratch (as finetrainers "
                         "does); continue a run with --resume_from_checkpoint"))
