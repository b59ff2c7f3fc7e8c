"""How FLUX.1 files are recognised (torch-free).

A FLUX.1 single file holds the transformer alone, in Black Forest Labs' names (`double_blocks.N...`,
`single_blocks.N...`, `img_in`), bare as BFL and sd-scripts save it or under `model.diffusion_model.` as
ComfyUI and Forge do; dev has the guidance embedding (`guidance_in`), schnell has none, which is how
sd-scripts tells them too. A transformer saved in diffusers' names is recognised as well. Chroma files (a
FLUX.1 schnell derivative with a `distilled_guidance_layer`) are left to backend/families/chroma. The other
parts (autoencoder, CLIP-L, T5-XXL) are passed by flags of their own (--ae, --clip_l, --t5xxl); given as
the base model, they are said to be that. Folders: transformer/config.json's `guidance_embeds`.
"""

from __future__ import annotations

from backend.families.detection import Detection, FolderConfigs, Recognised, Shapes
from backend.messages import msg

BFL_PREFIX = "model.diffusion_model."
DEV, SCHNELL = "flux_dev", "flux_schnell"
_BFL_MARKERS = ("double_blocks.0.img_attn.qkv.weight", "img_in.weight")
_BFL_GUIDANCE = "guidance_in.in_layer.weight"
_DIFFUSERS_MARKERS = ("transformer_blocks.0.attn.to_q.weight", "x_embedder.weight")
_DIFFUSERS_GUIDANCE = "time_text_embed.guidance_embedder.linear_1.weight"
_CHROMA_MARKER = "distilled_guidance_layer."
_LATENT_CHANNELS = 16  # FLUX.1's autoencoder; SD/SDXL's have 4
_CLIP_L_WIDTH = 768


def _bare(shapes: Shapes) -> set[str]:
    """The keys without ComfyUI's `model.diffusion_model.` (or diffusers' `transformer.`) prefix."""
    keys = set(shapes)
    for prefix in (BFL_PREFIX, "transformer."):
        if any(key.startswith(prefix) for key in keys):
            return {key.removeprefix(prefix) for key in keys if key.startswith(prefix)}
    return keys


def _variant(guidance: bool, evidence: str) -> Recognised:
    if guidance:
        return Recognised(DEV, msg("flux.evidence_dev", "FLUX.1 transformer {evidence} with a guidance embedding", evidence=evidence))
    return Recognised(SCHNELL, msg("flux.evidence_schnell", "FLUX.1 transformer {evidence} without a guidance "
                                   "embedding", evidence=evidence))


def from_keys(shapes: Shapes, path: str) -> Recognised | None:
    keys = _bare(shapes)
    if any(key.startswith(_CHROMA_MARKER) for key in keys):
        return None  # Chroma's (backend/families/chroma/detection.py)
    if all(marker in keys for marker in _BFL_MARKERS) and any(key.startswith("single_blocks.") for key in keys):
        return _variant(_BFL_GUIDANCE in keys, "keys (double_blocks, single_blocks)")
    if all(marker in keys for marker in _DIFFUSERS_MARKERS) and any(
            key.startswith("single_transformer_blocks.") for key in keys):
        return _variant(_DIFFUSERS_GUIDANCE in keys, "keys (transformer_blocks, single_transformer_blocks)")
    return None


def part_message(shapes: Shapes, path: str) -> str | None:
    """A FLUX.1 part with a flag of its own, given as the base model: what it is and where it goes."""
    keys = set(shapes)
    conv_out = shapes.get("encoder.conv_out.weight")
    if conv_out is not None and conv_out[0] == 2 * _LATENT_CHANNELS and "decoder.conv_in.weight" in keys:
        return msg("flux.part_ae", "{path}: this is the FLUX.1 autoencoder (ae.safetensors), not a whole model; pass "
                   "it as --ae, and the FLUX.1 transformer as --pretrained_model_name_or_path", path=path)
    if shapes.get("text_model.encoder.layers.0.self_attn.q_proj.weight", (0,))[0] == _CLIP_L_WIDTH:
        return msg("flux.part_clip_l", "{path}: this is a CLIP-L text encoder on its own, not a whole model; for FLUX.1 "
                   "pass it as --clip_l, and the FLUX.1 transformer as --pretrained_model_name_or_path", path=path)
    if any(key.startswith("encoder.block.") for key in keys) and "shared.weight" in keys:
        return msg("flux.part_t5", "{path}: this is a T5 text encoder on its own, not a whole model; for FLUX.1 pass it "
                   "as --t5xxl, and the FLUX.1 transformer as --pretrained_model_name_or_path", path=path)
    return None


def from_folder(configs: FolderConfigs) -> Recognised:
    guidance = bool(configs.unet.get("guidance_embeds", False))
    return _variant(guidance, "config (transformer/config.json)")


DETECTION = Detection(from_keys=from_keys, from_folder=from_folder, part_message=part_message)
