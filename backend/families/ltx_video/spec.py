"""LTX-Video: T5 captions condition a transformer over one token per latent pixel of every latent frame.

As diffusers' LTXPipeline and finetrainers' LTXVideoModelSpecification compute it:
- prompts: the T5 tokenizer pads/truncates to 128 tokens; T5 runs without the mask, and the mask goes to the
  transformer's cross-attention (`encoder_attention_mask`), which ignores the padding.
- latents: the VAE posterior sampled, then normalised per channel with the VAE's `latents_mean` /
  `latents_std` buffers (x `scaling_factor`, 1.0): `[B, 128, (F - 1) / 8 + 1, H / 32, W / 32]`.
- the transformer sees them packed to `[B, F' H' W', C]` tokens (patch size 1 x 1) with the latent grid size
  and its RoPE interpolation scale (temporal 8 / frame rate, spatial 32, 32: finetrainers trains at 25 fps),
  and time as sigma x 1000; its output is unpacked back to the latents' shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from backend.data.text_encoder_files import TextCacheFile
from backend.families import declaration
from backend.families.ltx_video.declaration import NAME
from backend.messages import msg
from backend.models.components import Components, PromptEmbeds
from backend.models.embeds_file import prompt_embeds_file
from backend.models.spec import ModelSpecification

if TYPE_CHECKING:
    from diffusers import AutoencoderKLLTXVideo, DiffusionPipeline, LTXPipeline, LTXVideoTransformer3DModel
    from PIL import Image

    from backend.models.configs import ArchConfigs
    from backend.models.detect import ModelInfo
    from backend.models.saving import StateOverrides
    from backend.objectives.base import Generators
    from backend.training.sample_prompts import SamplePrompt

MAX_SEQUENCE_LENGTH = 128  # LTXPipeline's default and finetrainers' prepare_conditions default
FRAME_RATE = 25  # finetrainers' LTX-Video forward and LTXPipeline's default
_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft")


def compression() -> tuple[int, int]:
    """(temporal, spatial): the VAE's, from the declaration."""
    decl = declaration(NAME)
    return decl.temporal_compression, decl.spatial_compression


