"""SD 1.x and SD 2.x (512 epsilon and 768 v-prediction): one text encoder, no extra conditioning.

SD 2.x's diffusers text encoder already stops at OpenCLIP's penultimate block, so its default
output (last hidden state with the final layer norm) is the penultimate conditioning the model was
trained with. ``clip_skip`` k > 1 takes ``hidden_states[-k]`` through the final layer norm, as
sd-scripts does for both versions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from diffusers import UNet2DConditionModel
from transformers import CLIPTextModel

from backend.models.components import Components, PromptEmbeds
from backend.models.keymap_text import text_transformer
from backend.models.prompt_weights import apply_token_weights
from backend.models.scheduler import inference_scheduler
from backend.models.spec import ModelSpecification, join_chunks

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline


def clip_hidden_states(text_encoder: CLIPTextModel, ids: torch.Tensor, clip_skip: int | None) -> torch.Tensor:
    if not clip_skip or clip_skip == 1:
        return text_encoder(ids)[0]
    out = text_encoder(ids, output_hidden_states=True)
    return text_transformer(text_encoder).final_layer_norm(out.hidden_states[-clip_skip])


class StableDiffusionSpec(ModelSpecification):
    families = ("sd1", "sd2")

    def encode_prompts(
        self, text_encoders: list[CLIPTextModel], token_ids: list[torch.Tensor], clip_skip: int | None = None
    ) -> PromptEmbeds:
        (text_encoder,), (ids,) = text_encoders, token_ids
        batch = ids.shape[0]
        # non_blocking: a blocking host-to-GPU copy waits for every kernel queued before it (the step
        # would stall the host); the ids are staged at once, so the CPU tensor may go right away.
        ids = ids.reshape(-1, ids.shape[-1]).to(text_encoder.device, non_blocking=True)
        return PromptEmbeds(join_chunks(clip_hidden_states(text_encoder, ids, clip_skip), batch))

    def encode_weighted_prompts(
        self, text_encoders: list[CLIPTextModel], token_ids: list[torch.Tensor], weights: list[torch.Tensor],
        clip_skip: int | None = None,
    ) -> PromptEmbeds:
        embeds = self.encode_prompts(text_encoders, token_ids, clip_skip)
        return PromptEmbeds(apply_token_weights(embeds.hidden_states, weights[0]))

    def predict(
        self,
        unet: UNet2DConditionModel,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        embeds: PromptEmbeds,
        time_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return unet(noisy_latents, timesteps, embeds.hidden_states).sample

    def pipeline(self, components: Components) -> DiffusionPipeline:
        # Pipelines are heavy to import; only sampling needs one.
        from diffusers import StableDiffusionPipeline

        return StableDiffusionPipeline(
            vae=components.vae,
            text_encoder=components.text_encoders[0],
            tokenizer=components.tokenizers[0],
            unet=components.unet,
            scheduler=inference_scheduler(components.configs.scheduler),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
