"""The modules a network wraps in a family's models: every Linear/Conv2d inside a module of these
classes gets a LoRA module (sd-scripts' `*_TARGET_REPLACE_MODULE` lists)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NetworkTargets:
    denoiser: tuple[str, ...]  # blocks of the U-Net / transformer whose linear layers are trained
    denoiser_conv: tuple[str, ...]  # blocks whose 3x3 convolutions are trained too, with conv_dim
    text_encoder: tuple[str, ...]


# sd-scripts networks/lora.py for the U-Net families (SD 1.x/2.x, SDXL). transformers 5 has only
# CLIPAttention; CLIPSdpaAttention is kept for older transformers.
UNET_FAMILIES = NetworkTargets(
    denoiser=("Transformer2DModel",),
    denoiser_conv=("ResnetBlock2D", "Downsample2D", "Upsample2D"),
    text_encoder=("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP"),
)
