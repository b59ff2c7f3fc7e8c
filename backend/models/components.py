"""The loaded parts of one model, shared by every family's specification."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers import AutoencoderKL, DDPMScheduler, FluxTransformer2DModel, UNet2DConditionModel
from transformers import (
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    T5EncoderModel,
    T5TokenizerFast,
)

from backend.models.configs import ArchConfigs, Family


@dataclass
class Components:
    family: Family
    configs: ArchConfigs  # exact configs of the loaded modules; scheduler carries the prediction type
    unet: UNet2DConditionModel | FluxTransformer2DModel  # the denoiser (FLUX.1: its transformer)
    vae: AutoencoderKL
    text_encoders: list[CLIPTextModel | CLIPTextModelWithProjection | T5EncoderModel]
    tokenizers: list[CLIPTokenizer | T5TokenizerFast]
    # Original-layout tensors (full keys) with no diffusers counterpart, written back on single-file save.
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    source: str = ""

    @property
    def v_prediction(self) -> bool:
        return self.configs.prediction_type == "v_prediction"

    def noise_scheduler(self) -> DDPMScheduler:
        """The training noise schedule (sd-scripts: DDPM with the model's betas, no sample clipping)."""
        cfg = self.configs.scheduler
        return DDPMScheduler(
            num_train_timesteps=cfg.get("num_train_timesteps", 1000),
            beta_start=cfg.get("beta_start", 0.00085),
            beta_end=cfg.get("beta_end", 0.012),
            beta_schedule=cfg.get("beta_schedule", "scaled_linear"),
            clip_sample=False,
            prediction_type=self.configs.prediction_type,
        )


@dataclass
class PromptEmbeds:
    """Text conditioning: ``hidden_states [B, 2 + 75 * chunks, D]`` (FLUX.1: T5's ``[B, L, D]``); ``pooled
    [B, P]`` for SDXL and FLUX.1; ``attention_mask [B, L]`` where the denoiser masks padded text (FLUX.1's
    --apply_t5_attn_mask)."""

    hidden_states: torch.Tensor
    pooled: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
