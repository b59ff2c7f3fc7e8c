"""Chroma LoRA: sd-scripts' networks/lora_flux.py over Chroma (FLUX.1's key names for the layers it has).

sd-scripts wraps the same DoubleStreamBlock/SingleStreamBlock Linears as for FLUX.1 (`lora_unet_double_blocks_0_
img_attn_qkv`, ...), minus the modulation Linears Chroma does not have; the embedders in_dims names are those it
has (img_in, txt_in). Its text encoders are [dummy CLIP-L, T5-XXL], so T5 keeps FLUX.1's `lora_te3_` prefix (only
with train_t5xxl); we hold T5 alone, first.
"""

from __future__ import annotations

from backend.families.flux.network import FluxNetworkLayout


class ChromaNetworkLayout(FluxNetworkLayout):
    label = "Chroma"
    bfl_class = "Chroma"
    te_prefixes = ("lora_te3",)
    t5_index = 0


CHROMA_NETWORK = ChromaNetworkLayout()
