"""The contract every model family implements (finetrainers' ModelSpecification idea).

A specification is stateless: it loads :class:`Components` and then works on the modules it is
handed, so a trainer may wrap or compile them (pass unwrapped modules to ``save``). Families differ
in how prompts become conditioning and in what the U-Net needs besides it; everything else
(loading, tokenizing, latents, saving) is shared here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from backend.families import label
from backend.messages import msg
from backend.models.components import Components, PromptEmbeds
from backend.models.configs import Family
from backend.models.detect import ModelMismatchError, detect_model
from backend.models.loading import load_components
from backend.models.saving import save_components
from backend.models.tokenizers import MODEL_MAX_LENGTH, tokenize_chunks

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline


def join_chunks(hidden: torch.Tensor, batch: int) -> torch.Tensor:
    """``[B * C, 77, D]`` -> ``[B, 2 + 75 * C, D]``: first BOS, each chunk's 75 tokens, last EOS/PAD."""
    chunks = hidden.shape[0] // batch
    hidden = hidden.reshape(batch, chunks, MODEL_MAX_LENGTH, -1)
    if chunks == 1:
        return hidden[:, 0]
    middle = hidden[:, :, 1:-1].reshape(batch, chunks * (MODEL_MAX_LENGTH - 2), -1)
    return torch.cat([hidden[:, 0, :1], middle, hidden[:, -1, -1:]], dim=1)


class ModelSpecification(ABC):
    families: ClassVar[tuple[Family, ...]]

    def load(
        self,
        path: str | Path,
        *,
        v_prediction: bool | None = None,
        dtype: torch.dtype = torch.float32,
        tokenizer_cache_dir: str | Path | None = None,
        device: str = "cpu",
    ) -> Components:
        info = detect_model(path)
        if info.family not in self.families:
            found = {"path": path, "label": info.label, "evidence": info.evidence}
            labels = [label(f) for f in self.families]
            if len(labels) == 1:
                raise ModelMismatchError(msg(
                    "model.family_not_wanted", "{path} looks like an {label} model ({evidence}), not {wanted}",
                    wanted=labels[0], **found,
                ))
            raise ModelMismatchError(msg(
                "model.family_not_either", "{path} looks like an {label} model ({evidence}), not {first} or {second}",
                first=", ".join(labels[:-1]), second=labels[-1], **found,
            ))
        return load_components(
            path, v_prediction=v_prediction, dtype=dtype, tokenizer_cache_dir=tokenizer_cache_dir, info=info,
            device=device,
        )

    def tokenize(
        self, tokenizers: list[CLIPTokenizer], prompts: list[str], max_token_length: int | None = None
    ) -> list[torch.Tensor]:
        """One ``[B, chunks, 77]`` id tensor per text encoder."""
        return [tokenize_chunks(tokenizer, prompts, max_token_length) for tokenizer in tokenizers]

    @abstractmethod
    def encode_prompts(
        self, text_encoders: list[CLIPTextModel], token_ids: list[torch.Tensor], clip_skip: int | None = None
    ) -> PromptEmbeds:
        """Conditioning for the U-Net from ``tokenize`` output."""

    @abstractmethod
    def predict(
        self,
        unet: UNet2DConditionModel,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        embeds: PromptEmbeds,
        time_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The U-Net's output: noise (epsilon) or v, whatever the model was trained to predict."""

    @abstractmethod
    def pipeline(self, components: Components) -> DiffusionPipeline:
        """A diffusers inference pipeline sharing the components' modules (for sampling)."""

    def encode_images(
        self, vae: AutoencoderKL, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Images in ``[-1, 1]`` (``[B, 3, H, W]``) -> latents sampled from the VAE posterior, shifted
        and scaled by the VAE's factors (SD/SDXL VAEs have no shift; Flux's and SD3's 16-channel ones do)."""
        images = images.to(device=vae.device, dtype=vae.dtype)
        latents = vae.encode(images).latent_dist.sample(generator)
        shift = getattr(vae.config, "shift_factor", None)
        if shift is not None:
            latents = latents - shift
        return latents * vae.config.scaling_factor

    def decode_latents(self, vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
        """Scaled (and shifted) latents -> images in ``[-1, 1]``."""
        latents = latents.to(device=vae.device, dtype=vae.dtype) / vae.config.scaling_factor
        shift = getattr(vae.config, "shift_factor", None)
        if shift is not None:
            latents = latents + shift
        return vae.decode(latents).sample.clamp(-1, 1)

    def save(
        self,
        components: Components,
        path: str | Path,
        *,
        dtype: torch.dtype | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Path:
        """Single file (original layout) for ``.safetensors``/``.ckpt`` paths, else a diffusers folder."""
        return save_components(components, path, dtype=dtype, metadata=metadata)
