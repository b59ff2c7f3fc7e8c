"""Wan 2.1 text-to-video: UMT5-XXL's hidden states condition a transformer over the Wan VAE's video latents.

As the diffusers WanPipeline (and Wan's own code) computes it:
- prompts: UMT5 with the attention mask over `max_sequence_length` tokens (512), every state past the
  prompt's own tokens set to zero (so padding is the same whatever the encoder makes of it); the
  transformer takes no text mask. finetrainers v0.2 (T5Processor for Wan) runs UMT5 without the mask and
  keeps the padded states: a difference in the text conditioning only, chosen to match how the released
  models and the pipeline encode prompts.
- latents: the VAE's posterior sampled (one generator per sample where the loop gives them), then
  normalised per channel by the VAE config's `latents_mean` / `latents_std`: ``(z - mean) / std``, the
  inverse of what the pipeline decodes with. [B, 16, 1 + (F - 1) / 4, H / 8, W / 8] for F frames.
  (finetrainers normalises the posterior's mean and log-variance before sampling; the sample's mean is the
  same, its spread differs by the normalisation of the log-variance.)
- time: the flow-matching time x 1000 as the transformer's `timestep`; it patchifies (1, 2, 2) and builds
  its 3D RoPE itself, so predict hands it the unpacked latents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from backend.data.text_encoder_files import TextCacheFile
from backend.families.video_saving import DiffusersFolderSaving
from backend.families.wan.declaration import WAN
from backend.messages import msg
from backend.models.components import Components, PromptEmbeds
from backend.models.detect import ModelInfo
from backend.models.embeds_file import prompt_embeds_file
from backend.models.spec import ModelSpecification

if TYPE_CHECKING:
    from diffusers import AutoencoderKLWan, DiffusionPipeline, WanTransformer3DModel
    from PIL import Image

    from backend.models.configs import ArchConfigs
    from backend.objectives.base import Generators
    from backend.training.sample_prompts import SamplePrompt

MAX_SEQUENCE_LENGTH = 512  # WanPipeline's and finetrainers' default
SIZE_MULTIPLE = 16  # the VAE's 8x and the transformer's 2x2 patches
SAMPLE_GUIDANCE = 5.0  # WanPipeline's default classifier-free guidance


def check_clip_size(frames: int, height: int, width: int) -> None:
    """Frames 1 + 4k, height and width multiples of 16: what the VAE and the transformer's patches need."""
    step = WAN.temporal_compression
    if frames < 1 or (frames - 1) % step:
        raise ValueError(msg("wan.frames", "Wan 2.1 takes 1 + {step}k frames (1, 5, 9, ..., 81), not {frames}: "
                             "the VAE compresses {step} frames after the first into one latent frame",
                             step=step, frames=frames))
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE or height <= 0 or width <= 0:
        raise ValueError(msg("wan.size", "Wan 2.1 takes heights and widths that are multiples of {multiple}, not "
                             "{width}x{height} (the VAE's 8x and the transformer's 2x2 patches)",
                             multiple=SIZE_MULTIPLE, width=width, height=height))


def _channel_stats(vae: AutoencoderKLWan, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1, -1, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean, device=like.device, dtype=torch.float32).view(shape)
    std = torch.tensor(vae.config.latents_std, device=like.device, dtype=torch.float32).view(shape)
    return mean, std


def _scheduler(config: Mapping[str, Any]) -> Any:
    """The model's own sampling scheduler (the repos ship UniPC with flow sigmas), from its config."""
    import diffusers

    cls = getattr(diffusers, str(config.get("_class_name", "")), None) or diffusers.UniPCMultistepScheduler
    return cls.from_config(dict(config))


