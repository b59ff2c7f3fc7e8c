"""The contract every model family implements (finetrainers' ModelSpecification idea).

A specification is stateless: it loads :class:`Components` and then works on the modules it is
handed, so a trainer may wrap or compile them (pass unwrapped modules to ``save``). Families differ
in how prompts become conditioning and in what the U-Net needs besides it; everything else
(loading, tokenizing, latents, saving) is shared here.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from backend.data.text_encoder_files import TextCacheFile
from backend.families import label
from backend.messages import msg
from backend.models.checkpoint import split_original
from backend.models.components import Components, PromptEmbeds
from backend.models.configs import ArchConfigs, Family, arch_for, load_arch_configs
from backend.models.detect import ModelInfo, ModelMismatchError, detect_model
from backend.models.files import read_checkpoint
from backend.models.loading import build_modules, load_components
from backend.models.prompt_weights import tokenize_weighted
from backend.models.saving import StateOverrides, save_components
from backend.models.tokenizers import MODEL_MAX_LENGTH, tokenize_chunks
from backend.models.vae_file import load_vae

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline
    from PIL import Image

    from backend.objectives.base import Generators
    from backend.training.sample_prompts import SamplePrompt


logger = logging.getLogger(__name__)

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
        files: Mapping[str, str | None] | None = None,
    ) -> Components:
        """Load the model at `path`. `files`: parts given as files of their own (FLUX.1's --clip_l,
        --t5xxl, --ae; `FamilyDeclaration.model_files`); families without such parts ignore it."""
        info = detect_model(path)
        self.check_family(info)
        return self.load_detected(info, files or {}, v_prediction=v_prediction, dtype=dtype,
                                  tokenizer_cache_dir=tokenizer_cache_dir, device=device)

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
        """Load a model `load` detected as this family's; a family whose parts may come as files of their
        own (FLUX.1, Chroma, SD 3.5) overrides it. `files["vae"]` (sd-scripts' --vae) replaces the model's VAE."""
        components = load_components(
            info.path, v_prediction=v_prediction, dtype=dtype, tokenizer_cache_dir=tokenizer_cache_dir, info=info,
            device=device,
        )
        vae = files.get("vae")
        if vae:
            components.vae = load_vae(vae, components.configs.vae, dtype, device)
            logger.info(msg("model.vae_replaced", "--vae {path} replaces the model's VAE", path=vae))
        return components

    def load_weights(self, info: ModelInfo, dtype: torch.dtype, *, text_encoders: bool = True) -> Components:
        """The weights the LoRA tools read and write (merge into, extract from, measure against), without
        tokenizers (the tools do not need them, and a real user's may not be cached). A diffusers folder
        loads whole, a single file without tokenizers. `text_encoders` False: the caller needs the
        denoiser only (families whose files hold more may then leave the text encoders out)."""
        if info.format == "diffusers":
            return load_components(info.path, dtype=dtype, info=info)
        configs = info.configs or load_arch_configs(arch_for(info.family, bool(info.v_prediction)))
        state_dict, _ = read_checkpoint(info.path, dtype=dtype)
        states = split_original(state_dict, configs)
        del state_dict
        unet, vae, encoders = build_modules(configs, states.unet, states.vae, states.text_encoders, dtype)
        return Components(info.family, configs, unet, vae, encoders, [], extras=states.extras, source=info.path)

    def save_refusal(self, path: str | Path) -> str | None:
        """Why `save` cannot write this family to `path` (a format it has no layout for); None: it can.
        Asked before any weights are read."""
        return None

    def meta_modules(self, configs: ArchConfigs) -> tuple[torch.nn.Module, list[torch.nn.Module]]:
        """The denoiser and text encoders of an architecture on the meta device (no weights, no memory):
        what the LoRA tools name layers by."""
        from accelerate import init_empty_weights
        from transformers import CLIPTextConfig

        from backend.models.loading import text_encoder_class

        with init_empty_weights():
            unet = UNet2DConditionModel.from_config(configs.unet)
            text_encoders = [text_encoder_class(c)(CLIPTextConfig.from_dict(c)) for c in configs.text_encoders]
        return unet, text_encoders

    def check_family(self, info: ModelInfo) -> None:
        """Refuse a model of another family, naming what it looks like and why."""
        if info.family in self.families:
            return
        found = {"path": info.path, "label": info.label, "evidence": info.evidence}
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

    def text_cache_file(self, components: Components) -> TextCacheFile | None:
        """sd-scripts' cache file for this family's text-encoder outputs (None: it has no such cache)."""
        return None

    def configured(self, text: Any, components: Components) -> ModelSpecification:
        """This specification with a run's family-specific prompt-encoding options (`ModelFamily.text_options`,
        an option slice) applied; families without such options return themselves."""
        return self

    def step_conditioning(self, embeds: PromptEmbeds, generator: Generators) -> PromptEmbeds:
        """A training (or validation) step's conditioning from its prompts' embeddings, cached or fresh:
        SD 3.5 drops text encoders' outputs per sample here (--clip_l_dropout_rate, ...); others pass it on."""
        return embeds

    def tokenize(
        self, tokenizers: list[CLIPTokenizer], prompts: list[str], max_token_length: int | None = None
    ) -> list[torch.Tensor]:
        """One ``[B, chunks, 77]`` id tensor per text encoder."""
        return [tokenize_chunks(tokenizer, prompts, max_token_length) for tokenizer in tokenizers]

    def tokenize_weighted(
        self, tokenizers: list[CLIPTokenizer], prompts: list[str], max_token_length: int | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """--weighted_captions: ids as `tokenize` gives them (from the prompts without their weight marks) and
        each token's weight, both ``[B, chunks, 77]`` per text encoder (prompt_weights.py)."""
        pairs = [tokenize_weighted(tokenizer, prompts, max_token_length) for tokenizer in tokenizers]
        return [ids for ids, _ in pairs], [weights for _, weights in pairs]

    def encode_weighted_prompts(
        self, text_encoders: list[CLIPTextModel], token_ids: list[torch.Tensor], weights: list[torch.Tensor],
        clip_skip: int | None = None,
    ) -> PromptEmbeds:
        """Conditioning from `tokenize_weighted` output: each token's output times its weight. Families whose
        declaration sets `weighted_captions` implement it; the option schema keeps the flag from the others."""
        raise NotImplementedError(f"{type(self).__name__} has no weighted captions")

    def encode_captions(
        self, components: Components, captions: list[str], max_token_length: int | None, clip_skip: int | None,
        weighted: bool = False,
    ) -> PromptEmbeds:
        """A training batch's captions as conditioning: tokenized and encoded, with their weights applied when
        `weighted` (--weighted_captions). The caller sets gradients and autocast."""
        if weighted:
            ids, weights = self.tokenize_weighted(components.tokenizers, captions, max_token_length)
            return self.encode_weighted_prompts(components.text_encoders, ids, weights, clip_skip)
        token_ids = self.tokenize(components.tokenizers, captions, max_token_length)
        return self.encode_prompts(components.text_encoders, token_ids, clip_skip)

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
        """One sample image for `prompt` (under the caller's autocast): the prompt encoded as for training,
        the pipeline given the embeddings, the prompt's sampler, size, steps, CFG scale and seed."""
        from backend.training.sample_prompts import get_sampler_scheduler

        # A fresh scheduler per prompt: samplers keep per-run state.
        pipeline.scheduler = get_sampler_scheduler(sampler_name, v_parameterization=components.v_prediction)
        width, height = prompt.size
        # One batch so both sides get the same number of chunks (the pipeline needs equal shapes).
        token_ids = self.tokenize(components.tokenizers, [prompt.prompt, prompt.negative_prompt or ""], max_token_length)
        embeds = self.encode_prompts(components.text_encoders, token_ids, clip_skip)
        conditioning: dict[str, Any] = {
            "prompt_embeds": embeds.hidden_states[:1],
            "negative_prompt_embeds": embeds.hidden_states[1:],
        }
        if embeds.pooled is not None:  # SDXL; size conditioning stays the pipeline's (original = target size)
            conditioning["pooled_prompt_embeds"] = embeds.pooled[:1]
            conditioning["negative_pooled_prompt_embeds"] = embeds.pooled[1:]
        result = pipeline(
            width=width,
            height=height,
            num_inference_steps=prompt.sample_steps,
            guidance_scale=prompt.scale,
            generator=torch.Generator().manual_seed(seed),
            **conditioning,
        )
        return result.images[0]

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
        states: StateOverrides | None = None,
        safetensors: bool = True,
    ) -> Path:
        """Single file (original layout) for ``.safetensors``/``.ckpt`` paths, else a diffusers folder.
        ``states`` replaces modules' weights by part name (a fine-tune's trained weights); ``safetensors``
        False writes a folder's weights as ``.bin``."""
        return save_components(components, path, dtype=dtype, metadata=metadata, states=states,
                               safetensors=safetensors)
