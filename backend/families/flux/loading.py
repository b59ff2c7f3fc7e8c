"""Loading FLUX.1 into `Components`: a diffusers FluxPipeline folder, or a BFL transformer file with the
other parts as files of their own (sd-scripts' --ae, --clip_l, --t5xxl).

Single files are read tensor by tensor (`backend.models.files.read_checkpoint`, cast as read: fp8
files load upcast to the wanted dtype) into modules built on the meta device and filled with
`assign=True`. Part files: the autoencoder in BFL/LDM names (`encoder.down.0.block.0...`, renamed by
`backend.models.keymap_vae`) or diffusers' names; CLIP-L and T5-XXL in transformers' names. A flag given
beside a folder replaces that folder's part, as sd-scripts lets the flag win. Configs: a file we saved
carries them in its metadata; otherwise the shipped config set of the detected variant.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, FluxTransformer2DModel
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
)

from backend.families import declaration
from backend.families.flux.keymap import bfl_to_diffusers
from backend.messages import msg
from backend.models.components import Components
from backend.models.configs import ArchConfigs, load_arch_configs
from backend.models.detect import ModelInfo
from backend.models.errors import ModelFileError
from backend.models.files import read_checkpoint
from backend.models.keymap_text import to_module_keys
from backend.models.keymap_vae import vae_to_diffusers
from backend.models.loading import _component, _fill, load_component
from backend.models.tokenizers import MODEL_MAX_LENGTH, load_family_tokenizers

logger = logging.getLogger(__name__)

PartFiles = Mapping[str, "str | Path | None"]
# Tensors part files may carry that the modules do not have (CLIPTextModelWithProjection exports,
# older transformers' position-id buffer); dropped on load.
_IGNORED_CLIP_KEYS = ("text_model.embeddings.position_ids", "text_projection.weight", "logit_scale")


def build_modules(configs: ArchConfigs) -> tuple[FluxTransformer2DModel, AutoencoderKL, CLIPTextModel, T5EncoderModel]:
    """Every FLUX.1 module from its config, on the meta device (no memory, no random initialisation)."""
    with init_empty_weights():
        return (FluxTransformer2DModel.from_config(configs.unet), AutoencoderKL.from_config(configs.vae),
                CLIPTextModel(CLIPTextConfig.from_dict(configs.text_encoders[0])),
                T5EncoderModel(T5Config.from_dict(configs.text_encoders[1])))


def random_modules(configs: ArchConfigs) -> tuple[FluxTransformer2DModel, AutoencoderKL, CLIPTextModel, T5EncoderModel]:
    """Every FLUX.1 module from its config with random weights (tiny test models)."""
    return (FluxTransformer2DModel.from_config(configs.unet).eval(), AutoencoderKL.from_config(configs.vae).eval(),
            CLIPTextModel(CLIPTextConfig.from_dict(configs.text_encoders[0])).eval(),
            T5EncoderModel(T5Config.from_dict(configs.text_encoders[1])).eval())


def _given(files: PartFiles, flag: str) -> Path | None:
    value = files.get(flag)
    return Path(value) if value else None


def _check_parts(info: ModelInfo, files: PartFiles) -> dict[str, Path]:
    """The part files a single transformer file needs, each given and present, before any weights are read."""
    flags = declaration(info.family).part_flags
    missing = [f"--{flag}" for flag in flags if _given(files, flag) is None]
    if missing:
        raise ValueError(msg(
            "flux.part_missing", "{path} is a FLUX.1 transformer file, which holds no autoencoder or text encoders: "
            "give {flags} as well (sd-scripts' files: ae.safetensors, clip_l.safetensors, t5xxl_fp16.safetensors), or "
            "give a diffusers FLUX.1 folder", path=info.path, flags=" ".join(missing),
        ))
    found = {flag: _given(files, flag) for flag in flags}
    for flag, path in found.items():
        assert path is not None
        if not path.is_file():
            raise FileNotFoundError(msg("flux.part_not_found", "--{flag} {path}: no such file", flag=flag, path=path))
    return {flag: path for flag, path in found.items() if path is not None}


def _read(path: Path, device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return read_checkpoint(path, device, dtype)[0]


def _vae_state(path: Path, config: Mapping[str, Any], device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """ae.safetensors in BFL/LDM names (optionally under `first_stage_model.` or `vae.`), or diffusers' names."""
    state = _read(path, device, dtype)
    for prefix in ("first_stage_model.", "vae."):
        if any(key.startswith(prefix) for key in state):
            state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    if any(key.startswith("encoder.down_blocks.") for key in state):
        return state
    try:
        return vae_to_diffusers(state, config)
    except KeyError as exc:
        raise ValueError(msg("flux.ae_unreadable", "--ae {path} is not a FLUX.1 autoencoder ({error})",
                             path=path, error=exc)) from exc


