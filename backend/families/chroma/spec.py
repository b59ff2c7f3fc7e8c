"""Chroma: T5-XXL's hidden states (padding masked) condition a FLUX.1-style transformer over packed latents.

As sd-scripts' flux_train_network --model_type chroma computes it:
- prompts: T5 `--t5xxl_max_token_length` tokens (default 512: sd-scripts treats Chroma as not schnell), run
  with the padding mask (Chroma requires --apply_t5_attn_mask); no CLIP-L, no pooled vector.
- the transformer attends to the caption's tokens and one padding token (sd-scripts' attn_padding=1,
  diffusers' ChromaPipeline `mask_indices <= seq_lengths`); the rest of the text is masked out.
- latents, packing, ids and time (`timesteps / 1000`) as FLUX.1; no guidance input: diffusers'
  approximator always gets guidance 0 (sd-scripts' guide: --guidance_scale 0.0 for Chroma).
- samples: true classifier-free guidance (`--l`, with `--n` or an empty negative prompt), as Chroma is
  not guidance-distilled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from backend.data.text_encoder_files import TextCacheFile
from backend.families.flux.spec import image_ids, pack_latents, unpack_latents
from backend.models.components import Components, PromptEmbeds
from backend.models.detect import ModelInfo
from backend.models.saving import StateOverrides
from backend.models.spec import ModelSpecification
from backend.training.option_slice import OptionSlice

if TYPE_CHECKING:
    from diffusers import ChromaTransformer2DModel, DiffusionPipeline
    from PIL import Image

    from backend.models.configs import ArchConfigs
    from backend.training.sample_prompts import SamplePrompt

T5_LENGTH = 512  # sd-scripts' default for non-schnell models, which Chroma counts as
_MASK_ATTRIBUTE = "_kohya_chroma_joint_mask"  # the joint mask the single blocks' hooks read (see below)


@dataclass(frozen=True)
class ChromaTextOptions(OptionSlice):
    """The run's prompt-encoding option (the mask is always applied: Chroma requires it)."""

    t5xxl_max_token_length: int | None


def text_mask(tokenizer_mask: torch.Tensor) -> torch.Tensor:
    """The text tokens the transformer attends to: the caption's and the first padding token (bool ``[B, L]``)."""
    lengths = tokenizer_mask.sum(dim=1, keepdim=True)
    positions = torch.arange(tokenizer_mask.shape[1], device=tokenizer_mask.device)[None, :]
    return positions <= lengths


def _attention_mask_hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    """Every Chroma attention gets a key mask ``[B, 1, 1, text + image]``: the padded text tokens are never
    attended to, while every query (padded ones too) has keys to attend to. diffusers' blocks would build a
    query x key mask, whose fully masked rows give NaN in some attention kernels, and its single blocks get
    no mask at all under gradient checkpointing; sd-scripts drops the padded tokens instead, which gives the
    image tokens exactly what this gives them."""
    mask = kwargs.get("attention_mask")
    if mask is None:
        mask = getattr(module, _MASK_ATTRIBUTE, None)  # the training forward's (kept for recomputation)
    elif mask.dtype == torch.bool and mask.ndim == 4 and mask.shape[-1] == mask.shape[-2]:
        mask = mask.any(dim=-2, keepdim=True)  # a pipeline's query x key mask: its keys (image queries see all)
    else:
        return None
    return args, {**kwargs, "attention_mask": mask}


def _set_attention_mask(transformer: Any, mask: torch.Tensor | None) -> None:
    """Hook every attention of the transformer once, and give them the key mask of this forward (None: none)."""
    for block in (*transformer.transformer_blocks, *transformer.single_transformer_blocks):
        attention = block.attn
        if not getattr(attention, "_kohya_chroma_hooked", False):
            attention.register_forward_pre_hook(_attention_mask_hook, with_kwargs=True)
            attention._kohya_chroma_hooked = True
        object.__setattr__(attention, _MASK_ATTRIBUTE, mask)  # a plain attribute, not a registered buffer


