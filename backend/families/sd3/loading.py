"""Loading SD 3.5 into `Components`: a diffusers StableDiffusion3Pipeline folder, or a single file in SAI's
layout (`model.diffusion_model.` MMDiT, `first_stage_model.` autoencoder, `text_encoders.clip_l.` /
`clip_g.` / `t5xxl.` text encoders, each present or not) with the parts it lacks given as files of their
own (sd-scripts' --clip_l, --clip_g, --t5xxl, --vae). A flag given beside a file or folder that holds
that part replaces it, as sd-scripts lets the flag win. Part files: CLIP in transformers' names (with or
without `text_projection`, which sd-scripts fills with the identity when absent), T5 in transformers'
names, the autoencoder in SAI/LDM names or diffusers'. Configs: a file we saved carries them in its
metadata; otherwise the shipped config set of the detected variant.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, SD3Transformer2DModel
from transformers import (
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
)

from backend.families import declaration
from backend.families.sd3.detection import parts_inside
from backend.families.sd3.keymap import MMDIT_PREFIX, sai_to_diffusers
from backend.messages import msg
from backend.models.components import Components
from backend.models.configs import ArchConfigs, load_arch_configs
from backend.models.detect import ModelInfo
from backend.models.errors import ModelFileError
from backend.models.files import read_checkpoint, read_shapes
from backend.models.keymap_text import to_module_keys
from backend.models.keymap_vae import vae_to_diffusers
from backend.models.loading import _fill, load_component
from backend.models.tokenizers import MODEL_MAX_LENGTH, load_family_tokenizers

logger = logging.getLogger(__name__)

PartFiles = Mapping[str, "str | Path | None"]
Modules = tuple[SD3Transformer2DModel, AutoencoderKL, CLIPTextModelWithProjection, CLIPTextModelWithProjection,
                T5EncoderModel]
VAE_PREFIX = "first_stage_model."
# The text encoders inside a single file, by the flag that gives them as files of their own.
TEXT_PREFIXES = {"clip_l": "text_encoders.clip_l.transformer.", "clip_g": "text_encoders.clip_g.transformer.",
                 "t5xxl": "text_encoders.t5xxl.transformer."}
_IGNORED_CLIP_KEYS = ("text_model.embeddings.position_ids", "logit_scale")
_T5_TIED = "encoder.embed_tokens.weight"


def build_modules(configs: ArchConfigs) -> Modules:
    """Every SD 3.5 module from its config, on the meta device (no memory, no random initialisation)."""
    with init_empty_weights():
        return _modules(configs)


def random_modules(configs: ArchConfigs) -> Modules:
    """Every SD 3.5 module from its config with random weights (tiny test models)."""
    modules = _modules(configs)
    for module in modules:
        module.eval()
    return modules


def _modules(configs: ArchConfigs) -> Modules:
    clip_l, clip_g, t5 = configs.text_encoders
    return (SD3Transformer2DModel.from_config(configs.unet), AutoencoderKL.from_config(configs.vae),
            CLIPTextModelWithProjection(CLIPTextConfig.from_dict(clip_l)),
            CLIPTextModelWithProjection(CLIPTextConfig.from_dict(clip_g)), T5EncoderModel(T5Config.from_dict(t5)))


def _given(files: PartFiles, flag: str) -> Path | None:
    value = files.get(flag)
    return Path(value) if value else None


def _checked_flags(files: PartFiles) -> dict[str, Path]:
    found = {}
    for flag in declaration("sd3_medium").part_flags:
        path = _given(files, flag)
        if path is None:
            continue
        if not path.is_file():
            raise FileNotFoundError(msg("sd3.part_not_found", "--{flag} {path}: no such file", flag=flag, path=path))
        found[flag] = path
    return found


def _section(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under `prefix`, without it (taken out of `state`)."""
    keys = [key for key in state if key.startswith(prefix)]
    return {key.removeprefix(prefix): state.pop(key) for key in keys}


def clip_state(state: dict[str, torch.Tensor], module: CLIPTextModelWithProjection) -> dict[str, torch.Tensor]:
    """transformers' names; a missing `text_projection` is the identity, as sd-scripts' load_clip_l fills it."""
    state = {k: v for k, v in state.items() if k not in _IGNORED_CLIP_KEYS}
    if "text_projection.weight" not in state:
        width = module.config.hidden_size
        dtype = next(iter(state.values())).dtype if state else torch.float32
        state["text_projection.weight"] = torch.eye(module.config.projection_dim, width, dtype=dtype)
    return to_module_keys(state, module)


