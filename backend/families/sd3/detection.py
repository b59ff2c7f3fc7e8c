"""How SD 3.5 files are recognised (torch-free).

A single file holds the MMDiT under `model.diffusion_model.` (SAI's names: `joint_blocks.N.x_block...`,
`context_block...`, `x_embedder.proj`, `pos_embed`), usually the autoencoder under `first_stage_model.`,
and possibly the text encoders under `text_encoders.clip_l.`, `clip_g.`, `t5xxl.`. A bare MMDiT (no
prefix) and a transformer in diffusers' names are recognised too. Medium (MMDiT-X) has the second
self-attention in its first x blocks (`x_block.attn2`), Large has none: sd-scripts tells them the same
way. SD 3 Medium (no q/k norms) is refused. Folders: transformer/config.json's `dual_attention_layers`.
"""

from __future__ import annotations

from backend.families.detection import Detection, FolderConfigs, Recognised, Shapes
from backend.messages import msg
from backend.models.errors import ModelMismatchError

MMDIT_PREFIX = "model.diffusion_model."
MEDIUM, LARGE = "sd3_medium", "sd3_large"
_SAI_MARKERS = ("joint_blocks.0.context_block.attn.qkv.weight", "x_embedder.proj.weight")
_SAI_QK_NORM = "joint_blocks.0.x_block.attn.ln_q.weight"
_DIFFUSERS_MARKERS = ("transformer_blocks.0.attn.add_q_proj.weight", "pos_embed.proj.weight")
_DIFFUSERS_QK_NORM = "transformer_blocks.0.attn.norm_q.weight"


def _bare(shapes: Shapes) -> set[str]:
    keys = set(shapes)
    for prefix in (MMDIT_PREFIX, "transformer."):
        if any(key.startswith(prefix) for key in keys):
            return {key.removeprefix(prefix) for key in keys if key.startswith(prefix)}
    return keys


def _variant(dual: bool, evidence: str) -> Recognised:
    if dual:
        return Recognised(MEDIUM, msg("sd3.evidence_medium", "SD 3.5 MMDiT {evidence} with x-block dual attention "
                                      "(MMDiT-X)", evidence=evidence))
    return Recognised(LARGE, msg("sd3.evidence_large", "SD 3.5 MMDiT {evidence} without x-block dual attention",
                                 evidence=evidence))


def _refuse_sd3(path: str) -> ModelMismatchError:
    return ModelMismatchError(msg(
        "sd3.sd3_medium_refused", "{path} is a Stable Diffusion 3 (not 3.5) model (its MMDiT has no q/k norms); "
        "only SD 3.5 Medium and Large are supported: give an SD 3.5 model", path=path,
    ))


def from_keys(shapes: Shapes, path: str) -> Recognised | None:
    keys = _bare(shapes)
    if all(marker in keys for marker in _SAI_MARKERS):
        if _SAI_QK_NORM not in keys:
            raise _refuse_sd3(path)
        return _variant(any(".x_block.attn2." in key for key in keys), "keys (joint_blocks)")
    if all(marker in keys for marker in _DIFFUSERS_MARKERS) and "context_embedder.weight" in keys:
        if _DIFFUSERS_QK_NORM not in keys:
            raise _refuse_sd3(path)
        return _variant(any(".attn2." in key for key in keys), "keys (transformer_blocks)")
    return None


# The parts a single file may hold, by the flag that gives them as files of their own: their key prefixes.
PART_PREFIXES = {"clip_l": "text_encoders.clip_l.", "clip_g": "text_encoders.clip_g.", "t5xxl": "text_encoders.t5xxl.",
                 "vae": "first_stage_model."}


def parts_inside(shapes: Shapes) -> frozenset[str]:
    return frozenset(flag for flag, prefix in PART_PREFIXES.items() if any(key.startswith(prefix) for key in shapes))


def from_folder(configs: FolderConfigs) -> Recognised:
    dual = bool(configs.unet.get("dual_attention_layers") or ())
    return _variant(dual, "config (transformer/config.json)")


DETECTION = Detection(from_keys=from_keys, from_folder=from_folder, parts_inside=parts_inside)
