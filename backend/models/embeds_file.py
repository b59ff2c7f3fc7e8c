"""Cache files of a family's text conditioning as it is, for families sd-scripts has no file for (the video
families' precomputed conditions, backend/video/precomputed.py): the arrays of a `PromptEmbeds`."""

from __future__ import annotations

from typing import Any

import torch

from backend.data.text_encoder_files import Arrays, TextCacheFile
from backend.models.components import PromptEmbeds


def prompt_embeds_file(suffix: str, pooled: bool = False, mask: bool = False) -> TextCacheFile:
    """A cache file holding a `PromptEmbeds` as it is (families with no sd-scripts file of their own: the
    video families' precomputed conditions): `hidden_states`, and `pooled` / `attention_mask` when the
    family's encoder gives them."""
    arrays = ("hidden_states", *(("pooled",) if pooled else ()), *(("attention_mask",) if mask else ()))

    def to_arrays(embeds: Any) -> Arrays:
        found = {"hidden_states": embeds.hidden_states, "pooled": embeds.pooled, "attention_mask": embeds.attention_mask}
        return {name: found[name] for name in arrays}

    def from_arrays(stored: Arrays, dtype: torch.dtype) -> Any:
        return PromptEmbeds(
            stored["hidden_states"].to(dtype),
            stored["pooled"].to(dtype) if pooled else None,
            stored["attention_mask"].bool() if mask else None,
        )

    return TextCacheFile(suffix, arrays, to_arrays, from_arrays)
