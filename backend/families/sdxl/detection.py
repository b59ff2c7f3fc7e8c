"""How SDXL base files are recognised (torch-free): two text encoders under `conditioner.embedders`
and the U-Net's `label_emb` (size conditioning). The refiner (one OpenCLIP text encoder) is refused."""

from __future__ import annotations

from pathlib import Path

from backend.families.detection import Detection, FolderConfigs, JsonObject, Recognised, Shapes
from backend.messages import msg
from backend.models.errors import ModelMismatchError

CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
OPEN_CLIP_G_PREFIX = "conditioner.embedders.1.model."
REFINER_OPEN_CLIP_PREFIX = "conditioner.embedders.0.model."
LABEL_EMBEDDING = "model.diffusion_model.label_emb.0.0.weight"


def _recognised() -> Recognised:
    return Recognised("sdxl", msg("model.evidence_sdxl", "two text encoders (conditioner.embedders.*) and a "
                                  "label_emb block"))


def from_keys(shapes: Shapes, path: str) -> Recognised | None:
    if any(key.startswith(OPEN_CLIP_G_PREFIX) for key in shapes) or (
        LABEL_EMBEDDING in shapes and any(key.startswith("conditioner.") for key in shapes)
    ):
        return _recognised()
    if any(key.startswith(REFINER_OPEN_CLIP_PREFIX) for key in shapes):
        raise ModelMismatchError(msg(
            "model.sdxl_refiner", "{path} looks like an SDXL refiner (one OpenCLIP text encoder); it is not supported",
            path=path,
        ))
    return None


def from_folder(configs: FolderConfigs) -> Recognised:
    return _recognised()


def refuse_folder(folder: Path, index: JsonObject) -> None:
    if not (index.get("text_encoder") or [None])[-1]:
        raise ModelMismatchError(msg(
            "model.folder_sdxl_refiner", "{folder} looks like an SDXL refiner (no first text encoder); it is not "
            "supported", folder=folder,
        ))


DETECTION = Detection(from_keys=from_keys, from_folder=from_folder, refuse_folder=refuse_folder)
