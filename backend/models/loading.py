"""Loading a model from a diffusers folder or a single file into :class:`Components`.

Single files use the configs stored in their metadata (files we wrote, including the tiny test
models) or else the shipped configs of the detected family: nothing is downloaded for weights.
Modules are built on the meta device and filled with ``assign=True``, so a real SDXL loads without
a throw-away random initialisation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from backend.families import declaration
from backend.messages import msg
from backend.models.checkpoint import split_original
from backend.models.components import Components
from backend.models.configs import ArchConfigs, load_arch_configs
from backend.models.detect import ModelInfo, detect_model
from backend.models.errors import ModelFileError
from backend.models.files import read_checkpoint
from backend.models.keymap_text import to_module_keys
from backend.models.tokenizers import MODEL_MAX_LENGTH, load_family_tokenizers

_Loaded = TypeVar("_Loaded")

# sd-scripts' --disable_mmap_load_safetensors: diffusers folders' .safetensors read whole instead of memory-mapped
# (network drives, WSL). A context rather than a parameter: every family's folder loading goes through
# `load_component`/`_load_folder`. Single files are never memory-mapped (files.read_checkpoint reads them in order).
_READ_WHOLE: ContextVar[bool] = ContextVar("read_safetensors_whole", default=False)


@contextmanager
def reading_folders_whole(enabled: bool = True) -> Iterator[None]:
    """Within it, diffusers folders' weights files are read whole (`disable_mmap` of diffusers and transformers)."""
    token = _READ_WHOLE.set(enabled)
    try:
        yield
    finally:
        _READ_WHOLE.reset(token)


def _mmap_kwargs() -> dict[str, bool]:
    return {"disable_mmap": True} if _READ_WHOLE.get() else {}


def text_encoder_class(config: dict) -> type[CLIPTextModel] | type[CLIPTextModelWithProjection]:
    if "CLIPTextModelWithProjection" in config.get("architectures", []):
        return CLIPTextModelWithProjection
    return CLIPTextModel


def _fill(module: torch.nn.Module, state: dict[str, torch.Tensor], dtype: torch.dtype, what: str) -> None:
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    expected = set(module.state_dict().keys())
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise ValueError(msg(
            "model.weights_keys_mismatch", "the {part} weights do not match its architecture config: {missing} "
            "missing (for example {missing_names}), {unexpected} unexpected (for example {unexpected_names})",
            part=what, missing=len(missing), missing_names=missing[:3], unexpected=len(unexpected),
            unexpected_names=unexpected[:3],
        ))
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise ValueError(msg("model.weights_shape_mismatch",
                             "the {part} weights do not match its architecture config: {error}",
                             part=what, error=exc)) from exc
    module.eval()


def build_modules(
    configs: ArchConfigs, unet_sd: dict, vae_sd: dict, te_sds: list[dict], dtype: torch.dtype
) -> tuple[UNet2DConditionModel, AutoencoderKL, list[CLIPTextModel | CLIPTextModelWithProjection]]:
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(configs.unet)
        vae = AutoencoderKL.from_config(configs.vae)
        text_encoders = [
            text_encoder_class(cfg)(CLIPTextConfig.from_dict(cfg)) for cfg in configs.text_encoders
        ]
    _fill(unet, unet_sd, dtype, "U-Net")
    _fill(vae, vae_sd, dtype, "VAE")
    for i, (te, sd) in enumerate(zip(text_encoders, te_sds, strict=True)):
        _fill(te, to_module_keys(sd, te), dtype, msg("model.part_text_encoder_n", "text encoder {index}", index=i + 1))
    return unet, vae, text_encoders


def _component(folder: Path, name: str, load: Callable[[], _Loaded]) -> _Loaded:
    """One component of a diffusers folder; detect_model checked its files, so a failure here means
    the config and the weights do not belong together (or the weights are damaged inside)."""
    try:
        return load()
    except (OSError, ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelFileError(
            folder / name, msg("model.component_unloadable", "cannot be loaded ({error})",
                               error=f"{type(exc).__name__}: {first[:300]}"),
            msg("model.fix_component_unloadable", "its config.json and weights do not fit together or the weights are "
                "damaged; copy the model folder again"),
        ) from exc


def load_component(folder: Path, name: str, cls: Any, **kwargs: Any) -> Any:
    """`cls.from_pretrained(folder, subfolder=name)` from local files, a failure said as `_component` says it."""
    return _component(folder, name, lambda: cls.from_pretrained(folder, subfolder=name, local_files_only=True,
                                                                **_mmap_kwargs(), **kwargs))


def _load_folder(info: ModelInfo, dtype: torch.dtype) -> Components:
    folder, configs = Path(info.path), info.configs
    assert configs is not None  # detect_model reads a folder's configs
    unet = load_component(folder, "unet", UNet2DConditionModel, torch_dtype=dtype)
    vae = load_component(folder, "vae", AutoencoderKL, torch_dtype=dtype)
    text_encoders = [
        load_component(folder, name, text_encoder_class(cfg), dtype=dtype)
        for name, cfg in zip(declaration(info.family).text_encoder_folders, configs.text_encoders, strict=True)
    ]
    tokenizers = []
    for name in declaration(info.family).tokenizer_folders:
        tokenizer = CLIPTokenizer.from_pretrained(str(folder / name))
        if len(tokenizer.get_vocab()) < 512:  # transformers 5 returns an empty tokenizer for missing files
            raise ModelFileError(
                folder / name, msg("model.tokenizer_empty", "holds no usable CLIP tokenizer (its vocabulary is empty)"),
                msg("model.fix_copy_model_folder", "copy the model folder again"),
            )
        tokenizer.model_max_length = MODEL_MAX_LENGTH
        tokenizers.append(tokenizer)
    return Components(info.family, configs, unet, vae, text_encoders, tokenizers, source=info.path)


def _load_single_file(
    info: ModelInfo, v_prediction: bool, dtype: torch.dtype, tokenizer_cache_dir: str | Path | None,
    device: str = "cpu",
) -> Components:
    configs = info.configs or load_arch_configs(declaration(info.family).facts(v_prediction).config_set)
    configs = configs.with_prediction_type("v_prediction" if v_prediction else "epsilon")
    tokenizers = load_family_tokenizers(
        info.family, tokenizer_cache_dir
    )  # fail early, before reading weights
    state_dict, _ = read_checkpoint(info.path, device, dtype)
    states = split_original(state_dict, configs)
    del state_dict
    unet, vae, text_encoders = build_modules(configs, states.unet, states.vae, states.text_encoders, dtype)
    return Components(
        info.family, configs, unet, vae, text_encoders, tokenizers, extras=states.extras, source=info.path
    )


def load_components(
    path: str | Path,
    *,
    v_prediction: bool | None = None,
    dtype: torch.dtype = torch.float32,
    tokenizer_cache_dir: str | Path | None = None,
    info: ModelInfo | None = None,
    device: str = "cpu",
) -> Components:
    """Load any supported model. ``v_prediction`` None keeps what the folder/file records (else epsilon).

    ``device``: where a single file's tensors are read to (--lowram reads them straight to the GPU);
    diffusers folders are memory-mapped by diffusers and moved by the caller."""
    info = info or detect_model(path)
    if info.format == "diffusers":
        components = _load_folder(info, dtype)
        if v_prediction is not None:
            prediction = "v_prediction" if v_prediction else "epsilon"
            components.configs = components.configs.with_prediction_type(prediction)
        return components
    recorded = bool(info.v_prediction)
    return _load_single_file(
        info, recorded if v_prediction is None else v_prediction, dtype, tokenizer_cache_dir, device
    )
