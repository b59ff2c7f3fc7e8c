"""How Wan 2.1 text-to-video models are recognised (torch-free).

A diffusers folder: model_index.json's `WanPipeline` and transformer/config.json's `WanTransformer3DModel`
without an image embedder. Folders of Wan pipelines this family does not train yet are refused with what
they are: image-to-video (`WanImageToVideoPipeline`, CLIP vision conditioning, `image_dim` set), VACE,
and Wan 2.2 (a second transformer or expanded timesteps). A single transformer file (Wan's own names,
`blocks.N.self_attn.q`, or diffusers' `blocks.N.attn1.to_q`, bare or under ComfyUI's
`model.diffusion_model.`) is recognised so the loader can say to give the diffusers folder instead.
"""

from __future__ import annotations

from pathlib import Path

from backend.families.detection import Detection, FolderConfigs, JsonObject, Recognised, Shapes
from backend.messages import msg
from backend.models.errors import ModelMismatchError

WAN = "wan"
TRANSFORMER_CLASS = "WanTransformer3DModel"
T2V_PIPELINE = "WanPipeline"
_PREFIXES = ("model.diffusion_model.", "transformer.")
_ORIGINAL_MARKERS = ("patch_embedding.weight", "text_embedding.0.weight", "blocks.0.self_attn.q.weight")
_DIFFUSERS_MARKERS = ("patch_embedding.weight", "condition_embedder.text_embedder.linear_1.weight",
                      "blocks.0.attn1.to_q.weight")
_IMAGE_MARKERS = ("img_emb.", "condition_embedder.image_embedder.")
# Block width -> the released model it is (WanTransformer3DModel: heads x 128).
SIZES = {1536: "1.3B", 5120: "14B"}


def _bare(shapes: Shapes) -> set[str]:
    keys = set(shapes)
    for prefix in _PREFIXES:
        if any(key.startswith(prefix) for key in keys):
            return {key.removeprefix(prefix) for key in keys if key.startswith(prefix)}
    return keys


def _size(width: int) -> str:
    return SIZES.get(width, msg("wan.size_unknown", "{width} wide", width=width))


def from_keys(shapes: Shapes, path: str) -> Recognised | None:
    keys = _bare(shapes)
    if any(key.startswith(_IMAGE_MARKERS) for key in keys):
        return None  # image-to-video: not this family's (yet)
    for markers, names in ((_ORIGINAL_MARKERS, "Wan"), (_DIFFUSERS_MARKERS, "diffusers")):
        if all(marker in keys for marker in markers):
            width = next((shape[0] for key, shape in shapes.items() if key.endswith("patch_embedding.weight")), 0)
            return Recognised(WAN, msg("wan.evidence_keys", "Wan 2.1 {size} transformer keys ({names} names)",
                                       size=_size(width), names=names))
    return None


def refuse_folder(folder: Path, index: JsonObject) -> None:
    """Wan pipelines other than text-to-video 2.1 are refused before their parts are checked."""
    class_name = str(index.get("_class_name", ""))
    if class_name != T2V_PIPELINE:
        raise ModelMismatchError(msg(
            "wan.folder_other_pipeline", "{folder} is a {class_name} model; this trainer trains Wan 2.1 text-to-video "
            "(WanPipeline) models only: give a Wan2.1-T2V-1.3B or -14B diffusers folder", folder=folder,
            class_name=class_name,
        ))
    second = index.get("transformer_2")
    if (isinstance(second, list) and any(second)) or index.get("expand_timesteps"):
        raise ModelMismatchError(msg(
            "wan.folder_wan22", "{folder} is a Wan 2.2 model (two transformers or expanded timesteps); this trainer "
            "trains Wan 2.1 text-to-video models only", folder=folder,
        ))


def from_folder(configs: FolderConfigs) -> Recognised:
    class_name = str(configs.unet.get("_class_name", ""))
    if class_name != TRANSFORMER_CLASS:
        raise ModelMismatchError(msg(
            "wan.folder_transformer_class", "this WanPipeline folder's transformer/config.json names {class_name}, "
            "not {expected}: the folder is damaged or mixed from other models; copy the whole model folder again",
            class_name=class_name or "no class", expected=TRANSFORMER_CLASS,
        ))
    if configs.unet.get("image_dim") is not None:
        raise ModelMismatchError(msg(
            "wan.folder_image_to_video", "this folder's transformer takes image conditioning (image_dim is set): "
            "an image-to-video model, which this trainer does not train yet; give a Wan 2.1 text-to-video folder"))
    width = int(configs.unet.get("num_attention_heads", 0)) * int(configs.unet.get("attention_head_dim", 0))
    return Recognised(WAN, msg("wan.evidence_folder", "Wan 2.1 {size} text-to-video transformer "
                               "(WanTransformer3DModel, {layers} blocks)", size=_size(width),
                               layers=configs.unet.get("num_layers", "?")))


DETECTION = Detection(from_keys=from_keys, from_folder=from_folder, refuse_folder=refuse_folder)
