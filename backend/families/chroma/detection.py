"""How Chroma files are recognised (torch-free).

A Chroma single file is a FLUX.1-style transformer (`double_blocks.N`, `single_blocks.N`, `img_in`) with
a `distilled_guidance_layer` and none of FLUX.1's embedders (`time_in`, `vector_in`, `guidance_in`), bare or
under ComfyUI's `model.diffusion_model.`; in diffusers' names it keeps `distilled_guidance_layer` beside
`transformer_blocks`/`single_transformer_blocks`. Folders: a ChromaPipeline (transformer/config.json's
class ChromaTransformer2DModel). Its AE and T5-XXL are FLUX.1's files; FLUX.1's detection names them.
"""

from __future__ import annotations

from backend.families.detection import Detection, FolderConfigs, Recognised, Shapes
from backend.messages import msg

NAME = "chroma"
BFL_PREFIX = "model.diffusion_model."
MARKER = "distilled_guidance_layer.in_proj.weight"  # the same in BFL's and diffusers' names
_BFL_BLOCKS = ("double_blocks.", "single_blocks.")
_DIFFUSERS_BLOCKS = ("transformer_blocks.", "single_transformer_blocks.")


def _bare(shapes: Shapes) -> set[str]:
    keys = set(shapes)
    for prefix in (BFL_PREFIX, "transformer."):
        if any(key.startswith(prefix) for key in keys):
            return {key.removeprefix(prefix) for key in keys if key.startswith(prefix)}
    return keys


def from_keys(shapes: Shapes, path: str) -> Recognised | None:
    keys = _bare(shapes)
    if MARKER not in keys:
        return None
    for blocks, names in ((_BFL_BLOCKS, "double_blocks, single_blocks"),
                          (_DIFFUSERS_BLOCKS, "transformer_blocks, single_transformer_blocks")):
        if all(any(key.startswith(block) for key in keys) for block in blocks):
            return Recognised(NAME, msg("chroma.evidence", "Chroma transformer keys ({blocks}) with a "
                                        "distilled_guidance_layer", blocks=names))
    return None


def from_folder(configs: FolderConfigs) -> Recognised:
    return Recognised(NAME, msg("chroma.evidence_folder", "config (transformer/config.json: {cls})",
                                cls=configs.unet.get("_class_name", "ChromaTransformer2DModel")))


DETECTION = Detection(from_keys=from_keys, from_folder=from_folder)
