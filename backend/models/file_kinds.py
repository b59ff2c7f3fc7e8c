"""What a weights file is when it is not a base model this trainer can train: a LoRA or LyCORIS
network, a textual-inversion embedding, a VAE, text encoder or U-Net on its own, a ControlNet, or a
model of a family not supported yet (SD 3.x, ...). Recognised from the tensor names (and
the metadata LoRA trainers write), so the message can say what the file is and what to do with it
instead of "not a recognised checkpoint". Light: no torch.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from backend.messages import msg
from backend.models.errors import ModelMismatchError

_KOHYA_LORA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_", "lora_te3_", "lora_transformer_")
# LyCORIS parameter names -> algorithm (sd-scripts' LoRA has lora_down/lora_up/alpha only).
_LYCORIS_PARAMS = {
    ".hada_w1_a": "LoHa", ".lokr_w1": "LoKr", ".oft_blocks": "OFT", ".oft_diag": "OFT", ".lora_mid.": "LoCon",
    ".dora_scale": "DoRA", ".diff": "full (LyCORIS)", ".a1.weight": "GLoRA", ".on_input": "IA3",
}  # fmt: skip
_PEFT_MARKERS = (".lora_A.", ".lora_B.", ".lora.down.", ".lora.up.", "_lora.down.", "lora_linear_layer.")
# Families no declaration claims yet (a claimed family's files are recognised before these are asked).
_FAMILIES_BY_ARCHITECTURE = {"stable-diffusion-v3": "Stable Diffusion 3/3.5", "sd3": "Stable Diffusion 3/3.5"}


def _any(keys: Collection[str], *, starts: tuple[str, ...] = (), contains: tuple[str, ...] = ()) -> bool:
    return any(k.startswith(starts) for k in keys) if starts else any(m in k for k in keys for m in contains)


def _lora_kind(keys: Collection[str], metadata: Mapping[str, str]) -> str | None:
    """'LoRA', 'LoHa (LyCORIS)', ... for a network file, else None."""
    kohya = _any(keys, starts=_KOHYA_LORA_PREFIXES)
    peft = _any(keys, contains=_PEFT_MARKERS)
    architecture = metadata.get("modelspec.architecture", "")
    if not (kohya or peft or "ss_network_module" in metadata or architecture.endswith("/lora")):
        return None
    for marker, algorithm in _LYCORIS_PARAMS.items():
        if _any(keys, contains=(marker,)):
            return f"{algorithm} (LyCORIS)" if algorithm != "LoCon" else "LoCon"
    if "lycoris" in metadata.get("ss_network_module", ""):
        return "LyCORIS"
    return "LoRA (diffusers/PEFT layout)" if peft and not kohya else "LoRA"


def _lora_message(path: str | Path, kind: str, metadata: Mapping[str, str]) -> str:
    trained_on = metadata.get("ss_sd_model_name")
    on = msg("model.lora_trained_on", " (its metadata says it was trained on {model})", model=repr(trained_on)) if (
        trained_on) else ""
    if "PEFT" in kind:
        how = msg("model.lora_continue_peft", "convert it with python -m backend.tools.convert_lora --to kohya, then "
                  "pass it as --network_weights")
    elif "LyCORIS" in kind:
        how = msg("model.lora_continue_lycoris",
                  "pass it as --network_weights with --network_module lycoris.kohya and the same algo")
    else:
        how = msg("model.lora_continue", "pass it as --network_weights")
    return msg(
        "model.lora_as_base_model",
        "{path}: this is a {kind} network file, not a base model. Give the base checkpoint it was trained on{trained_on} "
        "as the model (for training: --pretrained_model_name_or_path); to continue training it, {continue_training}; "
        "to bake it into a model, use the LoRA tools' merge (python -m backend.tools.merge_lora --sd_model MODEL "
        "--models LORA --save_to OUT)",
        path=path, kind=kind, trained_on=on, continue_training=how,
    )


def _unsupported_family(keys: Collection[str], metadata: Mapping[str, str]) -> str | None:
    architecture = metadata.get("modelspec.architecture", "").lower()
    for marker, label in _FAMILIES_BY_ARCHITECTURE.items():
        if architecture.startswith(marker):
            return label
    if _any(keys, contains=("joint_blocks.",)) or (
        _any(keys, contains=(".attn.add_q_proj.",)) and _any(keys, starts=("pos_embed.", "transformer.pos_embed."))
    ):
        return "Stable Diffusion 3/3.5"
    return None


def _component(keys: Collection[str]) -> str | None:
    """A single part of a model, in either layout."""
    if _any(keys, contains=("control_model.", "input_hint_block.", "controlnet_cond_embedding.")):
        return msg("model.part_controlnet", "a ControlNet model")
    if _any(keys, starts=("encoder.", "first_stage_model.encoder.", "vae.encoder.")) and _any(
        keys, starts=("decoder.", "first_stage_model.decoder.", "vae.decoder.")
    ):
        return msg("model.part_vae", "a VAE on its own")
    if _any(keys, contains=("text_model.encoder.layers.", "transformer.resblocks.")):
        return msg("model.part_clip", "a CLIP text encoder on its own")
    if _any(keys, starts=("encoder.block.", "shared.weight")):
        return msg("model.part_t5", "a T5 text encoder on its own (as used by SD 3.x and FLUX.1)")
    if _any(keys, starts=("down_blocks.",)) and _any(keys, starts=("mid_block.",)):
        return msg("model.part_unet", "a U-Net on its own in the diffusers layout (one part of a diffusers model folder)")
    return None


def describe_foreign_keys(
    path: str | Path, keys: Collection[str], metadata: Mapping[str, str]
) -> ModelMismatchError | None:
    """The error for a file that is recognisably not a base model of a supported family, else None."""
    lora = _lora_kind(keys, metadata)
    if lora is not None:
        return ModelMismatchError(_lora_message(path, lora, metadata))
    names = set(keys)
    architecture = metadata.get("modelspec.architecture", "")
    if "emb_params" in names or _any(keys, starts=("string_to_param",)) or (
        names and names <= {"clip_l", "clip_g"}
    ) or architecture.endswith("/textual-inversion"):
        return ModelMismatchError(msg(
            "model.embedding_as_base_model", "{path}: this is a textual-inversion embedding (a trained word for "
            "prompts), not a base model. Use it in prompts when generating images; to train, give the base checkpoint "
            "as --pretrained_model_name_or_path", path=path,
        ))
    family = _unsupported_family(keys, metadata)
    if family is not None:
        return ModelMismatchError(msg(
            "model.unsupported_family", "{path}: this is a {family} model; this trainer trains SD 1.x, SD 2.x and SDXL "
            "models and does not support {family} yet", path=path, family=family,
        ))
    part = _component(keys)
    if part is not None:
        return ModelMismatchError(msg(
            "model.part_as_base_model", "{path}: this is {part}, not a whole model. Give a whole SD 1.x, SD 2.x or "
            "SDXL model: one .safetensors/.ckpt file holding U-Net, VAE and text encoder(s), or a diffusers folder "
            "holding model_index.json", path=path, part=part,
        ))
    return None


def no_state_dict_error(path: str | Path, keys: Collection[str]) -> ModelMismatchError:
    """A pickle without tensors at its top level: say what it is when the keys tell."""
    if keys:
        error = msg("model.pickle_without_tensors_entries", "{path}: this PyTorch file holds no model weights (no "
                    "tensors; its entries: {entries}); give an SD 1.x, SD 2.x or SDXL checkpoint",
                    path=path, entries=", ".join(sorted(keys)[:8]))
    else:
        error = msg("model.pickle_without_tensors", "{path}: this PyTorch file holds no model weights (no tensors); "
                    "give an SD 1.x, SD 2.x or SDXL checkpoint", path=path)
    return describe_foreign_keys(path, keys, {}) or ModelMismatchError(error)
