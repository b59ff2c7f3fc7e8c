"""CogVideoX 1.0 text-to-video: T5 v1.1 XXL's hidden states condition an expert transformer over the CogVideoX
VAE's video latents.

As finetrainers' CogVideoXModelSpecification and the diffusers CogVideoXPipeline compute it:
- prompts: T5 over `max_sequence_length` tokens (226), padded to it, run without the attention mask and every
  state kept (the transformer joins the 226 text tokens to the video tokens and takes no text mask);
- latents: the VAE's posterior sampled (one generator per sample where the loop gives them) times the VAE
  config's `scaling_factor` (1.15258426 for 2B, 0.7 for 5B; no mean/std). [B, 16, 1 + (F - 1) / 4, H / 8,
  W / 8] for F frames, kept in that (unpacked) layout here; the transformer reads [B, F', C, H', W'], so
  `predict` swaps the axes in and out;
- time: the DDPM step (0..999) as the transformer's `timestep`; the model predicts v;
- positions: 2B adds 3D sinusoidal positions itself; 5B (`use_rotary_positional_embeddings`) takes its 3D RoPE
  from the caller, built here as the pipeline builds it: a grid of H' / 2 x W' / 2 patches cropped from the
  trained 45 x 30 patch grid (`get_resize_crop_region_for_grid`), F' frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from backend.data.text_encoder_files import TextCacheFile
from backend.families.cogvideox.declaration import COGVIDEOX
from backend.families.video_saving import DiffusersFolderSaving
from backend.messages import msg
from backend.models.components import Components, PromptEmbeds
from backend.models.detect import ModelInfo
from backend.models.embeds_file import prompt_embeds_file
from backend.models.spec import ModelSpecification

if TYPE_CHECKING:
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel, DiffusionPipeline
    from PIL import Image

    from backend.models.configs import ArchConfigs
    from backend.objectives.base import Generators
    from backend.training.sample_prompts import SamplePrompt

MAX_SEQUENCE_LENGTH = 226  # CogVideoXPipeline's and finetrainers' default: the transformer's max_text_seq_length
SIZE_MULTIPLE = 16  # the VAE's 8x and the transformer's 2x2 patches
SAMPLE_GUIDANCE = 6.0  # CogVideoXPipeline's default classifier-free guidance


def check_clip_size(frames: int, height: int, width: int) -> None:
    """Frames 1 + 4k, height and width multiples of 16: what the VAE and the transformer's patches need."""
    step = COGVIDEOX.temporal_compression
    if frames < 1 or (frames - 1) % step:
        raise ValueError(msg("cogvideox.frames", "CogVideoX takes 1 + {step}k frames (1, 5, 9, ..., 49), not "
                             "{frames}: the VAE compresses {step} frames after the first into one latent frame",
                             step=step, frames=frames))
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE or height <= 0 or width <= 0:
        raise ValueError(msg("cogvideox.size", "CogVideoX takes heights and widths that are multiples of "
                             "{multiple}, not {width}x{height} (the VAE's 8x and the transformer's 2x2 patches)",
                             multiple=SIZE_MULTIPLE, width=width, height=height))


def check_video_frames(frames: int) -> None:
    """A rendered video has 1 + 8k frames: the VAE decodes an odd number of latent frames n into 1 + 4 (n - 1)
    frames (an even number into 4n), so only those counts come back as asked (CogVideoX's own: 49)."""
    if frames < 1 or (frames - 1) % (2 * COGVIDEOX.temporal_compression):
        raise ValueError(msg("cogvideox.video_frames", "CogVideoX renders videos of 1 + 8k frames (1, 9, 17, ..., "
                             "49), not {frames}: its VAE decodes an even number of latent frames into a different "
                             "frame count", frames=frames))


