"""FLUX.1: CLIP-L's pooled output and T5-XXL's hidden states condition a transformer over packed latents.

As sd-scripts' strategy_flux / flux_train_network compute it:
- prompts: CLIP-L 77 tokens (pooled output only), T5 `--t5xxl_max_token_length` tokens (default 512 for
  dev, 256 for schnell), padded to that length; with `--apply_t5_attn_mask` T5 runs with the padding
  mask and the transformer's joint attention ignores the padded text tokens.
- latents: 16 channels, shifted and scaled by the VAE's factors; the transformer sees them as 2x2 patches
  ("packed" tokens of 64 values) with (0, row, column) position ids; text ids are zeros.
- time: the flow-matching sigma (`timesteps / 1000`); dev also embeds the guidance scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from backend.data.text_encoder_files import TextCacheFile
from backend.models.components import Components, PromptEmbeds
from backend.models.detect import ModelInfo
from backend.models.saving import StateOverrides
from backend.models.spec import ModelSpecification
from backend.training.option_slice import OptionSlice

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline, FluxTransformer2DModel
    from PIL import Image

    from backend.models.configs import ArchConfigs
    from backend.training.sample_prompts import SamplePrompt

CLIP_LENGTH = 77
# sd-scripts' defaults for --t5xxl_max_token_length: schnell was trained with 256 tokens, dev with 512.
T5_LENGTH_DEV = 512
T5_LENGTH_SCHNELL = 256
SAMPLE_GUIDANCE = 3.5  # a sample prompt's distilled guidance without --g (sd-scripts' default)


@dataclass(frozen=True)
class FluxTextOptions(OptionSlice):
    """The run's prompt-encoding options (sd-scripts' flux flags)."""

    t5xxl_max_token_length: int | None
    apply_t5_attn_mask: bool


def has_guidance(transformer: Any) -> bool:
    """dev embeds the guidance scale; schnell (and a transformer without the embedder) does not."""
    return bool(getattr(getattr(transformer, "config", None), "guidance_embeds", False))


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, H/2 * W/2, C * 4]``: each 2x2 patch one token (c, then the patch's rows, columns)."""
    b, c, h, w = latents.shape
    patches = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return patches.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The inverse of `pack_latents` for latents of ``height x width``."""
    b, _, packed = tokens.shape
    c = packed // 4
    patches = tokens.view(b, height // 2, width // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return patches.reshape(b, c, height, width)


def image_ids(height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``[H/2 * W/2, 3]`` position ids of the packed latent tokens: (0, row, column)."""
    ids = torch.zeros(height // 2, width // 2, 3, device=device, dtype=dtype)
    ids[..., 1] = torch.arange(height // 2, device=device, dtype=dtype)[:, None]
    ids[..., 2] = torch.arange(width // 2, device=device, dtype=dtype)[None, :]
    return ids.reshape(-1, 3)


def joint_attention_mask(text_mask: torch.Tensor, image_tokens: int) -> torch.Tensor:
    """A boolean key mask ``[B, 1, 1, text + image]`` for the joint attention: padded text tokens are not
    attended to (sd-scripts' txt_attention_mask); every image token is."""
    image = torch.ones(text_mask.shape[0], image_tokens, dtype=torch.bool, device=text_mask.device)
    return torch.cat([text_mask.bool(), image], dim=1)[:, None, None, :]


class FluxSpec(ModelSpecification):
    families = ("flux_dev", "flux_schnell")

    def __init__(self, t5_length: int | None = None, t5_attention_mask: bool = False) -> None:
        self.t5_length = t5_length  # None: the T5 tokenizer's own length (a run sets the variant's default)
        self.t5_attention_mask = t5_attention_mask

    def meta_modules(self, configs: ArchConfigs) -> tuple[torch.nn.Module, list[torch.nn.Module]]:
        from backend.families.flux.loading import build_modules

        transformer, _, clip, t5 = build_modules(configs)
        return transformer, [clip, t5]

    def load_detected(
        self,
        info: ModelInfo,
        files: Mapping[str, str | None],
        *,
        v_prediction: bool | None,
        dtype: torch.dtype,
        tokenizer_cache_dir: str | Path | None,
        device: str,
    ) -> Components:
        from backend.families.flux.loading import load_flux

        return load_flux(info, files, dtype=dtype, device=device, tokenizer_cache_dir=tokenizer_cache_dir)

    def load_weights(self, info: ModelInfo, dtype: torch.dtype, *, text_encoders: bool = True) -> Components:
        """A diffusers folder whole (or its transformer alone, `text_encoders` False); a BFL single file is
        the transformer alone: the autoencoder and text encoders are files of their own."""
        from backend.families.flux.loading import load_flux_weights

        self.check_family(info)
        return load_flux_weights(info, dtype, text_encoders=text_encoders)

    def configured(self, text: FluxTextOptions, components: Components) -> FluxSpec:
        default = T5_LENGTH_DEV if has_guidance(components.unet) else T5_LENGTH_SCHNELL
        return FluxSpec(text.t5xxl_max_token_length or default, text.apply_t5_attn_mask)

    def text_cache_file(self, components: Components) -> TextCacheFile:
        """sd-scripts' `_flux_te.npz` (FluxTextEncoderOutputsCachingStrategy); the key records our T5 length
        and mask choice, so a file made with others is encoded again."""
        apply_mask = self.t5_attention_mask

        def to_arrays(embeds: PromptEmbeds) -> dict[str, torch.Tensor]:
            assert embeds.pooled is not None
            tokens = embeds.hidden_states.shape[0]
            mask = embeds.attention_mask if embeds.attention_mask is not None else torch.ones(tokens, dtype=torch.long)
            return {"l_pooled": embeds.pooled, "t5_out": embeds.hidden_states, "txt_ids": torch.zeros(tokens, 3),
                    "t5_attn_mask": mask, "apply_t5_attn_mask": torch.tensor(apply_mask)}

        def from_arrays(arrays: dict[str, torch.Tensor], dtype: torch.dtype) -> PromptEmbeds:
            mask = arrays["t5_attn_mask"] if apply_mask else None
            return PromptEmbeds(arrays["t5_out"].to(dtype), arrays["l_pooled"].to(dtype), mask)

        return TextCacheFile("_flux_te.npz", ("l_pooled", "t5_out", "txt_ids", "t5_attn_mask", "apply_t5_attn_mask"),
                             to_arrays, from_arrays, encoding=f"t5={self.t5_length or T5_LENGTH_DEV},mask={int(apply_mask)}")

    def tokenize(self, tokenizers: list[Any], prompts: list[str], max_token_length: int | None = None
                 ) -> list[torch.Tensor]:
        """``[clip ids [B, 77], t5 ids [B, L], t5 mask [B, L]]``. `max_token_length` (SD's CLIP chunking)
        does not apply: sd-scripts ignores it for FLUX.1 too."""
        clip, t5 = tokenizers
        clip_ids = clip(prompts, max_length=CLIP_LENGTH, padding="max_length", truncation=True,
                        return_tensors="pt").input_ids
        length = self.t5_length or T5_LENGTH_DEV
        t5_tokens = t5(prompts, max_length=length, padding="max_length", truncation=True, return_tensors="pt")
        return [clip_ids, t5_tokens.input_ids, t5_tokens.attention_mask]

    def encode_prompts(self, text_encoders: list[Any], token_ids: list[torch.Tensor], clip_skip: int | None = None
                       ) -> PromptEmbeds:
        clip, t5 = text_encoders
        clip_ids, t5_ids, t5_mask = token_ids
        pooled = clip(clip_ids.to(clip.device, non_blocking=True)).pooler_output
        mask = t5_mask.to(t5.device, non_blocking=True) if self.t5_attention_mask else None
        hidden = t5(t5_ids.to(t5.device, non_blocking=True), attention_mask=mask).last_hidden_state
        return PromptEmbeds(hidden, pooled, mask)

    def predict(
        self,
        unet: FluxTransformer2DModel,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        embeds: PromptEmbeds,
        time_ids: torch.Tensor | None = None,
        guidance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The transformer's velocity estimate for ``[B, C, H, W]`` latents at flow time ``timesteps``
        (0..1000); `guidance` per sample for dev (ignored by schnell, which has no guidance embedding)."""
        if embeds.pooled is None:
            raise ValueError("FLUX.1 needs CLIP-L's pooled output (PromptEmbeds.pooled)")
        _, _, height, width = noisy_latents.shape
        device, dtype = noisy_latents.device, noisy_latents.dtype
        tokens = pack_latents(noisy_latents)
        text = embeds.hidden_states.to(device=device, dtype=dtype, non_blocking=True)
        kwargs: dict[str, Any] = {}
        if embeds.attention_mask is not None:
            mask = joint_attention_mask(embeds.attention_mask.to(device, non_blocking=True), tokens.shape[1])
            kwargs["joint_attention_kwargs"] = {"attention_mask": mask}
        if has_guidance(unet):
            scale = guidance if guidance is not None else torch.full((tokens.shape[0],), SAMPLE_GUIDANCE)
            kwargs["guidance"] = scale.to(device=device, dtype=torch.float32, non_blocking=True)
        out = unet(
            hidden_states=tokens,
            encoder_hidden_states=text,
            pooled_projections=embeds.pooled.to(device=device, dtype=dtype, non_blocking=True),
            timestep=(timesteps.to(device, torch.float32) / 1000).to(dtype),
            img_ids=image_ids(height, width, device, dtype),
            txt_ids=torch.zeros(text.shape[1], 3, device=device, dtype=dtype),
            return_dict=False,
            **kwargs,
        )[0]
        return unpack_latents(out, height, width)

    def pipeline(self, components: Components) -> DiffusionPipeline:
        from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

        clip, t5 = components.text_encoders
        clip_tokenizer, t5_tokenizer = components.tokenizers
        return FluxPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler.from_config(components.configs.scheduler),
            vae=components.vae, text_encoder=clip, tokenizer=clip_tokenizer,
            text_encoder_2=t5, tokenizer_2=t5_tokenizer, transformer=components.unet,
        )

    def render_sample(
        self,
        pipeline: DiffusionPipeline,
        components: Components,
        prompt: SamplePrompt,
        sampler_name: str,
        seed: int,
        *,
        clip_skip: int | None,
        max_token_length: int | None,
    ) -> Image.Image:
        """Flow-matching Euler (the model's own scheduler, whatever `--ss` says, as sd-scripts samples FLUX.1)
        at the prompt's distilled guidance (`--g`, dev only); a CFG scale (`--l`) above 1 with a negative
        prompt adds true classifier-free guidance, as sd-scripts' `--l` does for FLUX.1. With
        --apply_t5_attn_mask the prompts are encoded with the mask, but the pipeline's transformer calls
        attend to the padded text tokens (diffusers' pipeline takes one mask for both CFG passes)."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        pipeline.scheduler = FlowMatchEulerDiscreteScheduler.from_config(components.configs.scheduler)
        width, height = (max(64, side - side % 16) for side in (prompt.width, prompt.height))
        token_ids = self.tokenize(components.tokenizers, [prompt.prompt, prompt.negative_prompt or ""])
        embeds = self.encode_prompts(components.text_encoders, token_ids)
        assert embeds.pooled is not None
        conditioning: dict[str, Any] = {"prompt_embeds": embeds.hidden_states[:1],
                                        "pooled_prompt_embeds": embeds.pooled[:1]}
        true_cfg = prompt.scale if prompt.negative_prompt and prompt.scale > 1 else 1.0
        if true_cfg > 1:
            conditioning["negative_prompt_embeds"] = embeds.hidden_states[1:]
            conditioning["negative_pooled_prompt_embeds"] = embeds.pooled[1:]
        guidance = prompt.guidance_scale if prompt.guidance_scale is not None else SAMPLE_GUIDANCE
        result = pipeline(
            width=width, height=height, num_inference_steps=prompt.sample_steps,
            guidance_scale=guidance, true_cfg_scale=true_cfg,
            generator=torch.Generator().manual_seed(seed), max_sequence_length=embeds.hidden_states.shape[1],
            **conditioning,
        )
        return result.images[0]

    def save_refusal(self, path: str | Path) -> str | None:
        from backend.families.flux.saving import save_refusal

        return save_refusal(path)

    def save(self, components: Components, path: str | Path, *, dtype: torch.dtype | None = None,
             metadata: dict[str, str] | None = None, states: StateOverrides | None = None,
             safetensors: bool = True) -> Path:
        """A ``.safetensors`` path: the transformer alone in BFL names (as sd-scripts' flux_train saves it);
        another path: a diffusers FluxPipeline folder (always safetensors)."""
        from backend.families.flux.saving import save_flux

        return save_flux(components, path, dtype=dtype, metadata=metadata, states=states)
