"""Loading Chroma into `Components`: a diffusers ChromaPipeline folder, or a BFL-style transformer file with
FLUX.1's autoencoder and T5-XXL as files of their own (sd-scripts' --ae, --t5xxl; Chroma has no CLIP-L).

The part readers, key maps and fill helpers are FLUX.1's (backend/families/flux/loading.py,
flux/keymap.py: the Chroma rules convert its transformer either way).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, ChromaTransformer2DModel
from transformers import T5Config, T5EncoderModel, T5TokenizerFast

from backend.families import declaration
from backend.families.flux.loading import (
    PartFiles,
    _configs_for,
    _fill_part,
    _given,
    _t5_state,
    _transformer_state,
    _vae_state,
)
from backend.messages import msg
from backend.models.components import Components
from backend.models.configs import ArchConfigs
from backend.models.detect import ModelInfo
from backend.models.errors import ModelFileError
from backend.models.loading import _component, _fill
from backend.models.tokenizers import load_family_tokenizers

logger = logging.getLogger(__name__)


def build_modules(configs: ArchConfigs) -> tuple[ChromaTransformer2DModel, AutoencoderKL, T5EncoderModel]:
    """Every Chroma module from its config, on the meta device."""
    with init_empty_weights():
        return (ChromaTransformer2DModel.from_config(configs.unet), AutoencoderKL.from_config(configs.vae),
                T5EncoderModel(T5Config.from_dict(configs.text_encoders[0])))


def random_modules(configs: ArchConfigs) -> tuple[ChromaTransformer2DModel, AutoencoderKL, T5EncoderModel]:
    """Every Chroma module from its config with random weights (tiny test models)."""
    return (ChromaTransformer2DModel.from_config(configs.unet).eval(), AutoencoderKL.from_config(configs.vae).eval(),
            T5EncoderModel(T5Config.from_dict(configs.text_encoders[0])).eval())


def _check_parts(info: ModelInfo, files: PartFiles) -> dict[str, Path]:
    flags = declaration(info.family).part_flags
    missing = [f"--{flag}" for flag in flags if _given(files, flag) is None]
    if missing:
        raise ValueError(msg(
            "chroma.part_missing", "{path} is a Chroma transformer file, which holds no autoencoder or text encoder: "
            "give {flags} as well (FLUX.1's files: ae.safetensors, t5xxl_fp16.safetensors; Chroma needs no --clip_l), "
            "or give a diffusers Chroma folder", path=info.path, flags=" ".join(missing),
        ))
    found: dict[str, Path] = {}
    for flag in flags:
        path = _given(files, flag)
        assert path is not None
        if not path.is_file():
            raise FileNotFoundError(msg("flux.part_not_found", "--{flag} {path}: no such file", flag=flag, path=path))
        found[flag] = path
    return found


def _load_single_file(info: ModelInfo, files: PartFiles, dtype: torch.dtype, device: str,
                      tokenizer_cache_dir: str | Path | None) -> Components:
    parts = _check_parts(info, files)
    configs = _configs_for(info)
    tokenizers = load_family_tokenizers(info.family, tokenizer_cache_dir)  # fails early, before weights are read
    transformer, vae, t5 = build_modules(configs)
    _fill(transformer, _transformer_state(Path(info.path), device, dtype), dtype, "Chroma transformer")
    _fill(vae, _vae_state(parts["ae"], configs.vae, device, dtype), dtype, "--ae autoencoder")
    _fill_part(t5, _t5_state(parts["t5xxl"], device, dtype), dtype, "--t5xxl text encoder", t5=True)
    return Components(info.family, configs, transformer, vae, [t5], tokenizers, source=info.path)


def _folder_tokenizer(folder: Path) -> T5TokenizerFast:
    t5 = T5TokenizerFast.from_pretrained(str(folder / "tokenizer"))
    if len(t5.get_vocab()) < 16:  # transformers 5 returns an empty tokenizer for missing files
        raise ModelFileError(
            folder / "tokenizer", msg("flux.tokenizer_empty", "holds no usable tokenizer (its vocabulary is empty)"),
            msg("model.fix_copy_model_folder", "copy the model folder again"),
        )
    return t5


def _load_folder(info: ModelInfo, files: PartFiles, dtype: torch.dtype, device: str) -> Components:
    folder, configs = Path(info.path), info.configs
    assert configs is not None  # detect_model reads a folder's configs
    flags = declaration(info.family).part_flags
    given = {flag: path for flag in flags if (path := _given(files, flag)) is not None}
    for flag, path in given.items():
        if not path.is_file():
            raise FileNotFoundError(msg("flux.part_not_found", "--{flag} {path}: no such file", flag=flag, path=path))
        logger.info(msg("flux.part_replaces_folder", "--{flag} {path} replaces the model folder's {part}/ (the flag "
                        "wins, as in sd-scripts)", flag=flag, path=path, part=flags[flag]))

    def load(name: str, cls: type, **kwargs: object) -> torch.nn.Module:
        return _component(folder, name, lambda: cls.from_pretrained(  # type: ignore[attr-defined]
            folder, subfolder=name, local_files_only=True, **kwargs))

    transformer = load("transformer", ChromaTransformer2DModel, torch_dtype=dtype)
    _, vae, t5 = build_modules(configs)
    if "ae" in given:
        _fill(vae, _vae_state(given["ae"], configs.vae, device, dtype), dtype, "--ae autoencoder")
    else:
        vae = load("vae", AutoencoderKL, torch_dtype=dtype)
    if "t5xxl" in given:
        _fill_part(t5, _t5_state(given["t5xxl"], device, dtype), dtype, "--t5xxl text encoder", t5=True)
    else:
        t5 = load("text_encoder", T5EncoderModel, dtype=dtype)
    return Components(info.family, configs, transformer, vae, [t5], [_folder_tokenizer(folder)],  # type: ignore[arg-type]
                      source=info.path)


def load_chroma_weights(info: ModelInfo, dtype: torch.dtype, *, text_encoders: bool) -> Components:
    """What the LoRA tools read: a folder whole, or the transformer alone (a single file is nothing more)."""
    if info.format == "diffusers" and text_encoders:
        return _load_folder(info, {}, dtype, "cpu")
    configs = _configs_for(info)
    if info.format == "diffusers":
        folder = Path(info.path)
        transformer = _component(folder, "transformer", lambda: ChromaTransformer2DModel.from_pretrained(
            folder, subfolder="transformer", local_files_only=True, torch_dtype=dtype))
    else:
        transformer = build_modules(configs)[0]
        _fill(transformer, _transformer_state(Path(info.path), "cpu", dtype), dtype, "Chroma transformer")
    return Components(info.family, configs, transformer, None, [], [], source=info.path)  # type: ignore[arg-type]


def load_chroma(info: ModelInfo, files: PartFiles, *, dtype: torch.dtype, device: str,
                tokenizer_cache_dir: str | Path | None) -> Components:
    """Chroma from `info`: a diffusers folder, or a transformer file with `files` {"ae", "t5xxl"}."""
    if info.format == "diffusers":
        return _load_folder(info, files, dtype, device)
    return _load_single_file(info, files, dtype, device, tokenizer_cache_dir)
