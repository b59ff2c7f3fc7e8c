"""Loading and saving LTX-Video `Components`: a diffusers LTXPipeline folder (local; detect_model checked it).

Saving writes a diffusers folder: the whole pipeline (`save_pipeline_folder`, what `LTXPipeline.from_pretrained`
loads back) or the transformer alone (`save_transformer_folder`: `transformer/config.json` and
`diffusion_pytorch_model.safetensors`, as finetrainers saves a full fine-tune). Both atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel
from safetensors.torch import save_file
from transformers import T5EncoderModel, T5TokenizerFast

from backend.atomic import atomic_folder
from backend.messages import msg
from backend.models.components import Components
from backend.models.configs import ArchConfigs
from backend.models.detect import ModelInfo
from backend.models.errors import ModelFileError
from backend.models.loading import load_component
from backend.models.saving import StateOverrides, _cast, _check_replaceable, _write_json, module_state
from backend.video.model_view import load_transformer

# transformers ties T5's input embedding to `shared.weight`; from_pretrained ties it again on load.
_T5_TIED = "encoder.embed_tokens.weight"
MAX_SEQUENCE_LENGTH = 128  # LTXPipeline's and finetrainers' T5 length for LTX-Video


def random_modules(configs: ArchConfigs) -> tuple[LTXVideoTransformer3DModel, AutoencoderKLLTXVideo, T5EncoderModel]:
    """Every module from its config with random weights (tiny test models)."""
    from transformers import T5Config

    return (LTXVideoTransformer3DModel.from_config(configs.unet).eval(),
            AutoencoderKLLTXVideo.from_config(configs.vae).eval(),
            T5EncoderModel(T5Config.from_dict(configs.text_encoders[0])).eval())


def _tokenizer(folder: Path) -> T5TokenizerFast:
    path = folder / "tokenizer"
    try:
        tokenizer = T5TokenizerFast.from_pretrained(str(path))
    except (OSError, ValueError, ImportError) as exc:
        raise ModelFileError(path, msg("ltx_video.tokenizer_unloadable", "the T5 tokenizer cannot be loaded ({error})",
                                       error=f"{type(exc).__name__}: {str(exc)[:200]}"),
                             msg("ltx_video.fix_tokenizer", "the folder needs tokenizer.json (a fast T5 tokenizer); "
                                 "copy the model folder again")) from exc
    if len(tokenizer.get_vocab()) < 16:  # transformers 5 returns an empty tokenizer for missing files
        raise ModelFileError(path, msg("ltx_video.tokenizer_empty", "holds no usable tokenizer (its vocabulary is "
                                       "empty)"), msg("model.fix_copy_model_folder", "copy the model folder again"))
    return tokenizer


def load_folder(info: ModelInfo, dtype: torch.dtype) -> Components:
    """Transformer, VAE, T5 encoder and tokenizer of a local LTXPipeline folder, on the CPU in `dtype`."""
    folder, configs = Path(info.path), info.configs
    assert configs is not None  # detect_model read the folder's configs

    transformer = load_transformer(folder, "transformer", LTXVideoTransformer3DModel, dtype)
    vae = load_component(folder, "vae", AutoencoderKLLTXVideo, torch_dtype=dtype)
    t5 = load_component(folder, "text_encoder", T5EncoderModel, dtype=dtype)
    return Components(info.family, configs, transformer, vae, [t5], [_tokenizer(folder)], source=info.path)


def _write_module(folder: Path, module: Any, state: dict[str, torch.Tensor], stem: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(module, "save_config"):
        module.save_config(folder)  # diffusers
    else:
        module.config.save_pretrained(str(folder))  # transformers
    state = {k: v.detach().contiguous() for k, v in state.items()}
    save_file(state, str(folder / f"{stem}.safetensors"), metadata={"format": "pt"})


def write_transformer(components: Components, folder: Path, dtype: torch.dtype | None,
                      states: StateOverrides | None) -> None:
    _write_module(folder, components.unet, _cast(module_state(components, "unet", states), dtype),
                  "diffusion_pytorch_model")


def save_transformer_folder(components: Components, path: str | Path, *, dtype: torch.dtype | None = None,
                            states: StateOverrides | None = None) -> Path:
    """A full fine-tune's transformer alone as a diffusers model folder (config.json + safetensors):
    `LTXVideoTransformer3DModel.from_pretrained(path)` loads it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir() and any(path.iterdir()) and not (path / "config.json").is_file():
        raise FileExistsError(msg("ltx_video.save_target_not_model", "{path} exists and is not a diffusers model "
                                  "folder (no config.json); refusing to replace it", path=path))
    with atomic_folder(path) as folder:
        write_transformer(components, folder, dtype, states)
    return path


def save_pipeline_folder(components: Components, path: str | Path, *, dtype: torch.dtype | None = None,
                         states: StateOverrides | None = None) -> Path:
    """The whole LTXPipeline folder; `states` replaces modules' weights by part name ("unet", "vae",
    "text_encoder1"), as a fine-tune's trained transformer."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_replaceable(path)
    with atomic_folder(path) as folder:
        write_transformer(components, folder / "transformer", dtype, states)
        _write_module(folder / "vae", components.vae, _cast(module_state(components, "vae", states), dtype),
                      "diffusion_pytorch_model")
        t5_state = {k: v for k, v in module_state(components, "text_encoder1", states).items() if k != _T5_TIED}
        _write_module(folder / "text_encoder", components.text_encoders[0], _cast(t5_state, dtype), "model")
        components.tokenizers[0].save_pretrained(str(folder / "tokenizer"))
        _write_json(folder / "scheduler" / "scheduler_config.json", components.configs.scheduler)
        _write_json(folder / "model_index.json", components.configs.model_index)
    return path
