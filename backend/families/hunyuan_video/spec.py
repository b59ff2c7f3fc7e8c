"""HunyuanVideo text-to-video: Llama's templated hidden states and CLIP-L's pooled output condition a dual/single-
stream transformer over the HunyuanVideo VAE's latents.

As the diffusers HunyuanVideoPipeline and finetrainers' HunyuanVideoModelSpecification compute it:
- prompts (prompt.py): each wrapped in the chat template, tokenized to `crop_start + 256` tokens (padding to the
  right), Llama's third-to-last hidden states and the mask, both cropped of the template's `crop_start` tokens:
  ``hidden [B, 256, 4096]``, ``mask [B, 256]`` (the transformer's token refiner and attention take the mask).
  `crop_start` is the template's token count under the loaded tokenizer (95 with the real one, the pipeline's
  constant; a tiny tokenizer has its own), and the same template and crop go to the pipeline for validation.
  CLIP-L's `pooler_output` over 77 tokens is the pooled projection.
- latents: the VAE's posterior sampled (one generator per sample where the loop gives them) times the VAE's
  `scaling_factor` (0.476986), no per-channel statistics: ``[B, 16, 1 + (F - 1) / 4, H / 8, W / 8]``.
- time: flow time x 1000 as `timestep`; the guidance embedding gets finetrainers' training guidance 1.0 x 1000
  (the released transformer is guidance-distilled; the pipeline feeds its `guidance_scale` x 1000 the same
  way). The transformer patchifies (1, 2, 2) and builds its 3D RoPE itself: predict hands it unpacked latents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from backend.data.text_encoder_files import TextCacheFile
from backend.families.hunyuan_video.declaration import HUNYUAN_VIDEO
from backend.families.hunyuan_video.prompt import (
    CLIP_MAX_LENGTH,
    LLAMA_LAYERS_TO_SKIP,
    MAX_SEQUENCE_LENGTH,
    PROMPT_TEMPLATE,
    template_prefix,
)
from backend.families.video_saving import DiffusersFolderSaving
from backend.messages import msg
from backend.models.components import Components, PromptEmbeds
from backend.models.detect import ModelInfo
from backend.models.embeds_file import prompt_embeds_file
from backend.models.spec import ModelSpecification

if TYPE_CHECKING:
    from diffusers import AutoencoderKLHunyuanVideo, DiffusionPipeline, HunyuanVideoTransformer3DModel
    from PIL import Image

    from backend.models.configs import ArchConfigs
    from backend.objectives.base import Generators
    from backend.training.sample_prompts import SamplePrompt

SIZE_MULTIPLE = 16  # the VAE's 8x and the transformer's 2x2 patches
TRAINING_GUIDANCE = 1.0  # finetrainers' HunyuanVideoModelSpecification.forward(guidance=1.0)
GUIDANCE_SCALE = 1000.0  # the guidance embedding reads guidance x 1000 (pipeline and finetrainers alike)
SAMPLE_GUIDANCE = 6.0  # HunyuanVideoPipeline's default (embedded) guidance_scale


def check_clip_size(frames: int, height: int, width: int) -> None:
    """Frames 1 + 4k, height and width multiples of 16: what the VAE and the transformer's patches need."""
    step = HUNYUAN_VIDEO.temporal_compression
    if frames < 1 or (frames - 1) % step:
        raise ValueError(msg("hunyuan_video.frames", "HunyuanVideo takes 1 + {step}k frames (1, 5, 9, ..., 129), not "
                             "{frames}: the VAE compresses {step} frames after the first into one latent frame",
                             step=step, frames=frames))
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE or height <= 0 or width <= 0:
        raise ValueError(msg("hunyuan_video.size", "HunyuanVideo takes heights and widths that are multiples of "
                             "{multiple}, not {width}x{height} (the VAE's 8x and the transformer's 2x2 patches)",
                             multiple=SIZE_MULTIPLE, width=width, height=height))


def crop_start(tokenizer: Any) -> int:
    """The template's tokens before the prompt (BOS included) under `tokenizer`: 95 for Llama 3's."""
    return len(tokenizer(template_prefix(), add_special_tokens=True).input_ids)


def _scheduler(config: Mapping[str, Any]) -> Any:
    """The model's own sampling scheduler (FlowMatchEulerDiscreteScheduler, shift 7), from its config."""
    import diffusers

    cls = getattr(diffusers, str(config.get("_class_name", "")), None) or diffusers.FlowMatchEulerDiscreteScheduler
    return cls.from_config(dict(config))


