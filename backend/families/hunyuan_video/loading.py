"""Loading HunyuanVideo into `Components` from a diffusers folder (the layout of hunyuanvideo-community/HunyuanVideo).

The transformer, `AutoencoderKLHunyuanVideo`, the Llama text encoder and CLIP-L load with `from_pretrained` from
local files only (no hub ids: this trainer reads no model hub). The shipped configs (`configs/`) build the modules
on the meta device too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKLHunyuanVideo, HunyuanVideoTransformer3DModel
from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel, CLIPTokenizer, LlamaConfig, LlamaModel

from backend.families import declaration
from backend.families.hunyuan_video.declaration import CONFIG_SET, REPO
from backend.families.hunyuan_video.single_file import split_single_blocks
from backend.messages import msg
from backend.models.components import Components
from backend.models.configs import ArchConfigs, load_arch_configs
from backend.models.detect import ModelInfo
from backend.models.errors import ModelFileError, ModelMismatchError
from backend.models.loading import _component, load_component
from backend.video.model_view import load_transformer

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
Modules = tuple[HunyuanVideoTransformer3DModel, AutoencoderKLHunyuanVideo, LlamaModel, CLIPTextModel]


def shipped_configs() -> ArchConfigs:
    return load_arch_configs(CONFIG_SET)


def random_modules(configs: ArchConfigs) -> Modules:
    """The modules with random weights (tiny test models); in eval mode, as from_pretrained leaves them."""
    llama, clip = configs.text_encoders
    return (HunyuanVideoTransformer3DModel.from_config(configs.unet).eval(),
            AutoencoderKLHunyuanVideo.from_config(configs.vae).eval(),
            LlamaModel(LlamaConfig.from_dict(llama)).eval(), CLIPTextModel(CLIPTextConfig.from_dict(clip)).eval())


def build_modules(configs: ArchConfigs) -> Modules:
    """The modules of an architecture on the meta device (no memory)."""
    with init_empty_weights():
        return random_modules(configs)


def refuse_missing(path: str | Path) -> None:
    """A path that is not there: a hub id ("hunyuanvideo-community/HunyuanVideo") is said to be one."""
    if Path(path).exists():
        return
    if _HUB_ID.match(str(path)):
        raise ModelMismatchError(msg(
            "hunyuan_video.hub_id", "{path} looks like a Hugging Face model id; this trainer does not download "
            "models: download the diffusers folder (e.g. huggingface-cli download {path} --local-dir <folder>) and "
            "give that folder", path=path))


def _tokenizer(folder: Path, name: str, cls: Any) -> Any:
    tokenizer = _component(folder, name, lambda: cls.from_pretrained(str(folder / name), local_files_only=True))
    if len(tokenizer.get_vocab()) < 16:  # transformers 5 returns an empty tokenizer for missing files
        raise ModelFileError(
            folder / name, msg("hunyuan_video.tokenizer_empty", "holds no usable tokenizer (its vocabulary is empty)"),
            msg("model.fix_copy_model_folder", "copy the model folder again"))
    return tokenizer


def load_hunyuan_video(info: ModelInfo, dtype: torch.dtype, *, text_encoders: bool = True) -> Components:
    """HunyuanVideo from a diffusers folder `detect_model` recognised; `text_encoders` False leaves Llama, CLIP and
    their tokenizers out (tools that need the transformer only)."""
    if info.format != "diffusers":
        raise ModelMismatchError(msg(
            "hunyuan_video.not_a_folder", "{path} is not a HunyuanVideo diffusers folder ({evidence}); give the folder "
            "holding model_index.json, as a download of {repo}", path=info.path, evidence=info.evidence, repo=REPO))
    folder, configs = Path(info.path), info.configs
    assert configs is not None  # detect_model reads a folder's configs
    family = declaration(info.family)

    transformer = load_transformer(folder, family.denoiser_folder, HunyuanVideoTransformer3DModel, dtype,
                                   split_single_blocks)
    vae = load_component(folder, "vae", AutoencoderKLHunyuanVideo, torch_dtype=dtype)
    encoders, tokenizers = [], []
    if text_encoders:
        llama_folder, clip_folder = family.text_encoder_folders
        encoders = [load_component(folder, llama_folder, LlamaModel, dtype=dtype),
                    load_component(folder, clip_folder, CLIPTextModel, dtype=dtype)]
        llama_tokens, clip_tokens = family.tokenizer_folders
        tokenizers = [_tokenizer(folder, llama_tokens, AutoTokenizer), _tokenizer(folder, clip_tokens, CLIPTokenizer)]
    return Components(info.family, configs, transformer, vae, encoders, tokenizers, source=info.path)
