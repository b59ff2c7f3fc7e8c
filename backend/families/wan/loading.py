"""Loading Wan 2.1 into `Components` from a diffusers folder (the layout of Wan-AI/Wan2.1-T2V-*-Diffusers).

The transformer, `AutoencoderKLWan`, UMT5-XXL's encoder and its tokenizer load with `from_pretrained` from
local files only (no hub ids: this trainer reads no model hub). A single transformer file as the model is refused
with what to give instead, since the VAE, UMT5 and the tokenizer come from the folder anyway; given as
`--transformer_id` beside that folder it is read with `from_single_file` (backend/video/model_view.py). Both released
sizes' configs ship with the family (`configs/`), so the modules can be built on the meta device too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

from backend.families import declaration
from backend.families.wan.declaration import CONFIG_SETS, WAN
from backend.messages import msg
from backend.models.components import Components
from backend.models.configs import ArchConfigs, read_diffusers_configs
from backend.models.detect import ModelInfo
from backend.models.errors import ModelFileError, ModelMismatchError
from backend.models.loading import _component, load_component
from backend.video.model_view import load_transformer

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def config_set(size: str) -> ArchConfigs:
    """The shipped configs of a released size ("1.3B" or "14B")."""
    if size not in CONFIG_SETS:
        raise ValueError(msg("wan.size_not_shipped", "no Wan 2.1 configs for {size}; shipped: {sizes}", size=size,
                             sizes=", ".join(CONFIG_SETS)))
    assert WAN.configs_folder is not None
    return read_diffusers_configs(WAN.configs_folder / CONFIG_SETS[size], WAN.name)


def build_modules(configs: ArchConfigs) -> tuple[WanTransformer3DModel, AutoencoderKLWan, UMT5EncoderModel]:
    """The transformer, VAE and text encoder of an architecture on the meta device (no memory)."""
    with init_empty_weights():
        return random_modules(configs)


def random_modules(configs: ArchConfigs) -> tuple[WanTransformer3DModel, AutoencoderKLWan, UMT5EncoderModel]:
    """The modules with random weights (tiny test models); in eval mode, as from_pretrained leaves them."""
    return (WanTransformer3DModel.from_config(configs.unet).eval(), AutoencoderKLWan.from_config(configs.vae).eval(),
            UMT5EncoderModel(UMT5Config.from_dict(configs.text_encoders[0])).eval())


def refuse_missing(path: str | Path) -> None:
    """A path that is not there: a hub id ("Wan-AI/Wan2.1-T2V-1.3B-Diffusers") is said to be one."""
    if Path(path).exists():
        return
    if _HUB_ID.match(str(path)):
        raise ModelMismatchError(msg(
            "wan.hub_id", "{path} looks like a Hugging Face model id; this trainer does not download models: download "
            "the diffusers folder (e.g. huggingface-cli download {path} --local-dir <folder>) and give that folder",
            path=path))


def _tokenizer(folder: Path) -> Any:
    tokenizer = _component(folder, "tokenizer", lambda: AutoTokenizer.from_pretrained(
        str(folder / "tokenizer"), local_files_only=True))
    if len(tokenizer.get_vocab()) < 16:  # transformers 5 returns an empty tokenizer for missing files
        raise ModelFileError(
            folder / "tokenizer", msg("wan.tokenizer_empty", "holds no usable tokenizer (its vocabulary is empty)"),
            msg("model.fix_copy_model_folder", "copy the model folder again"))
    return tokenizer


def load_wan(info: ModelInfo, dtype: torch.dtype, *, text_encoders: bool = True) -> Components:
    """Wan 2.1 from a diffusers folder `detect_model` recognised; `text_encoders` False leaves UMT5 and the
    tokenizer out (tools that need the transformer only)."""
    if info.format != "diffusers":
        raise ModelMismatchError(msg(
            "wan.single_file", "{path} is a Wan 2.1 transformer file ({evidence}); Wan is trained from a diffusers "
            "folder (model_index.json, transformer/, vae/, text_encoder/, tokenizer/, scheduler/ as in "
            "Wan-AI/Wan2.1-T2V-1.3B-Diffusers): give that folder, and this file as --transformer_id to train it instead "
            "of the folder's transformer", path=info.path, evidence=info.evidence))
    folder, configs = Path(info.path), info.configs
    assert configs is not None  # detect_model reads a folder's configs
    family = declaration(info.family)

    transformer = load_transformer(folder, family.denoiser_folder, WanTransformer3DModel, dtype)
    vae = load_component(folder, "vae", AutoencoderKLWan, torch_dtype=dtype)
    encoders, tokenizers = [], []
    if text_encoders:
        encoders = [load_component(folder, family.text_encoder_folders[0], UMT5EncoderModel, dtype=dtype)]
        tokenizers = [_tokenizer(folder)]
    return Components(info.family, configs, transformer, vae, encoders, tokenizers, source=info.path)