class ChromaSpec(ModelSpecification):
    families = ("chroma",)

    def __init__(self, t5_length: int | None = None) -> None:
        self.t5_length = t5_length or T5_LENGTH

    def meta_modules(self, configs: ArchConfigs) -> tuple[torch.nn.Module, list[torch.nn.Module]]:
        from backend.families.chroma.loading import build_modules

        transformer, _, t5 = build_modules(configs)
        return transformer, [t5]

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
        from backend.families.chroma.loading import load_chroma

        return load_chroma(info, files, dtype=dtype, device=device, tokenizer_cache_dir=tokenizer_cache_dir)

    def load_weights(self, info: ModelInfo, dtype: torch.dtype, *, text_encoders: bool = True) -> Components:
        from backend.families.chroma.loading import load_chroma_weights

        self.check_family(info)
        return load_chroma_weights(info, dtype, text_encoders=text_encoders)

    def configured(self, text: ChromaTextOptions, components: Components) -> ChromaSpec:
        return ChromaSpec(text.t5xxl_max_token_length)

    def text_cache_file(self, components: Components) -> TextCacheFile:
        """`_chroma_te.npz`: T5's outputs and mask (sd-scripts writes FLUX.1's `_flux_te.npz` with a dummy CLIP-L
        vector; a file of its own keeps FLUX.1 runs from reading Chroma's outputs as theirs)."""

        def to_arrays(embeds: PromptEmbeds) -> dict[str, torch.Tensor]:
            assert embeds.attention_mask is not None
            tokens = embeds.hidden_states.shape[0]
            return {"t5_out": embeds.hidden_states, "txt_ids": torch.zeros(tokens, 3),
                    "t5_attn_mask": embeds.attention_mask}

        def from_arrays(arrays: dict[str, torch.Tensor], dtype: torch.dtype) -> PromptEmbeds:
            return PromptEmbeds(arrays["t5_out"].to(dtype), None, arrays["t5_attn_mask"])

        return TextCacheFile("_chroma_te.npz", ("t5_out", "txt_ids", "t5_attn_mask"), to_arrays, from_arrays,
                             encoding=f"t5={self.t5_length},mask=1")

    def tokenize(self, tokenizers: list[Any], prompts: list[str], max_token_length: int | None = None
                 ) -> list[torch.Tensor]:
        """``[t5 ids [B, L], t5 mask [B, L]]`` (SD's --max_token_length does not apply, as in sd-scripts)."""
        (t5,) = tokenizers
        tokens = t5(prompts, max_length=self.t5_length, padding="max_length", truncation=True, return_tensors="pt")
        return [tokens.input_ids, tokens.attention_mask]

    def encode_prompts(self, text_encoders: list[Any], token_ids: list[torch.Tensor], clip_skip: int | None = None
                       ) -> PromptEmbeds:
        (t5,) = text_encoders
        ids, mask = token_ids
        mask = mask.to(t5.device, non_blocking=True)
        hidden = t5(ids.to(t5.device, non_blocking=True), attention_mask=mask).last_hidden_state
        return PromptEmbeds(hidden, None, mask)

    def predict(
        self,
        unet: ChromaTransformer2DModel,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        embeds: PromptEmbeds,
        time_ids: torch.Tensor | None = None,
        guidance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The transformer's velocity estimate for ``[B, C, H, W]`` latents at flow time ``timesteps`` (0..1000);
        `guidance` is ignored (Chroma's approximator takes 0)."""
        if embeds.attention_mask is None:
            raise ValueError("Chroma needs T5's attention mask (PromptEmbeds.attention_mask)")
        _, _, height, width = noisy_latents.shape
        device, dtype = noisy_latents.device, noisy_latents.dtype
        tokens = pack_latents(noisy_latents)
        text = embeds.hidden_states.to(device=device, dtype=dtype, non_blocking=True)
        masked = text_mask(embeds.attention_mask.to(device, non_blocking=True))
        image = torch.ones(tokens.shape[0], tokens.shape[1], dtype=torch.bool, device=device)
        joint = torch.cat([masked, image], dim=1)  # text first, as the transformer orders its tokens
        _set_attention_mask(unet, joint[:, None, None, :])  # given to each attention (see _attention_mask_hook)
        out = unet(
            hidden_states=tokens,
            encoder_hidden_states=text,
            timestep=(timesteps.to(device, torch.float32) / 1000).to(dtype),
            img_ids=image_ids(height, width, device, dtype),
            txt_ids=torch.zeros(text.shape[1], 3, device=device, dtype=dtype),
            return_dict=False,
        )[0]
        return unpack_latents(out, height, width)

    def pipeline(self, components: Components) -> DiffusionPipeline:
        from diffusers import ChromaPipeline, FlowMatchEulerDiscreteScheduler

        (t5,) = components.text_encoders
        (tokenizer,) = components.tokenizers
        return ChromaPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler.from_config(components.configs.scheduler),
            vae=components.vae, text_encoder=t5, tokenizer=tokenizer, transformer=components.unet,
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
        """Flow-matching Euler (the model's scheduler, whatever `--ss` says) with true CFG at the prompt's `--l`
        against `--n` (or an empty prompt), as sd-scripts samples Chroma; `--g` has no effect. The masks are
        the training ones (bool: diffusers' own float masks would only bias the attention), so the pipeline's
        transformer calls attend exactly to what training did."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        pipeline.scheduler = FlowMatchEulerDiscreteScheduler.from_config(components.configs.scheduler)
        width, height = (max(64, side - side % 16) for side in (prompt.width, prompt.height))
        token_ids = self.tokenize(components.tokenizers, [prompt.prompt, prompt.negative_prompt or ""])
        embeds = self.encode_prompts(components.text_encoders, token_ids)
        assert embeds.attention_mask is not None
        masks = text_mask(embeds.attention_mask)
        _set_attention_mask(components.unet, None)  # the pipeline passes the masks (made key masks by the hooks)
        cfg = prompt.scale if prompt.scale > 1 else 1.0
        conditioning: dict[str, Any] = {"prompt_embeds": embeds.hidden_states[:1], "prompt_attention_mask": masks[:1]}
        if cfg > 1:
            conditioning["negative_prompt_embeds"] = embeds.hidden_states[1:]
            conditioning["negative_prompt_attention_mask"] = masks[1:]
        result = pipeline(
            width=width, height=height, num_inference_steps=prompt.sample_steps, guidance_scale=cfg,
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
        """A ``.safetensors`` path: the transformer alone in BFL names (as sd-scripts' flux_train saves Chroma);
        another path: a diffusers ChromaPipeline folder."""
        from backend.families.chroma.saving import save_chroma

        return save_chroma(components, path, dtype=dtype, metadata=metadata, states=states)
