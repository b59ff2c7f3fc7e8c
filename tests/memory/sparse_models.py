"""Full-size model files that cost no disk: a .safetensors whose header declares the real model's keys and
shapes (built from the shipped configs on the meta device, saved in the original single-file layout as
`backend.models.saving` writes it), with the data region made by `os.truncate` (a sparse file: gigabytes
long, ~0 bytes on disk). The memory planner reads only the header, so it sees a full-size model."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig

from backend.models.checkpoint import ComponentStates, join_original
from backend.models.configs import load_arch_configs
from backend.models.keymap_text import from_module_keys
from backend.models.loading import text_encoder_class

_DTYPES = {torch.float16: "F16", torch.float32: "F32", torch.bfloat16: "BF16"}


def write_sparse_model(arch: str, path: Path, dtype: torch.dtype = torch.float16) -> Path:
    """`path` (a .safetensors) holding the header of the full-size `arch` model in `dtype`."""
    configs = load_arch_configs(arch)
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(configs.unet)
        vae = AutoencoderKL.from_config(configs.vae)
        encoders = [text_encoder_class(c)(CLIPTextConfig.from_dict(c)) for c in configs.text_encoders]
    states = ComponentStates(
        unet=unet.state_dict(),
        vae=vae.state_dict(),
        text_encoders=[from_module_keys(te.state_dict(), te) for te in encoders],
        extras={},
    )
    state = join_original(states, configs)
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    element = torch.tensor([], dtype=dtype).element_size()
    for key in sorted(state):
        tensor = state[key]
        stored = dtype if tensor.is_floating_point() else tensor.dtype
        size = tensor.numel() * (element if tensor.is_floating_point() else tensor.element_size())
        header[key] = {
            "dtype": _DTYPES.get(stored, "I64"),
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(raw)) + raw)
    os.truncate(path, 8 + len(raw) + offset)
    return path
