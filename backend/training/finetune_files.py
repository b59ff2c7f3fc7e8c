"""What a fine-tune saves and under which names: sd-scripts' `--save_model_as` / `--use_safetensors`.

- `safetensors` / `ckpt`: one file in the original Stability layout (A1111, ComfyUI, our loader);
  `--use_safetensors` turns `ckpt` into `safetensors`, as in sd-scripts.
- `diffusers` / `diffusers_safetensors`: a diffusers model folder (`from_pretrained` loads it) with
  `.bin` or `.safetensors` weights; `--use_safetensors` turns `diffusers` into the latter. Text
  encoders and tokenizers are written so that transformers 4 (sd-scripts' pin) loads them too
  (backend/models/saving.py).

With `--ema --ema_save beside` the EMA weights go to `<name>-ema` in the same format next to each
saved model (`tiny-step00000004-ema.safetensors`, `tiny-ema/`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SINGLE_FILE_FORMATS = ("safetensors", "ckpt")
FOLDER_FORMATS = ("diffusers", "diffusers_safetensors")
EMA_SUFFIX = "-ema"


@dataclass(frozen=True)
class ModelFormat:
    extension: str  # "safetensors", "ckpt", or "" for a diffusers folder
    safetensors: bool  # the weights inside a diffusers folder

    @property
    def folder(self) -> bool:
        return not self.extension


def model_format(save_model_as: str, use_safetensors: bool) -> ModelFormat:
    if save_model_as in SINGLE_FILE_FORMATS:
        single = "safetensors" if use_safetensors else save_model_as
        return ModelFormat(single, single == "safetensors")
    if save_model_as in FOLDER_FORMATS:
        return ModelFormat("", use_safetensors or save_model_as == "diffusers_safetensors")
    raise ValueError(
        f"--save_model_as {save_model_as}: a fine-tune is saved as one of "
        f"{', '.join(SINGLE_FILE_FORMATS + FOLDER_FORMATS)}"
    )


def ema_path(path: Path, folder: bool) -> Path:
    """Where `--ema_save beside` puts the EMA weights of the model saved at `path` (a folder or a file)."""
    if folder:
        return path.with_name(path.name + EMA_SUFFIX)
    return path.with_name(f"{path.stem}{EMA_SUFFIX}{path.suffix}")
