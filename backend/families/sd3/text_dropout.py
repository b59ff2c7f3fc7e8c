"""SD 3.5's per-encoder text dropout: --clip_l_dropout_rate, --clip_g_dropout_rate, --t5_dropout_rate.

As sd-scripts' Sd3TextEncodingStrategy does it: each sample of a training batch independently loses
CLIP-L's, CLIP-G's and T5's part of its conditioning with the given chance, and a lost part is zeros
(not the encoding of an empty caption): CLIP-L's columns of the CLIP tokens and of the pooled vector,
CLIP-G's likewise, T5's tokens. Text-encoder outputs are cached without dropout and dropped per step,
as sd-scripts' drop_cached_text_encoder_outputs does, so a cache serves any rates. Validation steps drop
too (sd-scripts' on_step_start does, with its fixed validation seed); samples never do.

Each sample draws from its own generator (after its noise), so the drops do not depend on the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from backend.models.components import PromptEmbeds
from backend.objectives.base import Generators


@dataclass(frozen=True)
class TextDropout:
    """The three rates, and where each encoder's output lies in SD 3.5's joint conditioning."""

    clip_l: float
    clip_g: float
    t5: float
    hidden_widths: tuple[int, int]  # CLIP-L's and CLIP-G's hidden sizes (columns of the first clip_length tokens)
    pooled_widths: tuple[int, int]  # their projection sizes (columns of the pooled vector)
    clip_length: int = 77

    @property
    def active(self) -> bool:
        return self.clip_l > 0 or self.clip_g > 0 or self.t5 > 0

    def keep_masks(self, batch: int, device: torch.device, generator: Generators) -> torch.Tensor:
        """``[B, 3]``: 1 where the sample keeps CLIP-L's, CLIP-G's, T5's output, 0 where it is dropped."""
        if isinstance(generator, Sequence):
            if len(generator) != batch:
                raise ValueError(f"{len(generator)} generators for a batch of {batch}")
            draws = torch.stack([torch.rand(3, generator=g, device=g.device).to(device) for g in generator])
        elif generator is not None:
            draws = torch.rand(batch, 3, generator=generator, device=generator.device).to(device)
        else:
            draws = torch.rand(batch, 3, device=device)
        rates = torch.tensor([self.clip_l, self.clip_g, self.t5], device=device)
        return (draws >= rates).float()

    def apply(self, embeds: PromptEmbeds, generator: Generators) -> PromptEmbeds:
        """`embeds` with the dropped parts zeroed (new tensors: cached embeddings stay intact)."""
        if not self.active:
            return embeds
        hidden, pooled = embeds.hidden_states, embeds.pooled
        keep = self.keep_masks(hidden.shape[0], hidden.device, generator).to(hidden.dtype)
        keep_l, keep_g, keep_t5 = (keep[:, i, None, None] for i in range(3))
        width_l, width_g = self.hidden_widths
        clips, t5 = hidden[:, : self.clip_length], hidden[:, self.clip_length :]
        clips = torch.cat([clips[..., :width_l] * keep_l, clips[..., width_l : width_l + width_g] * keep_g,
                           clips[..., width_l + width_g :]], dim=-1)
        hidden = torch.cat([clips, t5 * keep_t5], dim=1)
        if pooled is not None:
            pooled_l, pooled_g = self.pooled_widths
            keep = keep.to(device=pooled.device, dtype=pooled.dtype)
            pooled = torch.cat([pooled[:, :pooled_l] * keep[:, :1], pooled[:, pooled_l : pooled_l + pooled_g]
                                * keep[:, 1:2], pooled[:, pooled_l + pooled_g :]], dim=-1)
        return PromptEmbeds(hidden, pooled, embeds.attention_mask)
