"""SDXL: two text encoders (CLIP-L, OpenCLIP bigG with projection) and size conditioning.

Conditioning is both encoders' penultimate hidden states (no final layer norm) concatenated along
the feature axis (768 + 1280 = 2048 for the real model), plus TE2's projected pooled output of the
first 77-token chunk, as sd-scripts computes it. ``clip_skip`` does not apply to SDXL (sd-scripts
ignores it too) and is rejected only when it asks for something other than the penultimate layer.
The U-Net also needs ``time_ids``: original size, crop top-left and target size per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from diffusers import UNet2DConditionModel
from transformers import CLIPTextModel

from backend.data.text_encoder_files import TextCacheFile
from backend.models.components import Components, PromptEmbeds
from backend.models.prompt_weights import apply_token_weights
from backend.models.scheduler import inference_scheduler
from backend.models.spec import ModelSpecification, join_chunks

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline


def make_time_ids(
    original_sizes: Sequence[tuple[int, int]],
    crop_top_lefts: Sequence[tuple[int, int]],
    target_sizes: Sequence[tuple[int, int]],
) -> torch.Tensor:
    """``[B, 6]``: (orig h, orig w, crop top, crop left, target h, target w) per sample."""
    rows = [
        [*orig, *crop, *target]
        for orig, crop, target in zip(original_sizes, crop_top_lefts, target_sizes, strict=True)
    ]
    return torch.tensor(rows, dtype=torch.float32)


def sdxl_text_cache_file(te1_width: int) -> TextCacheFile:
    """The SDXL cache file (sd-scripts' SdxlTextEncoderOutputsCachingStrategy) for a TE1 this wide."""

    def to_arrays(embeds: PromptEmbeds) -> dict[str, torch.Tensor]:
        assert embeds.pooled is not None
        hidden = embeds.hidden_states
        return {"hidden_state1": hidden[..., :te1_width], "hidden_state2": hidden[..., te1_width:],
                "pool2": embeds.pooled}

    def from_arrays(arrays: dict[str, torch.Tensor], dtype: torch.dtype) -> PromptEmbeds:
        hidden = torch.cat([arrays["hidden_state1"], arrays["hidden_state2"]], dim=-1)
        return PromptEmbeds(hidden.to(dtype), arrays["pool2"].to(dtype))

    return TextCacheFile("_te_outputs.npz", ("hidden_state1", "hidden_state2", "pool2"), to_arrays, from_arrays)


class StableDiffusionXLSpec(ModelSpecification):
    families = ("sdxl",)

    def encode_prompts(
        self, text_encoders: list[CLIPTextModel], token_ids: list[torch.Tensor], clip_skip: int | None = None
    ) -> PromptEmbeds:
        if clip_skip not in (None, 1, 2):
            raise ValueError(
                "SDXL always uses the penultimate text-encoder layer; clip_skip cannot change it"
            )
        te1, te2 = text_encoders
        ids1, ids2 = token_ids
        batch = ids1.shape[0]
        # non_blocking: host-to-GPU copies that do not wait for the queued kernels (see sd.py)
        out1 = te1(ids1.reshape(-1, ids1.shape[-1]).to(te1.device, non_blocking=True), output_hidden_states=True)
        out2 = te2(ids2.reshape(-1, ids2.shape[-1]).to(te2.device, non_blocking=True), output_hidden_states=True)
        hidden = torch.cat(
            [out1.hidden_states[-2], out2.hidden_states[-2].to(out1.hidden_states[-2].dtype)], dim=-1
        )
        pooled = out2.text_embeds.reshape(batch, -1, out2.text_embeds.shape[-1])[:, 0]
        return PromptEmbeds(join_chunks(hidden, batch), pooled)

    def encode_weighted_prompts(
        self, text_encoders: list[CLIPTextModel], token_ids: list[torch.Tensor], weights: list[torch.Tensor],
        clip_skip: int | None = None,
    ) -> PromptEmbeds:
        """Each encoder's part of the conditioning times its tokens' weights; the pooled output stays as it is
        (sd-scripts' SdxlTextEncodingStrategy.encode_tokens_with_weights)."""
        embeds = self.encode_prompts(text_encoders, token_ids, clip_skip)
        width = text_encoders[0].config.hidden_size
        hidden = embeds.hidden_states
        parts = [apply_token_weights(hidden[..., :width], weights[0]), apply_token_weights(hidden[..., width:], weights[1])]
        return PromptEmbeds(torch.cat(parts, dim=-1), embeds.pooled)

    def text_cache_file(self, components: Components) -> TextCacheFile:
        """sd-scripts' `_te_outputs.npz`: each encoder's hidden states apart, and TE2's pooled output."""
        width = components.text_encoders[0].config.hidden_size
        return sdxl_text_cache_file(width)

    def predict(
        self,
        unet: UNet2DConditionModel,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        embeds: PromptEmbeds,
        time_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if embeds.pooled is None or time_ids is None:
            raise ValueError("SDXL needs the pooled text embedding and time_ids (see make_time_ids)")
        added = {
            "text_embeds": embeds.pooled.to(noisy_latents.dtype),
            "time_ids": time_ids.to(device=noisy_latents.device, dtype=noisy_latents.dtype, non_blocking=True),
        }
        return unet(noisy_latents, timesteps, embeds.hidden_states, added_cond_kwargs=added).sample

    def pipeline(self, components: Components) -> DiffusionPipeline:
        te1, te2 = components.text_encoders
        tok1, tok2 = components.tokenizers
        # Pipelines are heavy to import; only sampling needs one.
        from diffusers import StableDiffusionXLPipeline

        return StableDiffusionXLPipeline(
            vae=components.vae,
            text_encoder=te1,
            text_encoder_2=te2,
            tokenizer=tok1,
            tokenizer_2=tok2,
            unet=components.unet,
            scheduler=inference_scheduler(components.configs.scheduler),
            add_watermarker=False,  # samples must show what the model does, unmarked
        )
