"""sd-scripts' --vae: a VAE of its own replacing the model's (SD 1.x/2.x, SDXL).

What sd-scripts' `model_util.load_vae` reads, read here too: a single file (.safetensors, .ckpt/.pt/.pth, .bin)
with the VAE in the original (LDM) names, bare as A1111/ComfyUI's `*.vae.safetensors` are, or under
`first_stage_model.` (a whole SD checkpoint: its VAE is taken); or a diffusers folder, the VAE's own
(`config.json` beside `diffusion_pytorch_model.*`) or a pipeline's (its `vae/`). Also taken: diffusers' names in a
single file (`diffusion_pytorch_model.safetensors` copied alone) and the `vae.` prefix. Hub ids are not downloaded
(sd-scripts would): preflight asks for a file on this machine, as for the model itself.

The weights fill a VAE built from the model's own config, so the model's scaling factor stays and a VAE of
another shape is refused by name (before loading, in preflight, from the file's header).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from backend.messages import msg
from backend.models.errors import ModelFileError
from backend.models.files import is_single_file, read_checkpoint, read_shapes
from backend.models.keymap_vae import VAE_PREFIX, vae_to_diffusers

# Training leftovers some original VAE files carry (the autoencoder's discriminator loss, EMA counters).
_UNUSED_PREFIXES = ("loss.", "model_ema.")
_FOLDER_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                   "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin")


class VaeFileError(ValueError):
    """--vae names something that is not a VAE this model can use."""


def weights_file(path: str | Path) -> Path:
    """The file holding the VAE's weights: `path` itself, or the weights of a diffusers VAE folder (or its vae/)."""
    path = Path(path)
    if path.is_file():
        if not is_single_file(path):
            raise VaeFileError(msg("vae.suffix", "--vae {path}: not a weights file (.safetensors, .ckpt, .pt, .pth "
                                   "or .bin) nor a diffusers VAE folder", path=path))
        return path
    for folder in (path, path / "vae"):
        for name in _FOLDER_WEIGHTS:
            if (folder / name).is_file():
                return folder / name
    raise VaeFileError(msg("vae.folder_without_weights", "--vae {path}: this folder holds no diffusers VAE "
                           "(diffusion_pytorch_model.safetensors or .bin, there or in vae/)", path=path))


def to_diffusers_names(state: Mapping[str, Any], config: Mapping[str, Any], where: str | Path) -> dict[str, Any]:
    """The VAE's tensors (or shapes) under diffusers' names, whatever naming the file used."""
    for prefix in (VAE_PREFIX, "vae."):
        if any(key.startswith(prefix) for key in state):
            state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
            break
    state = {k: v for k, v in state.items() if not k.startswith(_UNUSED_PREFIXES)}
    if any(key.startswith("encoder.down_blocks.") for key in state):
        return dict(state)
    try:
        return vae_to_diffusers(state, config)
    except KeyError as exc:
        raise VaeFileError(msg(
            "vae.not_a_vae", "--vae {path}: not a VAE in the original or diffusers layout ({error}). Give a VAE file "
            "(e.g. sdxl_vae.safetensors, vae-ft-mse-840000-ema-pruned.safetensors) or a whole checkpoint whose VAE "
            "to take", path=where, error=exc.args[0] if exc.args else exc,
        )) from exc


def _expected_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL

    with init_empty_weights():
        module = AutoencoderKL.from_config(dict(config))
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def _same_shape(found: tuple[int, ...], wanted: tuple[int, ...]) -> bool:
    """The original layout's mid-block attention is a 1x1 convolution where diffusers has a Linear."""
    return found == wanted or (len(found) == 4 and found[2:] == (1, 1) and found[:2] == wanted)


def vae_file_problem(path: str | Path, config: Mapping[str, Any], model_label: str) -> str | None:
    """Why --vae `path` cannot replace the VAE of a model whose VAE config is `config`, or None. Header level:
    a .safetensors file's names and shapes are read without its tensors."""
    try:
        file = weights_file(path)
        shapes, _ = read_shapes(file)
        meta = {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}
        found = {key: tuple(value.shape) for key, value in to_diffusers_names(meta, config, path).items()}
    except VaeFileError as exc:
        return str(exc)
    except ModelFileError as exc:
        return msg("vae.damaged", "--vae cannot be used: {problem}", problem=exc)
    except OSError as exc:
        return msg("vae.unreadable", "--vae {path}: cannot be read ({reason})", path=path, reason=exc.strerror or exc)
    wanted = _expected_shapes(config)
    missing = sorted(wanted.keys() - found.keys())
    other = sorted(key for key in wanted.keys() & found.keys() if not _same_shape(found[key], wanted[key]))
    if not missing and not other:
        return None
    example = (other or missing)[0]
    return msg(
        "vae.other_model", "--vae {path}: this VAE does not fit the {model} model's ({count} of its weights missing "
        "or of another shape, e.g. {name}: {found} where the model has {wanted}). Give a VAE made for {model}",
        path=path, model=model_label, count=len(missing) + len(other), name=example,
        found=list(found[example]) if example in found else msg("vae.absent", "absent"), wanted=list(wanted[example]),
    )


def load_vae(path: str | Path, config: Mapping[str, Any], dtype: torch.dtype, device: str = "cpu") -> Any:
    """The VAE of --vae `path` as an AutoencoderKL built from the model's VAE `config`."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL

    from backend.models.loading import _fill

    file = weights_file(path)
    state = read_checkpoint(file, device, dtype)[0]
    state = to_diffusers_names(state, config, path)
    with init_empty_weights():
        vae = AutoencoderKL.from_config(dict(config))
    _fill(vae, state, dtype, msg("vae.part", "--vae {path} VAE", path=path))
    return vae
