"""Loading CogVideoX 1.0 into `Components` from a diffusers folder (the layout of THUDM/CogVideoX-2b and -5b).

The transformer, `AutoencoderKLCogVideoX`, T5 v1.1 XXL's encoder and its tokenizer load with `from_pretrained`
from local files only (this trainer reads no model hub); a single transformer file is refused with what to give
instead. Both released sizes' configs ship with the family (`configs/`), so the modules can be built on the meta
device too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
from transformers import AutoTokenizer, T5Config, T5EncoderModel

from backend.families import declaration
from backend.families.cogvideox.declaration import COGVIDEOX, CONFIG_SETS
from backend.messages import msg
from backend.models.components import Components
from backend.models.configs import ArchConfigs, read_diffusers_configs
from backend.models.detect import ModelInfo
from backend.models.errors import ModelFileError, ModelMismatchError
from backend.models.loading import _component, load_component
from backend.video.model_view import load_transformer

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
Modules = tuple[CogVideoXTransformer3DModel, AutoencoderKLCogVideoX, T5EncoderModel]


def config_set(size: str) -> ArchConfigs:
    """The shipped configs of a released size ("2B" or "5B")."""
    if size not in CONFIG_SETS:
        raise ValueError(msg("cogvideox.size_not_shipped", "no CogVideoX configs for {size}; shipped: {sizes}",
                             size=size, sizes=", ".join(CONFIG_SETS)))
    assert COGVIDEOX.configs_folder is not None
    return read_diffusers_configs(COGVIDEOX.configs_folder / CONFIG_SETS[size], COGVIDEOX.name)


def build_modules(configs: ArchConfigs) -> Modules:
    """The transformer, VAE and text encoder of an architecture on the meta device (no memory)."""
    with init_empty_weights():
        return random_modules(configs)


def random_modules(configs: ArchConfigs) -> Modules:
    """The modules with random weights (tiny test models); in eval mode, as from_pretrained leaves them."""
    return (CogVideoXTransformer3DModel.from_config(configs.unet).eval(),
            AutoencoderKLCogVideoX.from_config(configs.vae).eval(),
            T5EncoderModel(T5Config.from_dict(configs.text_encoders[0])).eval())


def refuse_missing(path: str | Path) -> None:
    """A path that is not there: a hub id ("THUDM/CogVideoX-5b") is said to be one."""
    if Path(path).exists():
        return
    if _HUB_ID.match(str(path)):
        raise ModelMismatchError(msg(
            "cogvideox.hub_id", "{path} looks like a Hugging Face model id; this trainer does not download models: "
            "download the diffusers folder (e.g. huggingface-cli download {path} --local-dir <folder>) and give that "
            "folder", path=path))


def _tokenizer(folder: Path) -> Any:
    tokenizer = _component(folder, "tokenizer", lambda: AutoTokenizer.from_pretrained(
        str(folder / "tokenizer"), local_files_only=True))
    if len(tokenizer.get_vocab()) < 16:  # transformers 5 returns an empty tokenizer for missing files
        raise ModelFileError(
            folder / "tokenizer", msg("cogvideox.tokenizer_empty", "holds no usable tokenizer (its vocabulary is "
                                      "empty)"), msg("model.fix_copy_model_folder", "copy the model folder again"))
    return tokenizer


def load_cogvideox(info: ModelInfo, dtype: torch.dtype, *, text_encoders: bool = True) -> Components:
    """CogVideoX from a diffusers folder `detect_model` recognised; `text_encoders` False leaves T5 and the
    tokenizer out (tools that need the transformer only)."""
    if info.format != "diffusers":
        raise ModelMismatchError(msg(
            "cogvideox.single_file", "{path} is a CogVideoX transformer file ({evidence}); CogVideoX is trained from "
            "a diffusers folder (model_index.json, transformer/, vae/, text_encoder/, tokenizer/, scheduler/ as in "
            "THUDM/CogVideoX-5b): give that folder", path=info.path, evidence=info.evidence))
    folder, configs = Path(info.path), info.configs
    assert configs is not None  # detect_model reads a folder's configs
    family = declaration(info.family)

    transformer = load_transformer(folder, family.denoiser_folder, CogVideoXTransformer3DModel, dtype)
    vae = load_component(folder, "vae", AutoencoderKLCogVideoX, torch_dtype=dtype)
    encoders, tokenizers = [], []
    if text_encoders:
        encoders = [load_component(folder, family.text_encoder_folders[0], T5EncoderModel, dtype=dtype)]
        tokenizers = [_tokenizer(folder)]
    return Components(info.family, configs, transformer, vae, encoders, tokenizers, source=info.path)