def check_clip_shape(frames: int, height: int, width: int) -> None:
    """A clip the VAE can encode whole: (F - 1) % 8 == 0, H and W multiples of 32."""
    temporal, spatial = compression()
    if (frames - 1) % temporal or height % spatial or width % spatial or min(frames, height, width) < 1:
        raise ValueError(msg(
            "ltx_video.clip_shape", "LTX-Video encodes clips of 1 + 8k frames whose height and width are multiples "
            "of 32; got {frames} frames of {height}x{width}: resize or trim the clip (e.g. {fixed_frames} frames of "
            "{fixed_height}x{fixed_width})", frames=frames, height=height, width=width,
            fixed_frames=max(1, (frames - 1) // temporal * temporal + 1), fixed_height=max(spatial, height // spatial * spatial),
            fixed_width=max(spatial, width // spatial * spatial)))


def pack_latents(latents: torch.Tensor, patch_size: int = 1, patch_size_t: int = 1) -> torch.Tensor:
    """``[B, C, F, H, W]`` -> ``[B, F/pt * H/p * W/p, C * pt * p * p]`` (the pipeline's token order)."""
    b, c, f, h, w = latents.shape
    x = latents.reshape(b, c, f // patch_size_t, patch_size_t, h // patch_size, patch_size, w // patch_size, patch_size)
    return x.permute(0, 2, 4, 6, 1, 3, 5, 7).flatten(4, 7).flatten(1, 3)


def unpack_latents(tokens: torch.Tensor, frames: int, height: int, width: int, patch_size: int = 1,
                   patch_size_t: int = 1) -> torch.Tensor:
    """The inverse of `pack_latents` for a latent grid of frames x height x width (in patches)."""
    b = tokens.shape[0]
    x = tokens.reshape(b, frames, height, width, -1, patch_size_t, patch_size, patch_size)
    return x.permute(0, 4, 1, 5, 2, 6, 3, 7).flatten(6, 7).flatten(4, 5).flatten(2, 3)


def _channel_stats(vae: AutoencoderKLLTXVideo, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1, -1, 1, 1, 1)
    return (vae.latents_mean.view(shape).to(like.device, torch.float32),
            vae.latents_std.view(shape).to(like.device, torch.float32))


class LTXVideoSpec(ModelSpecification):
    families = (NAME,)

    def __init__(self, max_sequence_length: int = MAX_SEQUENCE_LENGTH, frame_rate: int = FRAME_RATE) -> None:
        self.max_sequence_length = max_sequence_length
        self.frame_rate = frame_rate  # the RoPE's temporal scale: finetrainers trains LTX-Video at 25 fps

    # --- loading and saving ---------------------------------------------------------------------------

    def load_detected(self, info: ModelInfo, files: Mapping[str, str | None], *, v_prediction: bool | None,
                      dtype: torch.dtype, tokenizer_cache_dir: str | Path | None, device: str) -> Components:
        from backend.families.ltx_video.loading import load_folder

        return load_folder(info, dtype)

    def load_weights(self, info: ModelInfo, dtype: torch.dtype, *, text_encoders: bool = True) -> Components:
        from backend.families.ltx_video.loading import load_folder

        self.check_family(info)
        return load_folder(info, dtype)

    def meta_modules(self, configs: ArchConfigs) -> tuple[torch.nn.Module, list[torch.nn.Module]]:
        from accelerate import init_empty_weights
        from diffusers import LTXVideoTransformer3DModel
        from transformers import T5Config, T5EncoderModel

        with init_empty_weights():
            return (LTXVideoTransformer3DModel.from_config(configs.unet),
                    [T5EncoderModel(T5Config.from_dict(configs.text_encoders[0]))])

    def save_refusal(self, path: str | Path) -> str | None:
        path = Path(path)
        if path.suffix.lower() in _FILE_SUFFIXES:
            return msg("ltx_video.save_file", "{path}: LTX-Video models are saved as diffusers folders (a whole "
                       "LTXPipeline folder, or transformer/ for a fine-tune), not as a {suffix} file; give a folder",
                       path=path, suffix=path.suffix)
        return None

    def save(self, components: Components, path: str | Path, *, dtype: torch.dtype | None = None,
             metadata: dict[str, str] | None = None, states: StateOverrides | None = None,
             safetensors: bool = True) -> Path:
        """A full fine-tune as finetrainers saves it: the transformer alone as a diffusers model folder
        (`states` replaces its weights; the video families' fine-tunes save this way)."""
        from backend.families.ltx_video.loading import save_transformer_folder

        refusal = self.save_refusal(path)
        if refusal:
            raise ValueError(refusal)
        return save_transformer_folder(components, path, dtype=dtype, states=states)

    def save_pipeline(self, components: Components, path: str | Path, *, dtype: torch.dtype | None = None,
                      states: StateOverrides | None = None) -> Path:
        """The whole LTXPipeline folder (what `LTXPipeline.from_pretrained` loads)."""
        from backend.families.ltx_video.loading import save_pipeline_folder

        refusal = self.save_refusal(path)
        if refusal:
            raise ValueError(refusal)
        return save_pipeline_folder(components, path, dtype=dtype, states=states)

    # --- text ---------------------------------------------------------------------------------------

    def tokenize(self, tokenizers: list[Any], prompts: list[str], max_token_length: int | None = None
                 ) -> list[torch.Tensor]:
        """``[ids [B, L], mask [B, L]]`` with L = 128 (`max_token_length`, SD's CLIP chunking, does not apply)."""
        tokens = tokenizers[0](prompts, padding="max_length", max_length=self.max_sequence_length, truncation=True,
                               add_special_tokens=True, return_tensors="pt")
        return [tokens.input_ids, tokens.attention_mask]

    def text_cache_file(self, components: Components) -> TextCacheFile:
        """The precomputed conditions' files (train_video's --precomputation_dir)."""
        file = prompt_embeds_file("_conditions.npz", mask=True)
        return replace(file, encoding=f"max_sequence_length={self.max_sequence_length}")

    def encode_prompts(self, text_encoders: list[Any], token_ids: list[torch.Tensor], clip_skip: int | None = None
                       ) -> PromptEmbeds:
        """T5's last hidden states (T5 runs unmasked, as LTXPipeline and finetrainers run it) and the mask."""
        t5 = text_encoders[0]
        ids, mask = token_ids
        hidden = t5(ids.to(t5.device, non_blocking=True))[0]
        return PromptEmbeds(hidden, None, mask.to(hidden.device).bool())

    # --- latents ------------------------------------------------------------------------------------

    def encode_images(self, vae: Any, images: torch.Tensor, generator: Generators | torch.Generator = None
                      ) -> torch.Tensor:
        """Clips ``[B, 3, F, H, W]`` (images ``[B, 3, H, W]``: one frame) in [-1, 1] -> normalised latents
        ``[B, C, (F - 1) / 8 + 1, H / 32, W / 32]``, the posterior sampled with `generator` (one, or one per clip)."""
        if images.ndim == 4:
            images = images.unsqueeze(2)
        if images.ndim != 5 or images.shape[1] != 3:
            raise ValueError(msg("ltx_video.clip_layout", "LTX-Video encodes clips shaped [batch, 3, frames, height, "
                                 "width], got {shape}", shape=list(images.shape)))
        check_clip_shape(*images.shape[2:])
        videos = images.to(device=vae.device, dtype=vae.dtype)
        # diffusers' randn_tensor draws clip i from generator i when given a list (one per clip).
        latents = vae.encode(videos).latent_dist.sample(generator)
        mean, std = _channel_stats(vae, latents)
        return ((latents.float() - mean) * vae.config.scaling_factor / std).to(latents.dtype)

    def decode_latents(self, vae: Any, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> clips ``[B, 3, F, H, W]`` in [-1, 1] (the timestep-conditioned decoder at 0,
        LTXPipeline's default decode_timestep)."""
        mean, std = _channel_stats(vae, latents)
        raw = (latents.float() * std / vae.config.scaling_factor + mean).to(device=vae.device, dtype=vae.dtype)
        temb = torch.zeros(raw.shape[0], device=vae.device, dtype=vae.dtype) if vae.config.timestep_conditioning else None
        return vae.decode(raw, temb, return_dict=False)[0].clamp(-1, 1)

    # --- the transformer ----------------------------------------------------------------------------

    def rope_interpolation_scale(self) -> tuple[float, float, float]:
        temporal, spatial = compression()
        return temporal / self.frame_rate, float(spatial), float(spatial)

    def predict(self, unet: LTXVideoTransformer3DModel, noisy_latents: torch.Tensor, timesteps: torch.Tensor,
                embeds: PromptEmbeds, time_ids: torch.Tensor | None = None, **extras: Any) -> torch.Tensor:
        """The velocity estimate for ``[B, C, F, H, W]`` latents at flow time `timesteps` (0..1000, per sample
        ``[B]`` or per token ``[B, F H W]``), in the latents' shape."""
        config = unet.config
        p, pt = config.patch_size, config.patch_size_t
        b, _, frames, height, width = noisy_latents.shape
        device, dtype = noisy_latents.device, noisy_latents.dtype
        text = embeds.hidden_states.to(device=device, dtype=dtype, non_blocking=True)
        mask = embeds.attention_mask
        mask = torch.ones(text.shape[:2], device=device) if mask is None else mask.to(device, non_blocking=True)
        out = unet(
            hidden_states=pack_latents(noisy_latents, p, pt),
            encoder_hidden_states=text,
            timestep=timesteps.to(device=device, dtype=torch.float32).expand(b, *timesteps.shape[1:]),
            encoder_attention_mask=mask.to(dtype),
            num_frames=frames // pt, height=height // p, width=width // p,
            rope_interpolation_scale=self.rope_interpolation_scale(),
            return_dict=False,
        )[0]
        return unpack_latents(out, frames // pt, height // p, width // p, p, pt)

    # --- validation ---------------------------------------------------------------------------------

    def pipeline(self, components: Components) -> LTXPipeline:
        from diffusers import FlowMatchEulerDiscreteScheduler, LTXPipeline

        return LTXPipeline(scheduler=FlowMatchEulerDiscreteScheduler.from_config(components.configs.scheduler),
                           vae=components.vae, text_encoder=components.text_encoders[0],
                           tokenizer=components.tokenizers[0], transformer=components.unet)

    def image_pipeline(self, components: Components) -> DiffusionPipeline:
        """LTXImageToVideoPipeline on the same modules: a validation video from a first frame."""
        from diffusers import LTXImageToVideoPipeline

        text = self.pipeline(components)
        return LTXImageToVideoPipeline(scheduler=text.scheduler, vae=text.vae, text_encoder=text.text_encoder,
                                       tokenizer=text.tokenizer, transformer=text.transformer)

    def render_video(self, components: Components, prompt: str, frames: int, height: int, width: int, steps: int,
                     guidance: float, seed: int, *, negative_prompt: str = "", pipeline: DiffusionPipeline | None = None,
                     decode_timestep: float = 0.0, image: Image.Image | None = None) -> list[Image.Image]:
        """One validation video (finetrainers' `validation`: LTXPipeline at 25 fps) as PIL frames: the prompts
        encoded as for training, the pipeline's flow-matching Euler scheduler with its dynamic shift, CFG
        `guidance` (off at 1 or below). With `image`, the video starts from it (LTXImageToVideoPipeline: the
        first latent frame is the image's, as finetrainers' first-frame conditioning trains it)."""
        check_clip_shape(frames, height, width)
        if image is not None:
            pipe = self.image_pipeline(components) if pipeline is None or "image" not in _parameters(pipeline) \
                else pipeline
        else:
            pipe = pipeline or self.pipeline(components)
        token_ids = self.tokenize(components.tokenizers, [prompt, negative_prompt])
        embeds = self.encode_prompts(components.text_encoders, token_ids)
        mask = embeds.attention_mask
        assert mask is not None
        result = pipe(
            prompt_embeds=embeds.hidden_states[:1], prompt_attention_mask=mask[:1],
            negative_prompt_embeds=embeds.hidden_states[1:], negative_prompt_attention_mask=mask[1:],
            num_frames=frames, height=height, width=width, frame_rate=self.frame_rate,
            num_inference_steps=steps, guidance_scale=guidance, decode_timestep=decode_timestep,
            generator=torch.Generator().manual_seed(seed), max_sequence_length=self.max_sequence_length,
            output_type="pil", **({"image": image} if image is not None else {}),
        )
        return list(result.frames[0])

    def render_sample(self, pipeline: DiffusionPipeline, components: Components, prompt: SamplePrompt,
                      sampler_name: str, seed: int, *, clip_skip: int | None, max_token_length: int | None
                      ) -> Image.Image | list[Image.Image]:
        """A validation video's frames when the prompt names a frame count (`extra["num_frames"]`: the video
        trainer's), else a sample image: a one-frame video; sizes rounded down to multiples of 32."""
        _, spatial = compression()
        width, height = (max(spatial, side - side % spatial) for side in (prompt.width, prompt.height))
        frames = int(prompt.extra.get("num_frames", 1))
        image = None
        if prompt.extra.get("image"):  # an image-to-video validation row (backend/video/validation.py)
            from PIL import Image as PILImage
            from PIL import ImageOps

            with PILImage.open(prompt.extra["image"]) as opened:
                image = ImageOps.exif_transpose(opened).convert("RGB")
        video = self.render_video(components, prompt.prompt, frames, height, width, prompt.sample_steps, prompt.scale,
                                  seed, negative_prompt=prompt.negative_prompt or "", pipeline=pipeline, image=image)
        return video if "num_frames" in prompt.extra else video[0]


def _parameters(pipeline: DiffusionPipeline) -> tuple[str, ...]:
    import inspect

    return tuple(inspect.signature(pipeline.__call__).parameters)