def rotary_embeddings(transformer: CogVideoXTransformer3DModel, frames: int, height: int, width: int,
                      device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The 3D RoPE (cos, sin) of `frames` x `height` x `width` latents for a transformer using RoPE (5B), else
    None: CogVideoX 1.0's grid, cropped from the trained sample size as the pipeline and finetrainers crop it."""
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

    config = transformer.config
    if not config.use_rotary_positional_embeddings:
        return None
    patch = config.patch_size
    grid = (height // patch, width // patch)
    crops = get_resize_crop_region_for_grid(grid, config.sample_width // patch, config.sample_height // patch)
    cos, sin = get_3d_rotary_pos_embed(embed_dim=config.attention_head_dim, crops_coords=crops, grid_size=grid,
                                       temporal_size=frames, device=device)
    return cos.to(device), sin.to(device)


def _scheduler(config: Mapping[str, Any]) -> Any:
    """The model's own sampling scheduler (the repos ship CogVideoXDDIMScheduler), from its config."""
    import diffusers

    cls = getattr(diffusers, str(config.get("_class_name", "")), None) or diffusers.CogVideoXDDIMScheduler
    return cls.from_config(dict(config))


class CogVideoXSpec(DiffusersFolderSaving, ModelSpecification):
    families: ClassVar[tuple[str, ...]] = (COGVIDEOX.name,)

    def __init__(self, max_sequence_length: int = MAX_SEQUENCE_LENGTH) -> None:
        self.max_sequence_length = max_sequence_length

    def load(self, path: str | Path, **kwargs: Any) -> Components:
        from backend.families.cogvideox.loading import refuse_missing

        refuse_missing(path)
        return super().load(path, **kwargs)

    def load_detected(self, info: ModelInfo, files: Mapping[str, str | None], *, v_prediction: bool | None,
                      dtype: torch.dtype, tokenizer_cache_dir: str | Path | None, device: str) -> Components:
        from backend.families.cogvideox.loading import load_cogvideox

        return load_cogvideox(info, dtype)

    def load_weights(self, info: ModelInfo, dtype: torch.dtype, *, text_encoders: bool = True) -> Components:
        from backend.families.cogvideox.loading import load_cogvideox

        self.check_family(info)
        return load_cogvideox(info, dtype, text_encoders=text_encoders)

    def meta_modules(self, configs: ArchConfigs) -> tuple[torch.nn.Module, list[torch.nn.Module]]:
        from backend.families.cogvideox.loading import build_modules

        transformer, _, t5 = build_modules(configs)
        return transformer, [t5]

    # --- text -------------------------------------------------------------------------------------

    def tokenize(self, tokenizers: list[Any], prompts: list[str], max_token_length: int | None = None
                 ) -> list[torch.Tensor]:
        """``[ids [B, 226]]``: padded to `max_sequence_length` (SD's CLIP chunking does not apply)."""
        tokens = tokenizers[0](list(prompts), max_length=self.max_sequence_length, padding="max_length",
                               truncation=True, add_special_tokens=True, return_tensors="pt")
        return [tokens.input_ids]

    def text_cache_file(self, components: Components) -> TextCacheFile:
        """The precomputed conditions' files (train_video's --precomputation_dir)."""
        file = prompt_embeds_file("_conditions.npz")
        return replace(file, encoding=f"max_sequence_length={self.max_sequence_length}")

    def encode_prompts(self, text_encoders: list[Any], token_ids: list[torch.Tensor], clip_skip: int | None = None
                       ) -> PromptEmbeds:
        (t5,) = text_encoders
        ids = token_ids[0].to(t5.device, non_blocking=True)
        return PromptEmbeds(t5(ids)[0])  # no mask: padding states kept, as the pipeline and finetrainers do

    # --- latents ----------------------------------------------------------------------------------

    def encode_images(self, vae: AutoencoderKLCogVideoX, images: torch.Tensor, generator: Generators = None
                      ) -> torch.Tensor:
        """Clips ``[B, 3, F, H, W]`` in [-1, 1] (images: F = 1, or ``[B, 3, H, W]``) -> scaled latents
        ``[B, 16, F', H/8, W/8]``; `generator` one or one per sample."""
        if images.ndim == 4:
            images = images.unsqueeze(2)
        _, _, frames, height, width = images.shape
        check_clip_size(frames, height, width)
        posterior = vae.encode(images.to(device=vae.device, dtype=vae.dtype)).latent_dist
        latents = posterior.sample(generator)  # diffusers' randn_tensor takes one generator per sample
        return latents * vae.config.scaling_factor

    def decode_latents(self, vae: AutoencoderKLCogVideoX, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> clips ``[B, 3, F, H, W]`` in [-1, 1]."""
        latents = (latents.to(vae.device).float() / vae.config.scaling_factor).to(vae.dtype)
        return vae.decode(latents).sample.clamp(-1, 1)

    # --- the transformer --------------------------------------------------------------------------

    def predict(self, unet: CogVideoXTransformer3DModel, noisy_latents: torch.Tensor, timesteps: torch.Tensor,
                embeds: PromptEmbeds, time_ids: torch.Tensor | None = None, **extras: Any) -> torch.Tensor:
        """The v estimate for ``[B, 16, F', H', W']`` latents at DDPM steps `timesteps` (0..999)."""
        if noisy_latents.ndim != 5:
            raise ValueError(msg("cogvideox.latents_shape", "CogVideoX predicts on video latents [B, C, F, H, W], "
                                 "got a tensor of shape {shape}", shape=tuple(noisy_latents.shape)))
        device, dtype = noisy_latents.device, noisy_latents.dtype
        _, _, frames, height, width = noisy_latents.shape
        text = embeds.hidden_states.to(device=device, dtype=dtype, non_blocking=True)
        rope = rotary_embeddings(unet, frames, height, width, device)
        out = unet(hidden_states=noisy_latents.permute(0, 2, 1, 3, 4), encoder_hidden_states=text,
                   timestep=timesteps.to(device).long(), image_rotary_emb=rope, return_dict=False)[0]
        return out.permute(0, 2, 1, 3, 4)

    # --- validation ---------------------------------------------------------------------------------

    def pipeline(self, components: Components) -> DiffusionPipeline:
        from diffusers import CogVideoXPipeline

        (t5,), (tokenizer,) = components.text_encoders, components.tokenizers
        return CogVideoXPipeline(tokenizer=tokenizer, text_encoder=t5, vae=components.vae,
                                 transformer=components.unet, scheduler=_scheduler(components.configs.scheduler))

    def render_video(self, components: Components, prompt: str, frames: int, height: int, width: int, steps: int,
                     guidance: float = SAMPLE_GUIDANCE, seed: int = 0, negative_prompt: str = "",
                     pipeline: DiffusionPipeline | None = None) -> list[Image.Image]:
        """One validation video (its frames) through CogVideoXPipeline with the model's own scheduler, fresh
        per call."""
        check_clip_size(frames, height, width)
        check_video_frames(frames)
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
        trainer's), else a sample image: a one-frame video; sizes rounded down to 16, its steps and CFG scale.
        A count the VAE does not decode as such (1 + 4k, k odd: 5, 13, ...) is rendered 4 frames longer and cut to
        length, so a validation run never stops on it."""
        width, height = (max(SIZE_MULTIPLE, side - side % SIZE_MULTIPLE) for side in (prompt.width, prompt.height))
        frames = int(prompt.extra.get("num_frames", 1))
        check_clip_size(frames, height, width)
        rendered = frames + (1 - frames) % (2 * COGVIDEOX.temporal_compression)  # the next 1 + 8k
        video = self.render_video(components, prompt.prompt, rendered, height, width, prompt.sample_steps,
                                  prompt.scale, seed, prompt.negative_prompt or "", pipeline)[:frames]
        return video if "num_frames" in prompt.extra else video[0]

    # Saving: DiffusersFolderSaving (the transformer folder; save_pipeline for the whole pipeline).
