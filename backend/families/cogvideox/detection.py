"""How CogVideoX 1.0 text-to-video models are recognised (torch-free).

A diffusers folder: model_index.json's `CogVideoXPipeline` and transformer/config.json's
`CogVideoXTransformer3DModel` with 16 input channels and no temporal patches. Folders of CogVideoX pipelines
this family does not train yet are refused with what they are: image-to-video (`CogVideoXImageToVideoPipeline`,
32 input channels), CogVideoX 1.5 (`patch_size_t`, `ofs_embed_dim`) and the Fun control pipelines. A single
transformer file in diffusers' names is recognised so the loader can say to give the diffusers folder instead.
"""

from __future__ import annotations

from pathlib import Path

from backend.families.detection import Detection, FolderConfigs, JsonObject, Recognised, Shapes
from backend.messages import msg
from backend.models.errors import ModelMismatchError

NAME = "cogvideox"
TRANSFORMER_CLASS = "CogVideoXTransformer3DModel"
T2V_PIPELINE = "CogVideoXPipeline"
_PREFIXES = ("model.diffusion_model.", "transformer.")
_DIFFUSERS_MARKERS = ("patch_embed.proj.weight", "patch_embed.text_proj.weight", "norm_final.weight",
                      "transformer_blocks.0.attn1.to_q.weight", "transformer_blocks.0.norm1.linear.weight")
# Block width -> the released 1.0 model it is (heads x 64).
SIZES = {1920: "2B", 3072: "5B"}


def _bare(shapes: Shapes) -> set[str]:
    keys = set(shapes)
    for prefix in _PREFIXES:
        if any(key.startswith(prefix) for key in keys):
            return {key.removeprefix(prefix) for key in keys if key.startswith(prefix)}
    return keys


def _size(width: int) -> str:
    return SIZES.get(width, msg("cogvideox.size_unknown", "{width} wide", width=width))


def from_keys(shapes: Shapes, path: str) -> Recognised | None:
    keys = _bare(shapes)
    if all(marker in keys for marker in _DIFFUSERS_MARKERS):
        width = next((shape[0] for key, shape in shapes.items() if key.endswith("patch_embed.text_proj.weight")), 0)
        return Recognised(NAME, msg("cogvideox.evidence_keys", "CogVideoX {size} transformer keys (diffusers names)",
                                    size=_size(width)))
    return None


def refuse_folder(folder: Path, index: JsonObject) -> None:
    """CogVideoX pipelines other than text-to-video are refused before their parts are checked."""
    class_name = str(index.get("_class_name", ""))
    if class_name != T2V_PIPELINE:
        raise ModelMismatchError(msg(
            "cogvideox.folder_other_pipeline", "{folder} is a {class_name} model; this trainer trains CogVideoX "
            "text-to-video (CogVideoXPipeline) models only: give a CogVideoX-2b or CogVideoX-5b diffusers folder",
            folder=folder, class_name=class_name or "?"))


def from_folder(configs: FolderConfigs) -> Recognised:
    unet = configs.unet
    class_name = str(unet.get("_class_name", ""))
    if class_name != TRANSFORMER_CLASS:
        raise ModelMismatchError(msg(
            "cogvideox.folder_transformer_class", "this CogVideoXPipeline folder's transformer/config.json names "
            "{class_name}, not {expected}: the folder is damaged or mixed from other models; copy the whole model "
            "folder again", class_name=class_name or "no class", expected=TRANSFORMER_CLASS))
    if unet.get("patch_size_t") is not None or unet.get("ofs_embed_dim") is not None:
        raise ModelMismatchError(msg(
            "cogvideox.folder_v15", "this folder holds a CogVideoX 1.5 transformer (patch_size_t / ofs_embed_dim set: "
            "latent frames in pairs); this trainer trains CogVideoX 1.0 (2B, 5B) only"))
    if int(unet.get("in_channels", 16)) != 16:
        raise ModelMismatchError(msg(
            "cogvideox.folder_image_to_video", "this folder's transformer takes {channels} input channels (an "
            "image-to-video model, its first frame's latents beside the noise); this trainer trains CogVideoX "
            "text-to-video models only", channels=unet.get("in_channels")))
    width = int(unet.get("num_attention_heads", 0)) * int(unet.get("attention_head_dim", 0))
    positions = "RoPE" if unet.get("use_rotary_positional_embeddings") else "sinusoidal positions"
    return Recognised(NAME, msg("cogvideox.evidence_folder", "CogVideoX {size} text-to-video transformer "
                                "(CogVideoXTransformer3DModel, {layers} blocks, {positions})", size=_size(width),
                                layers=unet.get("num_layers", "?"), positions=positions))


DETECTION = Detection(from_keys=from_keys, from_folder=from_folder, refuse_folder=refuse_folder)
