"""SD 3.5: CLIP-L, CLIP-G and T5-XXL condition an MMDiT over 16-channel latents.

As sd-scripts' strategy_sd3 / sd3_train_network compute it:
- prompts: CLIP-L and CLIP-G 77 tokens each (CLIP-G pads with id 0), T5 `--t5xxl_max_token_length` tokens
  (default 256), padded to that length; --apply_lg_attn_mask runs both CLIPs with the padding mask,
  --apply_t5_attn_mask T5 (the MMDiT itself sees every token, as in sd-scripts).
- conditioning: the CLIPs' penultimate hidden states side by side (768 + 1280), zero-padded to T5's width
  and followed by T5's last hidden state along the sequence (77 + L tokens); pooled: both CLIPs'
  projected pooled outputs side by side (768 + 1280 = 2048).
- latents: 16 channels, shifted and scaled by the VAE's factors; time: sigma x 1000.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from backend.data.text_encoder_files import TextCacheFile
from backend.families.sd3.text_dropout import TextDropout
from backend.models.components import Components, PromptEmbeds
from backend.models.detect import ModelInfo
from backend.models.saving import StateOverrides
from backend.models.spec import ModelSpecification
from backend.training.option_slice import OptionSlice

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline, SD3Transformer2DModel
    from PIL import Image

    from backend.models.configs import ArchConfigs
    from backend.objectives.base import Generators
    from backend.training.sample_prompts import SamplePrompt

CLIP_LENGTH = 77
T5_LENGTH = 256  # sd-scripts' default --t5xxl_max_token_length for SD3


@dataclass(frozen=True)
class Sd3TextOptions(OptionSlice):
    """The run's prompt-encoding options (sd-scripts' sd3 flags)."""

    t5xxl_max_token_length: int | None
    apply_lg_attn_mask: bool
    apply_t5_attn_mask: bool
    clip_l_dropout_rate: float = 0.0
    clip_g_dropout_rate: float = 0.0
    t5_dropout_rate: float = 0.0


def joint_context(lg_hidden: torch.Tensor, t5_hidden: torch.Tensor) -> torch.Tensor:
    """sd-scripts' concat_encodings: CLIP-L+G hidden states padded to T5's width, then T5's, along the sequence."""
    padded = torch.nn.functional.pad(lg_hidden, (0, t5_hidden.shape[-1] - lg_hidden.shape[-1]))
    return torch.cat([padded, t5_hidden.to(padded.dtype)], dim=-2)