def t5_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """T5EncoderModel names; files may lack the embedding tied to `shared.weight` (or hold only it)."""
    if "shared.weight" in state:
        state.setdefault(_T5_TIED, state["shared.weight"])
    elif _T5_TIED in state:
        state["shared.weight"] = state[_T5_TIED]
    return state


def vae_state(state: dict[str, torch.Tensor], config: Mapping[str, Any], where: str) -> dict[str, torch.Tensor]:
    for prefix in (VAE_PREFIX, "vae."):
        if any(key.startswith(prefix) for key in state):
            state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    if any(key.startswith("encoder.down_blocks.") for key in state):
        return state
    try:
        return vae_to_diffusers(state, config)
    except KeyError as exc:
        raise ValueError(msg("sd3.vae_unreadable", "{where} is not an SD 3.5 autoencoder ({error})",
                             where=where, error=exc)) from exc


def _fill_t5(module: T5EncoderModel, state: dict[str, torch.Tensor], dtype: torch.dtype, what: str) -> None:
    if _T5_TIED not in module.state_dict():
        state.pop(_T5_TIED, None)
    _fill(module, state, dtype, what)
    module.tie_weights()


def _fill_text_encoders(modules: Modules, inside: Mapping[str, dict[str, torch.Tensor]], parts: Mapping[str, Path],
                        device: str, dtype: torch.dtype) -> None:
    _, _, clip_l, clip_g, t5 = modules
    for flag, module in (("clip_l", clip_l), ("clip_g", clip_g), ("t5xxl", t5)):
        if flag in parts:
            state, what = read_checkpoint(parts[flag], device, dtype)[0], f"--{flag} text encoder"
        else:
            state, what = inside[flag], f"{flag} text encoder"
        if flag == "t5xxl":
            _fill_t5(t5, t5_state(state), dtype, what)
        else:
            _fill(module, clip_state(state, module), dtype, what)


def _configs_for(info: ModelInfo) -> ArchConfigs:
    return info.configs or load_arch_configs(declaration(info.family).epsilon.config_set)


def _transformer_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SAI names (under `model.diffusion_model.` or bare) or diffusers' names (bare or under `transformer.`)."""
    if any(key.startswith("transformer.") for key in state):
        return _section(state, "transformer.")
    if any(key.startswith(MMDIT_PREFIX) for key in state):
        return sai_to_diffusers(_section(state, MMDIT_PREFIX))
    mmdit = {k: state.pop(k) for k in [k for k in state if not k.startswith(("text_encoders.", VAE_PREFIX))]}
    return mmdit if "pos_embed.proj.weight" in mmdit else sai_to_diffusers(mmdit)


def _load_single_file(info: ModelInfo, files: PartFiles, dtype: torch.dtype, device: str,
                      tokenizer_cache_dir: str | Path | None) -> Components:
    parts = _checked_flags(files)
    inside = parts_inside(read_shapes(Path(info.path))[0])  # the file's header: no weights read
    missing = [f"--{flag}" for flag in declaration(info.family).part_flags if flag not in inside and flag not in parts]
    if missing:
        raise ValueError(msg(
            "sd3.part_missing", "{path} is an SD 3.5 file without {flags}: give them as files of their own ({flags}: "
            "clip_l.safetensors, clip_g.safetensors, t5xxl_fp16.safetensors, the SD 3.5 VAE), or a file or diffusers "
            "folder that holds every part", path=info.path, flags=" ".join(missing),
        ))
    configs = _configs_for(info)
    tokenizers = load_family_tokenizers(info.family, tokenizer_cache_dir)  # fails early, before weights are read
    state = read_checkpoint(Path(info.path), device, dtype)[0]
    texts = {flag: _section(state, prefix) for flag, prefix in TEXT_PREFIXES.items()}
    vae_inside = _section(state, VAE_PREFIX)
    modules = build_modules(configs)
    transformer, vae = modules[0], modules[1]
    _fill(transformer, _transformer_state(state), dtype, "SD 3.5 MMDiT")
    if "vae" in parts:
        _fill(vae, vae_state(read_checkpoint(parts["vae"], device, dtype)[0], configs.vae, f"--vae {parts['vae']}"),
              dtype, "--vae autoencoder")
    else:
        _fill(vae, vae_state(vae_inside, configs.vae, info.path), dtype, "autoencoder")
    _fill_text_encoders(modules, texts, parts, device, dtype)
    return Components(info.family, configs, transformer, vae, list(modules[2:]), tokenizers, source=info.path)