class WanSpec(DiffusersFolderSaving, ModelSpecification):
    families: ClassVar[tuple[str, ...]] = (WAN.name,)

    def __init__(self, max_sequence_length: int = MAX_SEQUENCE_LENGTH) -> None:
        self.max_sequence_length = max_sequence_length

    def load(self, path: str | Path, **kwargs: Any) -> Components:
        from backend.families.wan.loading import refuse_missing

        refuse_missing(path)
        return super().load(path, **kwargs)

    def load_detected(self, info: ModelInfo, files: Mapping[str, str | None], *, v_prediction: bool | None,
                      dtype: torch.dtype, tokenizer_cache_dir: str | Path | None, device: str) -> Components:
        from backend.families.wan.loading import load_wan

        return load_wan(info, dtype)

    def load_weights(self, info: ModelInfo, dtype: torch.dtype, *, text_encoders: bool = True) -> Components:
        from backend.families.wan.loading import load_wan

        self.check_family(info)
        return load_wan(info, dtype, text_encoders=text_encoders)

    def meta_modules(self, configs: ArchConfigs) -> tuple[torch.nn.Module, list[torch.nn.Module]]:
        from backend.families.wan.loading import build_modules

        transformer, _, umt5 = build_modules(configs)
        return transformer, [umt5]

    # --- text -------------------------------------------------------------------------------------

    def tokenize(self, tokenizers: list[Any], prompts: list[str], max_token_length: int | None = None
                 ) -> list[torch.Tensor]:
        """``[ids [B, L], mask [B, L]]`` with L = `max_sequence_length` (SD's CLIP chunking does not apply)."""
        from diffusers.pipelines.wan.pipeline_wan import prompt_clean

        tokens = tokenizers[0]([prompt_clean(p) for p in prompts], max_length=self.max_sequence_length,
                               padding="max_length", truncation=True, add_special_tokens=True,
                               return_attention_mask=True, return_tensors="pt")
        return [tokens.input_ids, tokens.attention_mask]

    def text_cache_file(self, components: Components) -> TextCacheFile:
        """The precomputed conditions' files (train_video's --precomputation_dir)."""
        file = prompt_embeds_file("_conditions.npz")
        return replace(file, encoding=f"max_sequence_length={self.max_sequence_length}")

    def encode_prompts(self, text_encoders: list[Any], token_ids: list[torch.Tensor], clip_skip: int | None = None
                       ) -> PromptEmbeds:
        (umt5,) = text_encoders
        ids, mask = (t.to(umt5.device, non_blocking=True) for t in token_ids)
        hidden = umt5(ids, attention_mask=mask).last_hidden_state
        return PromptEmbeds(hidden * mask.unsqueeze(-1).to(hidden.dtype))  # states past the prompt: zeros

    # --- latents ----------------------------------------------------------------------------------

    def encode_images(self, vae: AutoencoderKLWan, images: torch.Tensor, generator: Generators = None
                      ) -> torch.Tensor:
        """Clips ``[B, 3, F, H, W]`` in [-1, 1] (images: F = 1, or ``[B, 3, H, W]``) -> normalised latents
        ``[B, 16, F', H/8, W/8]``; `generator` one or one per sample."""
        if images.ndim == 4:
            images = images.unsqueeze(2)
        _, _, frames, height, width = images.shape
        check_clip_size(frames, height, width)
        posterior = vae.encode(images.to(device=vae.device, dtype=vae.dtype)).latent_dist
        latents = posterior.sample(generator)  # diffusers' randn_tensor takes one generator per sample
        mean, std = _channel_stats(vae, latents)
        return ((latents.float() - mean) / std).to(latents.dtype)

    def decode_latents(self, vae: AutoencoderKLWan, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> clips ``[B, 3, F, H, W]`` in [-1, 1]."""
        mean, std = _channel_stats(vae, latents)
        latents = (latents.to(vae.device).float() * std + mean).to(vae.dtype)
        return vae.decode(latents).sample.clamp(-1, 1)

    # --- the transformer --------------------------------------------------------------------------

    def predict(self, unet: WanTransformer3DModel, noisy_latents: torch.Tensor, timesteps: torch.Tensor,
                embeds: PromptEmbeds, time_ids: torch.Tensor | None = None, **extras: Any) -> torch.Tensor:
        """The velocity estimate for ``[B, 16, F', H', W']`` latents at flow time `timesteps` (0..1000)."""
        if noisy_latents.ndim != 5:
            raise ValueError(msg("wan.latents_shape", "Wan 2.1 predicts on video latents [B, C, F, H, W], got a "
                                 "tensor of shape {shape}", shape=tuple(noisy_latents.shape)))
        device, dtype = noisy_latents.device, noisy_latents.dtype
        text = embeds.hidden_states.to(device=device, dtype=dtype, non_blocking=True)
        return unet(hidden_states=noisy_latents, timestep=timesteps.to(device), encoder_hidden_states=text,
                    return_dict=False)[0]

    # --- validation ---------------------------------------------------------------------------------

    def pipeline(self, components: Components) -> DiffusionPipeline:
        from diffusers import WanPipeline

        (umt5,), (tokenizer,) = components.text_encoders, components.tokenizers
        return WanPipeline(tokenizer=tokenizer, text_encoder=umt5, vae=components.vae, transformer=components.unet,
                           scheduler=_scheduler(components.configs.scheduler))

    def render_video(self, components: Components, prompt: str, frames: int, height: int, width: int, steps: int,
                     guidance: float = SAMPLE_GUIDANCE, seed: int = 0, negative_prompt: str = "",
                     pipeline: DiffusionPipeline | None = None) -> list[Image.Image]:
        """One validation video (its frames) through WanPipeline with the model's own scheduler, fresh per call."""
        check_clip_size(frames, height, width)
        pipe = pipeline if pipeline is not None else self.pipeline(components)
        pipe.scheduler = _scheduler(components.configs.scheduler)
        result = pipe(prompt=prompt, negative_prompt=negative_prompt or None, height=height, width=width,
                      num_frames=frames, num_inference_steps=steps, guidance_scale=guidance,
                      generator=torch.Generator().manual_seed(seed), output_type="pil",
                      max_sequence_length=self.max_sequence_length)
        return list(result.frames[0])

    def render_sample(self, pipeline: DiffusionPipeline, components: Components, prompt: SamplePrompt,
                      sampler_name: str, seed: int, *, clip_skip: int | None, max_token_length: int | None
                      ) -> Image.Image | list[Image.Image]:
        """A validation video's frames when the prompt names a frame count (`extra["num_frames"]`: the video
        trainer's), else a sample image: a one-frame video; sizes rounded down to 16, its steps and CFG scale."""
        width, height = (max(SIZE_MULTIPLE, side - side % SIZE_MULTIPLE) for side in (prompt.width, prompt.height))
        frames = int(prompt.extra.get("num_frames", 1))
        video = self.render_video(components, prompt.prompt, frames, height, width, prompt.sample_steps, prompt.scale,
                                  seed, prompt.negative_prompt or "", pipeline)
        return video if "num_frames" in prompt.extra else video[0]

    # Saving: DiffusersFolderSaving (the transformer folder; save_pipeline for the whole pipeline).