def _clip_state(path: Path, module: CLIPTextModel, device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    state = _read(path, device, dtype)
    state = {k: v for k, v in state.items() if k not in _IGNORED_CLIP_KEYS}
    return to_module_keys(state, module)


def _t5_state(path: Path, device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """T5EncoderModel names; sd-scripts' and ComfyUI's files may lack the embedding tied to `shared.weight`."""
    state = _read(path, device, dtype)
    if "shared.weight" in state:
        state.setdefault("encoder.embed_tokens.weight", state["shared.weight"])
    elif "encoder.embed_tokens.weight" in state:
        state["shared.weight"] = state["encoder.embed_tokens.weight"]
    return state


def _transformer_state(path: Path, device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """BFL names (bare or under `model.diffusion_model.`), or diffusers' names (optionally under `transformer.`)."""
    state = _read(path, device, dtype)
    if any(key.startswith("transformer.") for key in state):
        state = {k.removeprefix("transformer."): v for k, v in state.items() if k.startswith("transformer.")}
    if "x_embedder.weight" in state:
        return state
    return bfl_to_diffusers(state)


def _configs_for(info: ModelInfo) -> ArchConfigs:
    return info.configs or load_arch_configs(declaration(info.family).epsilon.config_set)


def _fill_part(module: torch.nn.Module, state: dict[str, torch.Tensor], dtype: torch.dtype, what: str,
               t5: bool = False) -> None:
    if t5 and "encoder.embed_tokens.weight" not in module.state_dict():
        state.pop("encoder.embed_tokens.weight", None)
    _fill(module, state, dtype, what)
    if t5:
        module.tie_weights()  # encoder.embed_tokens shares shared.weight, as from_pretrained leaves it


def _load_single_file(info: ModelInfo, files: PartFiles, dtype: torch.dtype, device: str,
                      tokenizer_cache_dir: str | Path | None) -> Components:
    parts = _check_parts(info, files)
    configs = _configs_for(info)
    tokenizers = load_family_tokenizers(info.family, tokenizer_cache_dir)  # fails early, before weights are read
    transformer, vae, clip, t5 = build_modules(configs)
    _fill(transformer, _transformer_state(Path(info.path), device, dtype), dtype, "FLUX.1 transformer")
    _fill(vae, _vae_state(parts["ae"], configs.vae, device, dtype), dtype, "--ae autoencoder")
    _fill(clip, _clip_state(parts["clip_l"], clip, device, dtype), dtype, "--clip_l text encoder")
    _fill_part(t5, _t5_state(parts["t5xxl"], device, dtype), dtype, "--t5xxl text encoder", t5=True)
    return Components(info.family, configs, transformer, vae, [clip, t5], tokenizers, source=info.path)


def _folder_tokenizers(folder: Path) -> list[Any]:
    clip = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    t5 = T5TokenizerFast.from_pretrained(str(folder / "tokenizer_2"))
    for name, tokenizer, least in (("tokenizer", clip, 512), ("tokenizer_2", t5, 16)):
        if len(tokenizer.get_vocab()) < least:  # transformers 5 returns an empty tokenizer for missing files
            raise ModelFileError(
                folder / name, msg("flux.tokenizer_empty", "holds no usable tokenizer (its vocabulary is empty)"),
                msg("model.fix_copy_model_folder", "copy the model folder again"),
            )
    clip.model_max_length = MODEL_MAX_LENGTH
    return [clip, t5]


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


    transformer = load_component(folder, "transformer", FluxTransformer2DModel, torch_dtype=dtype)
    _, vae, clip, t5 = build_modules(configs)
    if "ae" in given:
        _fill(vae, _vae_state(given["ae"], configs.vae, device, dtype), dtype, "--ae autoencoder")
    else:
        vae = load_component(folder, "vae", AutoencoderKL, torch_dtype=dtype)
    if "clip_l" in given:
        _fill(clip, _clip_state(given["clip_l"], clip, device, dtype), dtype, "--clip_l text encoder")
    else:
        clip = load_component(folder, "text_encoder", CLIPTextModel, dtype=dtype)
    if "t5xxl" in given:
        _fill_part(t5, _t5_state(given["t5xxl"], device, dtype), dtype, "--t5xxl text encoder", t5=True)
    else:
        t5 = load_component(folder, "text_encoder_2", T5EncoderModel, dtype=dtype)
    return Components(info.family, configs, transformer, vae, [clip, t5], _folder_tokenizers(folder), source=info.path)


def load_flux_weights(info: ModelInfo, dtype: torch.dtype, *, text_encoders: bool) -> Components:
    """What the LoRA tools read: a folder whole (its tokenizers too: a merged folder is saved whole), or
    without text encoders when the caller needs the transformer only; a BFL single file is the transformer
    alone (no autoencoder, text encoders or tokenizers: sd-scripts' flux tools read it the same way)."""
    if info.format == "diffusers" and text_encoders:
        return _load_folder(info, {}, dtype, "cpu")
    configs = _configs_for(info)
    if info.format == "diffusers":
        folder = Path(info.path)
        transformer = _component(folder, "transformer", lambda: FluxTransformer2DModel.from_pretrained(
            folder, subfolder="transformer", local_files_only=True, torch_dtype=dtype))
    else:
        transformer = build_modules(configs)[0]
        _fill(transformer, _transformer_state(Path(info.path), "cpu", dtype), dtype, "FLUX.1 transformer")
    # No autoencoder: the tools neither read nor save one from a transformer (FluxSpec.save writes a file
    # of the transformer alone; a folder is only written from a folder loaded whole).
    return Components(info.family, configs, transformer, None, [], [], source=info.path)  # type: ignore[arg-type]


def load_flux(info: ModelInfo, files: PartFiles, *, dtype: torch.dtype, device: str,
              tokenizer_cache_dir: str | Path | None) -> Components:
    """FLUX.1 from `info` (`backend.models.detect.detect_model`): a diffusers folder, or a transformer file
    with `files` {"ae", "clip_l", "t5xxl"} (sd-scripts' flags; None or absent: not given). `device` is where
    single files' tensors are read to; folders load on the CPU, moved by the caller."""
    if info.format == "diffusers":
        return _load_folder(info, files, dtype, device)
    return _load_single_file(info, files, dtype, device, tokenizer_cache_dir)