class HunyuanVideoSpec(DiffusersFolderSaving, ModelSpecification):
    families: ClassVar[tuple[str, ...]] = (HUNYUAN_VIDEO.name,)

    def __init__(self, max_sequence_length: int = MAX_SEQUENCE_LENGTH,
                 training_guidance: float = TRAINING_GUIDANCE) -> None:
        self.max_sequence_length = max_sequence_length
        self.training_guidance = training_guidance

    def load(self, path: str | Path, **kwargs: Any) -> Components:
        from backend.families.hunyuan_video.loading import refuse_missing

        refuse_missing(path)
        return super().load(path, **kwargs)

    def load_detected(self, info: ModelInfo, files: Mapping[str, str | None], *, v_prediction: bool | None,
                      dtype: torch.dtype, tokenizer_cache_dir: str | Path | None, device: str) -> Components:
        from backend.families.hunyuan_video.loading import load_hunyuan_video

        return load_hunyuan_video(info, dtype)

    def load_weights(self, info: ModelInfo, dtype: torch.dtype, *, text_encoders: bool = True) -> Components:
        from backend.families.hunyuan_video.loading import load_hunyuan_video

        self.check_family(info)
        return load_hunyuan_video(info, dtype, text_encoders=text_encoders)

    def meta_modules(self, configs: ArchConfigs) -> tuple[torch.nn.Module, list[torch.nn.Module]]:
        from backend.families.hunyuan_video.loading import build_modules

        transformer, _, llama, clip = build_modules(configs)
        return transformer, [llama, clip]

    # --- text -------------------------------------------------------------------------------------

    def prompt_template(self, tokenizer: Any) -> dict[str, Any]:
        """The pipeline's `prompt_template` argument for `tokenizer` (its own crop)."""
        return {"template": PROMPT_TEMPLATE, "crop_start": crop_start(tokenizer)}

    def tokenize(self, tokenizers: list[Any], prompts: list[str], max_token_length: int | None = None
                 ) -> list[torch.Tensor]:
        """``[llama ids [B, crop + 256], llama mask [B, crop + 256], clip ids [B, 77]]`` (SD's CLIP chunking does
        not apply)."""
        llama_tokenizer, clip_tokenizer = tokenizers
        length = crop_start(llama_tokenizer) + self.max_sequence_length
        llama = llama_tokenizer([PROMPT_TEMPLATE.format(p) for p in prompts], max_length=length,
                                padding="max_length", truncation=True, return_attention_mask=True,
                                return_tensors="pt")
        clip = clip_tokenizer(prompts, max_length=CLIP_MAX_LENGTH, padding="max_length", truncation=True,
                              return_tensors="pt")
        return [llama.input_ids, llama.attention_mask, clip.input_ids]

    def text_cache_file(self, components: Components) -> TextCacheFile:
        """The precomputed conditions' files (train_video's --precomputation_dir)."""
        file = prompt_embeds_file("_conditions.npz", pooled=True, mask=True)
        return replace(file, encoding=f"max_sequence_length={self.max_sequence_length}")

    def encode_prompts(self, text_encoders: list[Any], token_ids: list[torch.Tensor], clip_skip: int | None = None
                       ) -> PromptEmbeds:
        llama, clip = text_encoders
        ids, mask, clip_ids = token_ids
        crop = ids.shape[1] - self.max_sequence_length  # tokenize padded to crop + max_sequence_length
        ids, mask = ids.to(llama.device, non_blocking=True), mask.to(llama.device, non_blocking=True)
        hidden = llama(ids, attention_mask=mask, output_hidden_states=True).hidden_states[-(LLAMA_LAYERS_TO_SKIP + 1)]
        pooled = clip(clip_ids.to(clip.device, non_blocking=True), output_hidden_states=False).pooler_output
        return PromptEmbeds(hidden[:, crop:], pooled, mask[:, crop:])

    # --- latents ----------------------------------------------------------------------------------

    def encode_images(self, vae: AutoencoderKLHunyuanVideo, images: torch.Tensor, generator: Generators = None
                      ) -> torch.Tensor:
        """Clips ``[B, 3, F, H, W]`` in [-1, 1] (images: F = 1, or ``[B, 3, H, W]``) -> scaled latents
        ``[B, 16, F', H/8, W/8]``; `generator` one or one per sample."""
        if images.ndim == 4:
            images = images.unsqueeze(2)
        _, _, frames, height, width = images.shape
        check_clip_size(frames, height, width)
        posterior = vae.encode(images.to(device=vae.device, dtype=vae.dtype)).latent_dist
        return posterior.sample(generator) * vae.config.scaling_factor  # randn_tensor: one generator per sample

    def decode_latents(self, vae: AutoencoderKLHunyuanVideo, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> clips ``[B, 3, F, H, W]`` in [-1, 1]."""
        latents = (latents.to(vae.device) / vae.config.scaling_factor).to(vae.dtype)
        return vae.decode(latents).sample.clamp(-1, 1)

    # --- the transformer --------------------------------------------------------------------------

    def predict(self, unet: HunyuanVideoTransformer3DModel, noisy_latents: torch.Tensor, timesteps: torch.Tensor,
                embeds: PromptEmbeds, time_ids: torch.Tensor | None = None, guidance: float | None = None,
                **extras: Any) -> torch.Tensor:
        """The velocity estimate for ``[B, 16, F', H', W']`` latents at flow time `timesteps` (0..1000), with the
        embedded guidance `guidance` (finetrainers' 1.0 while training)."""
        if noisy_latents.ndim != 5:
            raise ValueError(msg("hunyuan_video.latents_shape", "HunyuanVideo predicts on video latents [B, C, F, H, "
                                 "W], got a tensor of shape {shape}", shape=tuple(noisy_latents.shape)))
        if embeds.pooled is None or embeds.attention_mask is None:
            raise ValueError(msg("hunyuan_video.embeds_incomplete", "HunyuanVideo needs Llama's states, their mask and "
                                 "CLIP's pooled output; these text conditions lack the pooled output or the mask: "
                                 "encode the prompts again with this model"))
        device, dtype = noisy_latents.device, noisy_latents.dtype
        batch = noisy_latents.shape[0]
        scale = self.training_guidance if guidance is None else guidance
        embedded = (torch.full((batch,), scale * GUIDANCE_SCALE, device=device, dtype=dtype)
                    if unet.config.guidance_embeds else None)
        return unet(hidden_states=noisy_latents, timestep=timesteps.to(device),
                    encoder_hidden_states=embeds.hidden_states.to(device=device, dtype=dtype, non_blocking=True),
                    encoder_attention_mask=embeds.attention_mask.to(device, non_blocking=True),
                    pooled_projections=embeds.pooled.to(device=device, dtype=dtype, non_blocking=True),
                    guidance=embedded, return_dict=False)[0]

    # --- validation ---------------------------------------------------------------------------------

    def pipeline(self, components: Components) -> DiffusionPipeline:
        from diffusers import HunyuanVideoPipeline

        (llama, clip), (llama_tokenizer, clip_tokenizer) = components.text_encoders, components.tokenizers
        return HunyuanVideoPipeline(text_encoder=llama, tokenizer=llama_tokenizer, transformer=components.unet,
                                    vae=components.vae, scheduler=_scheduler(components.configs.scheduler),
                                    text_encoder_2=clip, tokenizer_2=clip_tokenizer)

    def render_video(self, components: Components, prompt: str, frames: int, height: int, width: int, steps: int,
                     guidance: float = SAMPLE_GUIDANCE, seed: int = 0, negative_prompt: str = "",
                     pipeline: DiffusionPipeline | None = None) -> list[Image.Image]:
        """One validation video (its frames) through HunyuanVideoPipeline with the model's own scheduler, fresh
        per call. `guidance` is the embedded (distilled) guidance; a negative prompt is used with true CFG at the
        same scale when given (the pipeline's `true_cfg_scale`)."""
        check_clip_size(frames, height, width)
        pipe = pipeline if pipeline is not None else self.pipeline(components)
        pipe.scheduler = _scheduler(components.configs.scheduler)
        true_cfg = {"negative_prompt": negative_prompt, "true_cfg_scale": guidance} if negative_prompt else {}
        result = pipe(prompt=prompt, height=height, width=width, num_frames=frames, num_inference_steps=steps,
                      guidance_scale=guidance, generator=torch.Generator().manual_seed(seed), output_type="pil",
                      prompt_template=self.prompt_template(pipe.tokenizer),
                      max_sequence_length=self.max_sequence_length, **true_cfg)
        return list(result.frames[0])

    def render_sample(self, pipeline: DiffusionPipeline, components: Components, prompt: SamplePrompt,
                      sampler_name: str, seed: int, *, clip_skip: int | None, max_token_length: int | None
                      ) -> Image.Image | list[Image.Image]:
        """A validation video's frames when the prompt names a frame count (`extra["num_frames"]`: the video
        trainer's), else a sample image: a one-frame video; sizes rounded down to 16, its steps and guidance."""
        width, height = (max(SIZE_MULTIPLE, side - side % SIZE_MULTIPLE) for side in (prompt.width, prompt.height))
        frames = int(prompt.extra.get("num_frames", 1))
        video = self.render_video(components, prompt.prompt, frames, height, width, prompt.sample_steps, prompt.scale,
                                  seed, prompt.negative_prompt or "", pipeline)
        return video if "num_frames" in prompt.extra else video[0]

    # Saving: DiffusersFolderSaving (the transformer folder; save_pipeline for the whole pipeline).
