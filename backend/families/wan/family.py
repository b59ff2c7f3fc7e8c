"""The Wan 2.1 family (torch side): UMT5 conditioning, the video transformer over unpacked latents, the
flow-matching objective as finetrainers trains Wan, and LoRA on the attention projections by their
diffusers module paths (the PEFT layout of `pytorch_lora_weights.safetensors`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from backend.families.blocks import BlockLayout
from backend.families.network_targets import NetworkTargets
from backend.families.seam import ModelFamily, ModuleNameMap
from backend.families.wan.declaration import DECLARATIONS
from backend.families.wan.detection import TRANSFORMER_CLASS
from backend.families.wan.spec import WanSpec
from backend.objectives.flow_matching import FlowMatchingConfig, FlowMatchingObjective, loss_weighting
from backend.objectives.loss import LossConfig

if TYPE_CHECKING:
    from torch import nn

    from backend.models.components import Components
    from backend.objectives.base import Objective

# finetrainers' default --target_modules: the query, key, value and output projections of every attention
# (the self-attention attn1 and the cross-attention attn2 of each block).
LORA_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
# finetrainers builds Wan's training scheduler as FlowMatchEulerDiscreteScheduler() (shift 1): its
# --flow_shift and --flow_resolution_shifting are parsed but not applied to Wan in v0.2.
TRAINING_SHIFT = 1.0


def wan_flow_config(weighting_scheme: str = "none", logit_mean: float = 0.0, logit_std: float = 1.0,
                    mode_scale: float = 1.29) -> FlowMatchingConfig:
    """finetrainers' sigma draw for Wan: u from --flow_weighting_scheme's density (none: uniform), an index
    into the unshifted 1000-step table; the raw velocity measured against noise - latents."""
    return FlowMatchingConfig(timestep_sampling="sigma", discrete_flow_shift=TRAINING_SHIFT,
                              model_prediction_type="raw", weighting_scheme=weighting_scheme,
                              logit_mean=logit_mean, logit_std=logit_std, mode_scale=mode_scale)


@dataclass(frozen=True)
class WanObjectiveOptions:
    """What Wan training reads of the options: finetrainers' --flow_weighting_scheme, --flow_logit_mean,
    --flow_logit_std and --flow_mode_scale."""

    flow: FlowMatchingConfig = field(default_factory=wan_flow_config)

    @classmethod
    def from_args(cls, args: Any) -> WanObjectiveOptions:
        return cls(wan_flow_config(str(args.flow_weighting_scheme), float(args.flow_logit_mean),
                                   float(args.flow_logit_std), float(args.flow_mode_scale)))

    def validate(self, loss: LossConfig) -> None:
        self.flow.validate(loss)


class WanFlowMatching(FlowMatchingObjective):
    """finetrainers weights the raw-velocity loss by the scheme (sigma_sqrt: sigma^-2, cosmap) too; the
    shared objective weights only sigma_scaled predictions (sd-scripts), so Wan's applies them always."""

    def weights(self, timesteps: torch.Tensor) -> torch.Tensor | None:
        if self.config.weighting_scheme not in ("sigma_sqrt", "cosmap"):
            return None
        return loss_weighting(self.config.weighting_scheme, timesteps.float() / 1000)

    def at_timestep(self, timestep: int) -> WanFlowMatching:
        return WanFlowMatching(self.config, self.loss, pinned_timestep=timestep)


def lora_key(module_path: str, matrix: str) -> str:
    """A LoRA tensor's key in diffusers' `pytorch_lora_weights.safetensors` ("A" or "B")."""
    return f"transformer.{module_path}.lora_{matrix}.weight"


def lora_module_paths(transformer: nn.Module, targets: tuple[str, ...] = LORA_TARGET_MODULES) -> list[str]:
    """The transformer's Linear layers PEFT wraps for `targets` (module names matched as path suffixes)."""
    return [name for name, module in transformer.named_modules()
            if isinstance(module, torch.nn.Linear) and any(name == t or name.endswith("." + t) for t in targets)]


class WanFamily(ModelFamily):
    declarations = DECLARATIONS
    spec = WanSpec()
    block_layout = BlockLayout("Wan 2.1", 0, 0, False, lambda name: None)  # no per-block network options
    # Every Linear in the attentions: to_q, to_k, to_v, to_out.0 (finetrainers' default targets).
    network_targets = NetworkTargets(denoiser=("WanAttention",), denoiser_conv=(), text_encoder=())
    objective_options = WanObjectiveOptions

    def objective(self, components: Components | None, options: WanObjectiveOptions, loss: LossConfig
                  ) -> Objective:
        return WanFlowMatching(options.flow, loss)

    def recognises(self, unet: nn.Module | None, text_encoder_count: int) -> bool:
        return type(unet).__name__ == TRANSFORMER_CLASS

    def claims(self, unet: nn.Module | None) -> bool:
        return self.recognises(unet, 0)

    def network_module_names(self, unet: nn.Module) -> ModuleNameMap | None:
        """The diffusers module paths (`blocks.0.attn1.to_q`), as PEFT and diffusers' LoRA files name them."""
        return lambda name: name

    def native_module_name(self, path: str) -> str:
        from backend.families.wan.native_names import native_module_name

        return native_module_name(path)


FAMILY = WanFamily()
