"""How HunyuanVideo models are recognised (torch-free).

A diffusers folder: model_index.json's `HunyuanVideoPipeline` and transformer/config.json's
`HunyuanVideoTransformer3DModel` without image conditioning. The other pipelines whose class begins with
"HunyuanVideo" (image-to-video, FramePack, HunyuanVideo 1.5) are refused by name; a transformer with an
`image_condition_type` is refused as image-to-video. Single transformer files (Tencent's original names,
`double_blocks.0.img_attn_qkv`, or diffusers' names, bare or under `model.diffusion_model.` / `transformer.`)
are recognised and refused with the way to go: this trainer loads HunyuanVideo from a diffusers folder.
"""

from __future__ import annotations

from pathlib import Path

from backend.families.detection import Detection, FolderConfigs, JsonObject, Recognised, Shapes
from backend.messages import msg
from backend.models.errors import ModelMismatchError

NAME = "hunyuan_video"
PIPELINE = "HunyuanVideoPipeline"
TRANSFORMER_CLASS = "HunyuanVideoTransformer3DModel"
_PREFIXES = ("model.diffusion_model.", "transformer.", "module.")
_ORIGINAL_MARKERS = ("img_in.proj.weight", "txt_in.individual_token_refiner.blocks.0.self_attn_qkv.weight",
                     "double_blocks.0.img_attn_qkv.weight")
_DIFFUSERS_MARKERS = ("x_embedder.proj.weight", "context_embedder.token_refiner.refiner_blocks.0.attn.to_q.weight",
                      "transformer_blocks.0.attn.to_q.weight")


def _bare(shapes: Shapes) -> set[str]:
    keys = set(shapes)
    for prefix in _PREFIXES:
        if any(key.startswith(prefix) for key in keys):
            return {key.removeprefix(prefix) for key in keys if key.startswith(prefix)}
    return keys


def from_keys(shapes: Shapes, path: str) -> Recognised | None:
    return None  # folders only: part_message names a single file and refuses it


def part_message(shapes: Shapes, path: str) -> str | None:
    keys = _bare(shapes)
    if all(marker in keys for marker in _ORIGINAL_MARKERS) or all(marker in keys for marker in _DIFFUSERS_MARKERS):
        return msg("hunyuan_video.single_file", "{path} is a HunyuanVideo transformer file; this trainer loads "
                   "HunyuanVideo from a diffusers folder (model_index.json, transformer/, vae/, text_encoder/, "
                   "text_encoder_2/, tokenizer/, tokenizer_2/ and scheduler/, as in hunyuanvideo-community/"
                   "HunyuanVideo): give that folder as --pretrained_model_name_or_path, and this file as "
                   "--transformer_id to train it instead of the folder's transformer", path=path)
    return None


def refuse_folder(folder: Path, index: JsonObject) -> None:
    class_name = str(index.get("_class_name", ""))
    if class_name != PIPELINE:
        raise ModelMismatchError(msg(
            "hunyuan_video.pipeline_unsupported", "{folder} is a {class_name} model folder; this trainer trains "
            "HunyuanVideo text-to-video ({pipeline}) folders only", folder=folder, class_name=class_name or "?",
            pipeline=PIPELINE))


def from_folder(configs: FolderConfigs) -> Recognised:
    found = str(configs.unet.get("_class_name", ""))
    if found != TRANSFORMER_CLASS:
        raise ModelMismatchError(msg(
            "hunyuan_video.transformer_unsupported", "the model folder's transformer/config.json says {found}, not "
            "{wanted}: the folder is damaged or mixed from other models; copy the whole model folder again",
            found=found or "no class", wanted=TRANSFORMER_CLASS))
    if configs.unet.get("image_condition_type") is not None:
        raise ModelMismatchError(msg(
            "hunyuan_video.image_to_video", "this folder's transformer takes image conditioning "
            "(image_condition_type {kind}): an image-to-video model, which this trainer does not train yet; give a "
            "HunyuanVideo text-to-video folder", kind=configs.unet.get("image_condition_type")))
    return Recognised(NAME, msg("hunyuan_video.evidence_folder", "HunyuanVideo text-to-video transformer "
                                "({cls}, {double} dual-stream + {single} single-stream blocks)", cls=TRANSFORMER_CLASS,
                                double=configs.unet.get("num_layers", "?"),
                                single=configs.unet.get("num_single_layers", "?")))


DETECTION = Detection(from_keys=from_keys, from_folder=from_folder, refuse_folder=refuse_folder,
                      part_message=part_message)
