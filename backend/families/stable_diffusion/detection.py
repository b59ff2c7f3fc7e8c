"""How SD 1.x and SD 2.x files are told apart (torch-free): by their one text encoder, CLIP ViT-L in
transformers' layout (SD 1.x) or OpenCLIP ViT-H (SD 2.x)."""

from __future__ import annotations

from backend.families.detection import Detection, FolderConfigs, Recognised, Shapes
from backend.messages import msg

CLIP_L_PREFIX = "cond_stage_model.transformer."
OPEN_CLIP_H_PREFIX = "cond_stage_model.model."


def _sd1() -> Recognised:
    return Recognised("sd1", msg("model.evidence_sd1", "a CLIP ViT-L text encoder (cond_stage_model.transformer.*)"))


def _sd2() -> Recognised:
    return Recognised("sd2", msg("model.evidence_sd2", "an OpenCLIP ViT-H text encoder (cond_stage_model.model.*)"))


def from_keys(shapes: Shapes, path: str) -> Recognised | None:
    if any(key.startswith(OPEN_CLIP_H_PREFIX) for key in shapes):
        return _sd2()
    if any(key.startswith(CLIP_L_PREFIX) for key in shapes):
        return _sd1()
    return None


def from_folder(configs: FolderConfigs) -> Recognised:
    # OpenCLIP's GELU (CLIP-L uses quick_gelu) and SD 2.x's linear transformer projections.
    is_sd2 = configs.text_encoders[0].get("hidden_act") == "gelu" or bool(configs.unet.get("use_linear_projection"))
    return _sd2() if is_sd2 else _sd1()


DETECTION = Detection(from_keys=from_keys, from_folder=from_folder)
