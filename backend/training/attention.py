"""Which attention kernel the U-Net runs, from sd-scripts' three flags: --mem_eff_attn, --xformers, --sdpa.

Attention runs through PyTorch's scaled_dot_product_attention (SDPA) unless the xformers package
can take over. sd-scripts users pass --xformers out of habit, and kohya_ss configs carry it; where
xformers cannot run (not installed, or no CUDA GPU) the run goes on with SDPA, which is the same
kind of memory-efficient attention, and says so instead of refusing. As in sd-scripts,
--mem_eff_attn wins over --xformers.

Torch-free: preflight asks before any model is loaded.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from backend.messages import msg
from backend.training.option_slice import OptionSlice


@dataclass(frozen=True)
class AttentionConfig(OptionSlice):
    """sd-scripts' attention flags (--sdpa is the default here and changes nothing)."""

    xformers: bool = False
    mem_eff_attn: bool = False


def xformers_installed() -> bool:
    return importlib.util.find_spec("xformers") is not None


def use_xformers(config: AttentionConfig, device_type: str) -> bool:
    """Whether the U-Net should switch to xformers' attention (on `device_type`, "cuda" or "cpu")."""
    return bool(config.xformers) and not config.mem_eff_attn and device_type == "cuda" and xformers_installed()


def attention_warnings(config: AttentionConfig, device_type: str) -> list[str]:
    """Why --xformers will not be used, when it is given and will not be."""
    if not config.xformers:
        return []
    if config.mem_eff_attn:
        return [msg("preflight.attention.both_flags", "--mem_eff_attn and --xformers both choose the attention "
                    "kernel: --mem_eff_attn wins, as in sd-scripts, and xformers is not used; drop one of them")]
    if not xformers_installed():
        return [msg("preflight.attention.no_xformers", "--xformers: the xformers package is not installed, so "
                    "attention runs through PyTorch's scaled_dot_product_attention (SDPA), the same memory-efficient "
                    "attention; drop the flag (SDPA is the default here) or install xformers for your torch build")]
    if device_type != "cuda":
        return [msg("preflight.attention.xformers_needs_cuda", "--xformers: xformers needs a CUDA GPU, so on the "
                    "{device} attention runs through PyTorch's scaled_dot_product_attention (SDPA), the same "
                    "memory-efficient attention", device=device_type.upper())]
    return []
