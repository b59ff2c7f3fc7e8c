"""How LTX-Video models are recognised (torch-free).

A diffusers folder: model_index.json names an LTX pipeline (`LTXPipeline`, `LTXImageToVideoPipeline`,
`LTXConditionPipeline`) and transformer/config.json says `LTXVideoTransformer3DModel`. Other pipelines whose
class begins with "LTX" (the latent upsampler, LTX-2) are refused by name. Single files (Lightricks' original
`ltx-video-2b-v*.safetensors`, or a diffusers transformer saved alone) are recognised by their keys and refused
with the way to go: this trainer loads LTX-Video from a diffusers folder.
"""

from __future__ import annotations

from pathlib import Path

from backend.families.detection import Detection, FolderConfigs, JsonObject, Recognised, Shapes
from backend.messages import msg
from backend.models.errors import ModelMismatchError

NAME = "ltx_video"
PIPELINES = ("LTXPipeline", "LTXImageToVideoPipeline", "LTXConditionPipeline")
TRANSFORMER_CLASS = "LTXVideoTransformer3DModel"
# Lightricks' original names (transformer under model.diffusion_model., VAE under vae.) and diffusers' names.
_ORIGINAL_MARKERS = ("patchify_proj.weight", "adaln_single.emb.timestep_embedder.linear_1.weight")
_DIFFUSERS_MARKERS = ("proj_in.weight", "caption_projection.linear_1.weight", "scale_shift_table",
                      "transformer_blocks.0.attn1.to_q.weight", "transformer_blocks.0.attn2.to_k.weight")


def _bare(shapes: Shapes) -> set[str]:
    keys = set(shapes)
    for prefix in ("model.diffusion_model.", "transformer."):
        if any(key.startswith(prefix) for key in keys):
            return {key.removeprefix(prefix) for key in keys if key.startswith(prefix)}
    return keys


def from_keys(shapes: Shapes, path: str) -> Recognised | None:
    return None  # folders only: part_message names a single file and refuses it


def part_message(shapes: Shapes, path: str) -> str | None:
    keys = _bare(shapes)
    if all(marker in keys for marker in _ORIGINAL_MARKERS) or all(marker in keys for marker in _DIFFUSERS_MARKERS):
        return msg("ltx_video.single_file", "{path} is an LTX-Video checkpoint file; this trainer loads LTX-Video "
                   "from a diffusers folder (the one holding model_index.json, transformer/, vae/, text_encoder/, "
                   "tokenizer/ and scheduler/, such as a download of Lightricks/LTX-Video): give that folder as "
                   "--pretrained_model_name_or_path, and this file as --transformer_id to train it instead of the "
                   "folder's transformer", path=path)
    return None


def refuse_folder(folder: Path, index: JsonObject) -> None:
    class_name = str(index.get("_class_name", ""))
    if class_name not in PIPELINES:
        raise ModelMismatchError(msg(
            "ltx_video.pipeline_unsupported", "{folder} is a {class_name} model folder; this trainer trains "
            "LTX-Video 0.9.x from {pipelines} folders only", folder=folder, class_name=class_name or "?",
            pipelines=", ".join(PIPELINES)))


def from_folder(configs: FolderConfigs) -> Recognised:
    found = str(configs.unet.get("_class_name", ""))
    if found != TRANSFORMER_CLASS:
        raise ModelMismatchError(msg(
            "ltx_video.transformer_unsupported", "the model folder's transformer/config.json says {found}, not "
            "{wanted}: not an LTX-Video 0.9.x transformer", found=found or "no class", wanted=TRANSFORMER_CLASS))
    return Recognised(NAME, msg("ltx_video.evidence_folder", "an LTX pipeline with an {cls} transformer",
                                cls=TRANSFORMER_CLASS))


DETECTION = Detection(from_keys=from_keys, from_folder=from_folder, refuse_folder=refuse_folder,
                      part_message=part_message)