def _folder_tokenizers(folder: Path) -> list[Any]:
    tokenizers = [CLIPTokenizer.from_pretrained(str(folder / "tokenizer")),
                  CLIPTokenizer.from_pretrained(str(folder / "tokenizer_2")),
                  T5TokenizerFast.from_pretrained(str(folder / "tokenizer_3"))]
    for name, tokenizer, least in zip(("tokenizer", "tokenizer_2", "tokenizer_3"), tokenizers, (512, 512, 16),
                                      strict=True):
        if len(tokenizer.get_vocab()) < least:  # transformers 5 returns an empty tokenizer for missing files
            raise ModelFileError(
                folder / name, msg("sd3.tokenizer_empty", "holds no usable tokenizer (its vocabulary is empty)"),
                msg("model.fix_copy_model_folder", "copy the model folder again"),
            )
    for clip in tokenizers[:2]:
        clip.model_max_length = MODEL_MAX_LENGTH
    return tokenizers


def _load_folder(info: ModelInfo, files: PartFiles, dtype: torch.dtype, device: str,
                 text_encoders: bool = True) -> Components:
    folder, configs = Path(info.path), info.configs
    assert configs is not None  # detect_model reads a folder's configs
    flags = declaration(info.family).part_flags
    parts = _checked_flags(files)
    for flag, path in parts.items():
        logger.info(msg("sd3.part_replaces_folder", "--{flag} {path} replaces the model folder's {part}/ (the flag "
                        "wins, as in sd-scripts)", flag=flag, path=path, part=flags[flag]))


    transformer = load_component(folder, "transformer", SD3Transformer2DModel, torch_dtype=dtype)
    if not text_encoders:
        return Components(info.family, configs, transformer, None, [], [], source=info.path)  # type: ignore[arg-type]
    modules = build_modules(configs)
    if "vae" in parts:
        vae = modules[1]
        _fill(vae, vae_state(read_checkpoint(parts["vae"], device, dtype)[0], configs.vae, f"--vae {parts['vae']}"),
              dtype, "--vae autoencoder")
    else:
        vae = load_component(folder, "vae", AutoencoderKL, torch_dtype=dtype)
    encoders: list[Any] = []
    for flag, name, cls, module in (("clip_l", "text_encoder", CLIPTextModelWithProjection, modules[2]),
                                    ("clip_g", "text_encoder_2", CLIPTextModelWithProjection, modules[3]),
                                    ("t5xxl", "text_encoder_3", T5EncoderModel, modules[4])):
        if flag not in parts:
            encoders.append(load_component(folder, name, cls, dtype=dtype))
            continue
        state = read_checkpoint(parts[flag], device, dtype)[0]
        if flag == "t5xxl":
            _fill_t5(module, t5_state(state), dtype, "--t5xxl text encoder")
        else:
            _fill(module, clip_state(state, module), dtype, f"--{flag} text encoder")
        encoders.append(module)
    return Components(info.family, configs, transformer, vae, encoders, _folder_tokenizers(folder), source=info.path)


def load_sd3_weights(info: ModelInfo, dtype: torch.dtype, *, text_encoders: bool) -> Components:
    """What the LoRA tools read: a folder (whole, or its transformer alone), or a single file's parts (the text
    encoders only when it holds them all), without tokenizers."""
    if info.format == "diffusers":
        return _load_folder(info, {}, dtype, "cpu", text_encoders)
    configs = _configs_for(info)
    state = read_checkpoint(Path(info.path), "cpu", dtype)[0]
    texts = {flag: _section(state, prefix) for flag, prefix in TEXT_PREFIXES.items()}
    vae_inside = _section(state, VAE_PREFIX)
    modules = build_modules(configs)
    _fill(modules[0], _transformer_state(state), dtype, "SD 3.5 MMDiT")
    vae = None
    if vae_inside:
        _fill(modules[1], vae_state(vae_inside, configs.vae, info.path), dtype, "autoencoder")
        vae = modules[1]
    encoders: list[Any] = []
    if text_encoders and all(texts.values()):
        _fill_text_encoders(modules, texts, {}, "cpu", dtype)
        encoders = list(modules[2:])
    return Components(info.family, configs, modules[0], vae, encoders, [], source=info.path)  # type: ignore[arg-type]


def load_sd3(info: ModelInfo, files: PartFiles, *, dtype: torch.dtype, device: str,
             tokenizer_cache_dir: str | Path | None) -> Components:
    """SD 3.5 from `info` (`backend.models.detect.detect_model`): a diffusers folder, or a single file with
    `files` {"clip_l", "clip_g", "t5xxl", "vae"} (sd-scripts' flags; None or absent: not given)."""
    if info.format == "diffusers":
        return _load_folder(info, files, dtype, device)
    return _load_single_file(info, files, dtype, device, tokenizer_cache_dir)