class Sd3Spec(ModelSpecification):
    families = ("sd3_medium", "sd3_large")

    def __init__(self, t5_length: int | None = None, lg_mask: bool = False, t5_mask: bool = False,
                 dropout: TextDropout | None = None) -> None:
        self.t5_length = t5_length
        self.lg_mask = lg_mask
        self.t5_mask = t5_mask
        self.dropout = dropout

    def meta_modules(self, configs: ArchConfigs) -> tuple[torch.nn.Module, list[torch.nn.Module]]:
        from backend.families.sd3.loading import build_modules

        transformer, _, clip_l, clip_g, t5 = build_modules(configs)
        return transformer, [clip_l, clip_g, t5]

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
        from backend.families.sd3.loading import load_sd3

        return load_sd3(info, files, dtype=dtype, device=device, tokenizer_cache_dir=tokenizer_cache_dir)

    def load_weights(self, info: ModelInfo, dtype: torch.dtype, *, text_encoders: bool = True) -> Components:
        from backend.families.sd3.loading import load_sd3_weights

        self.check_family(info)
        return load_sd3_weights(info, dtype, text_encoders=text_encoders)

    def configured(self, text: Sd3TextOptions, components: Components) -> Sd3Spec:
        clip_l, clip_g = components.configs.text_encoders[:2]
        dropout = TextDropout(
            text.clip_l_dropout_rate, text.clip_g_dropout_rate, text.t5_dropout_rate,
            hidden_widths=(int(clip_l["hidden_size"]), int(clip_g["hidden_size"])),
            pooled_widths=(int(clip_l["projection_dim"]), int(clip_g["projection_dim"])), clip_length=CLIP_LENGTH,
        )
        return Sd3Spec(text.t5xxl_max_token_length or T5_LENGTH, text.apply_lg_attn_mask, text.apply_t5_attn_mask,
                       dropout if dropout.active else None)

    def step_conditioning(self, embeds: PromptEmbeds, generator: Generators) -> PromptEmbeds:
        """--clip_l_dropout_rate, --clip_g_dropout_rate, --t5_dropout_rate (text_dropout.py)."""
        return embeds if self.dropout is None else self.dropout.apply(embeds, generator)

    def text_cache_file(self, components: Components) -> TextCacheFile:
        """sd-scripts' `_sd3_te.npz` (Sd3TextEncoderOutputsCachingStrategy) name and main arrays: lg_out (the
        CLIPs' states, unpadded), t5_out, lg_pooled; the MMDiT reads no masks, so none are kept. The key
        records our T5 length and mask choices, so a file made with others is encoded again."""
        lg_width = sum(int(c["hidden_size"]) for c in components.configs.text_encoders[:2])
        lg_mask, t5_mask = self.lg_mask, self.t5_mask

        def to_arrays(embeds: PromptEmbeds) -> dict[str, torch.Tensor]:
            assert embeds.pooled is not None
            context = embeds.hidden_states
            return {"lg_out": context[:CLIP_LENGTH, :lg_width], "t5_out": context[CLIP_LENGTH:],
                    "lg_pooled": embeds.pooled, "apply_lg_attn_mask": torch.tensor(lg_mask),
                    "apply_t5_attn_mask": torch.tensor(t5_mask)}

        def from_arrays(arrays: dict[str, torch.Tensor], dtype: torch.dtype) -> PromptEmbeds:
            context = joint_context(arrays["lg_out"].to(dtype), arrays["t5_out"].to(dtype))
            return PromptEmbeds(context, arrays["lg_pooled"].to(dtype))

        names = ("lg_out", "t5_out", "lg_pooled", "apply_lg_attn_mask", "apply_t5_attn_mask")
        return TextCacheFile("_sd3_te.npz", names, to_arrays, from_arrays,
                             encoding=f"t5={self.t5_length or T5_LENGTH},lg_mask={int(lg_mask)},t5_mask={int(t5_mask)}")

    def tokenize(self, tokenizers: list[Any], prompts: list[str], max_token_length: int | None = None
                 ) -> list[torch.Tensor]:
        """``[clip-l ids, clip-g ids, t5 ids, clip-l mask, clip-g mask, t5 mask]`` (sd-scripts' order).
        `max_token_length` (SD's CLIP chunking) does not apply: sd-scripts ignores it for SD3 too."""
        clip_l, clip_g, t5 = tokenizers
        l_tokens = clip_l(prompts, max_length=CLIP_LENGTH, padding="max_length", truncation=True, return_tensors="pt")
        g_tokens = clip_g(prompts, max_length=CLIP_LENGTH, padding="max_length", truncation=True, return_tensors="pt")
        t5_tokens = t5(prompts, max_length=self.t5_length or T5_LENGTH, padding="max_length", truncation=True,
                       return_tensors="pt")
        return [l_tokens.input_ids, g_tokens.input_ids, t5_tokens.input_ids,
                l_tokens.attention_mask, g_tokens.attention_mask, t5_tokens.attention_mask]

    def encode_prompts(self, text_encoders: list[Any], token_ids: list[torch.Tensor], clip_skip: int | None = None
                       ) -> PromptEmbeds:
        clip_l, clip_g, t5 = text_encoders
        l_ids, g_ids, t5_ids, l_mask, g_mask, t5_mask = token_ids
        outputs = []
        for clip, ids, mask in ((clip_l, l_ids, l_mask), (clip_g, g_ids, g_mask)):
            device = clip.device
            out = clip(ids.to(device, non_blocking=True),
                       attention_mask=mask.to(device, non_blocking=True) if self.lg_mask else None,
                       output_hidden_states=True)
            outputs.append((out.hidden_states[-2], out.text_embeds))
        (l_hidden, l_pooled), (g_hidden, g_pooled) = outputs
        t5_attention = t5_mask.to(t5.device, non_blocking=True) if self.t5_mask else None
        t5_hidden = t5(t5_ids.to(t5.device, non_blocking=True), attention_mask=t5_attention).last_hidden_state
        lg_hidden = torch.cat([l_hidden, g_hidden.to(l_hidden.device)], dim=-1)
        context = joint_context(lg_hidden, t5_hidden.to(lg_hidden.device))
        return PromptEmbeds(context, torch.cat([l_pooled, g_pooled.to(l_pooled.device)], dim=-1))

    def predict(
        self,
        unet: SD3Transformer2DModel,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        embeds: PromptEmbeds,
        time_ids: torch.Tensor | None = None,
        pos_embed_crop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The MMDiT's velocity estimate for ``[B, 16, H, W]`` latents at flow time ``timesteps`` (0..1000);
        `pos_embed_crop`: per-sample draws for --pos_emb_random_crop_rate (pos_embed.py)."""
        from backend.families.sd3.pos_embed import cropping

        if embeds.pooled is None:
            raise ValueError("SD 3.5 needs the CLIPs' pooled outputs (PromptEmbeds.pooled)")
        device, dtype = noisy_latents.device, noisy_latents.dtype
        with cropping(unet, pos_embed_crop):
            return unet(
                hidden_states=noisy_latents,
                encoder_hidden_states=embeds.hidden_states.to(device=device, dtype=dtype, non_blocking=True),
                pooled_projections=embeds.pooled.to(device=device, dtype=dtype, non_blocking=True),
                timestep=timesteps.to(device),
                return_dict=False,
            )[0]

    def pipeline(self, components: Components) -> DiffusionPipeline:
        from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

        clip_l, clip_g, t5 = components.text_encoders
        tok_l, tok_g, tok_t5 = components.tokenizers
        return StableDiffusion3Pipeline(
            scheduler=FlowMatchEulerDiscreteScheduler.from_config(components.configs.scheduler),
            vae=components.vae, text_encoder=clip_l, tokenizer=tok_l, text_encoder_2=clip_g, tokenizer_2=tok_g,
            text_encoder_3=t5, tokenizer_3=tok_t5, transformer=components.unet,
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
        """Flow-matching Euler (the model's own scheduler, shift 3, whatever `--ss` says, as sd-scripts samples
        SD3) with classifier-free guidance at the prompt's `--l` scale against its negative prompt."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        pipeline.scheduler = FlowMatchEulerDiscreteScheduler.from_config(components.configs.scheduler)
        width, height = (max(64, side - side % 16) for side in (prompt.width, prompt.height))
        token_ids = self.tokenize(components.tokenizers, [prompt.prompt, prompt.negative_prompt or ""])
        embeds = self.encode_prompts(components.text_encoders, token_ids)
        assert embeds.pooled is not None
        result = pipeline(
            width=width, height=height, num_inference_steps=prompt.sample_steps, guidance_scale=prompt.scale,
            generator=torch.Generator().manual_seed(seed),
            prompt_embeds=embeds.hidden_states[:1], negative_prompt_embeds=embeds.hidden_states[1:],
            pooled_prompt_embeds=embeds.pooled[:1], negative_pooled_prompt_embeds=embeds.pooled[1:],
        )
        return result.images[0]

    def save_refusal(self, path: str | Path) -> str | None:
        from backend.families.sd3.saving import save_refusal

        return save_refusal(path)

    def save(self, components: Components, path: str | Path, *, dtype: torch.dtype | None = None,
             metadata: dict[str, str] | None = None, states: StateOverrides | None = None,
             safetensors: bool = True) -> Path:
        """A ``.safetensors`` path: the whole model in SAI's single-file layout; another path: a diffusers
        StableDiffusion3Pipeline folder (always safetensors)."""
        from backend.families.sd3.saving import save_sd3

        return save_sd3(components, path, dtype=dtype, metadata=metadata, states=states)
