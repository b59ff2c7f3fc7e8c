"""Family detection from keys and configs, and the check that the user's flags agree with the file.

Runs before anything is loaded into a model: single files are inspected through their header
(checked to be complete, see ``file_checks``) and diffusers folders through their JSON configs (every
part checked first, see ``folder_checks``). v-prediction cannot be seen in weights, so it is only known
from metadata (``modelspec.prediction_type``, our stored configs, a ``v_pred`` marker key) or a
folder's scheduler config. A file that is no base model of a supported family (a LoRA, an embedding,
a VAE, FLUX.1, ...) is said to be what it is (``file_kinds``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backend.families import declaration
from backend.messages import msg
from backend.models.configs import FAMILY_LABELS, ArchConfigs, Family, read_diffusers_configs
from backend.models.errors import ModelFileError, ModelMismatchError
from backend.models.file_checks import unknown_suffix_error
from backend.models.file_kinds import describe_foreign_keys
from backend.models.files import CONFIG_METADATA_KEY, PICKLE_SUFFIXES, is_single_file, read_shapes
from backend.models.folder_checks import check_diffusers_folder

__all__ = ["ModelFileError", "ModelInfo", "ModelMismatchError", "check_model_flags", "detect_model"]


@dataclass(frozen=True)
class ModelInfo:
    path: str
    format: str  # "diffusers", "safetensors" or "ckpt"
    family: Family
    v_prediction: bool | None  # None: not recorded anywhere, the --v_parameterization flag decides
    configs: ArchConfigs | None  # exact configs when the folder or file carries them
    evidence: str  # what the family was recognised by, for messages (a noun phrase in the user's language)

    @property
    def label(self) -> str:
        return FAMILY_LABELS[self.family]


def _evidence(family: Family) -> str:
    if family == "sd1":
        return msg("model.evidence_sd1", "a CLIP ViT-L text encoder (cond_stage_model.transformer.*)")
    if family == "sd2":
        return msg("model.evidence_sd2", "an OpenCLIP ViT-H text encoder (cond_stage_model.model.*)")
    return msg("model.evidence_sdxl", "two text encoders (conditioner.embedders.*) and a label_emb block")

_CROSS_ATTENTION_WIDTHS: dict[int, Family] = {768: "sd1", 1024: "sd2", 2048: "sdxl"}


def _family_from_keys(
    shapes: dict[str, tuple[int, ...]], path: str, metadata: dict[str, str] | None = None
) -> tuple[Family, str]:
    keys = shapes.keys()
    if any(k.startswith("conditioner.embedders.1.model.") for k in keys) or (
        "model.diffusion_model.label_emb.0.0.weight" in shapes
        and any(k.startswith("conditioner.") for k in keys)
    ):
        return "sdxl", _evidence("sdxl")
    if any(k.startswith("conditioner.embedders.0.model.") for k in keys):
        raise ModelMismatchError(msg(
            "model.sdxl_refiner", "{path} looks like an SDXL refiner (one OpenCLIP text encoder); it is not supported",
            path=path,
        ))
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return "sd2", _evidence("sd2")
    if any(k.startswith("cond_stage_model.transformer.") for k in keys):
        return "sd1", _evidence("sd1")
    for key, shape in shapes.items():
        if key.startswith("model.diffusion_model.") and key.endswith("attn2.to_k.weight"):
            family = _CROSS_ATTENTION_WIDTHS.get(shape[-1])
            if family:
                return family, msg("model.evidence_width", "{width}-wide U-Net cross-attention", width=shape[-1])
    foreign = describe_foreign_keys(path, shapes.keys(), metadata or {})
    if foreign is not None:
        raise foreign
    if shapes:
        raise ModelMismatchError(msg(
            "model.not_recognised", "{path} is not a recognised Stable Diffusion checkpoint (no model.diffusion_model/"
            "cond_stage_model/conditioner keys of SD 1.x, SD 2.x and SDXL; its first tensors: {first})",
            path=path, first=", ".join(sorted(shapes)[:3]),
        ))
    raise ModelMismatchError(msg(
        "model.not_recognised_empty", "{path} is not a recognised Stable Diffusion checkpoint (no model.diffusion_model/"
        "cond_stage_model/conditioner keys of SD 1.x, SD 2.x and SDXL; its first tensors: none)", path=path,
    ))


def _v_from_metadata(metadata: dict[str, str], shapes: dict[str, tuple[int, ...]]) -> bool | None:
    if "v_pred" in shapes:
        return True
    value = metadata.get("modelspec.prediction_type", "").lower()
    if value in ("v", "v_prediction", "v-prediction"):
        return True
    if value == "epsilon":
        return False
    return None


def _detect_folder(folder: Path) -> ModelInfo:
    index = check_diffusers_folder(folder)  # every part present and readable, or one error naming all
    if "StableDiffusionXL" in str(index.get("_class_name", "")) or "text_encoder_2" in index:
        family: Family = "sdxl"
    else:
        sd1 = read_diffusers_configs(folder, "sd1")
        is_sd2 = sd1.text_encoders[0].get("hidden_act") == "gelu" or bool(
            sd1.unet.get("use_linear_projection")
        )
        family = "sd2" if is_sd2 else "sd1"
    configs = read_diffusers_configs(folder, family)
    evidence = msg("model.evidence_folder", "its model_index.json and configs ({evidence})", evidence=_evidence(family))
    return ModelInfo(
        str(folder), "diffusers", family, configs.prediction_type == "v_prediction", configs, evidence
    )


def detect_model(path: str | Path) -> ModelInfo:
    """Recognise the family of a diffusers folder or a single file without building any model."""
    path = Path(path)
    if path.is_dir():
        return _detect_folder(path)
    if not path.is_file():
        raise FileNotFoundError(msg("model.not_found", "model not found: {path}", path=path))
    if not is_single_file(path):
        raise unknown_suffix_error(path)
    shapes, metadata = read_shapes(path)
    family, evidence = _family_from_keys(shapes, str(path), metadata)
    configs = (
        ArchConfigs.from_json(metadata[CONFIG_METADATA_KEY]) if CONFIG_METADATA_KEY in metadata else None
    )
    v_prediction = _v_from_metadata(metadata, shapes)
    if configs is not None:
        v_prediction = configs.prediction_type == "v_prediction"
    fmt = "ckpt" if path.suffix.lower() in PICKLE_SUFFIXES else "safetensors"
    return ModelInfo(str(path), fmt, family, v_prediction, configs, evidence)


def check_model_flags(info: ModelInfo, *, command: str, v2: bool, v_parameterization: bool) -> list[str]:
    """Raise ``ModelMismatchError`` when the training command or flags do not fit the model; return warnings."""
    sdxl_command = command in declaration("sdxl").commands.values()
    seen = {"path": info.path, "label": info.label, "evidence": info.evidence}
    if info.family == "sdxl" and not sdxl_command:
        raise ModelMismatchError(msg(
            "model.sdxl_needs_sdxl_command", "{path} looks like an {label} model ({evidence}); train it with the SDXL "
            "commands (sdxl_train_network, sdxl_train).", **seen,
        ))
    if info.family == "sd2" and sdxl_command:
        raise ModelMismatchError(msg(
            "model.sd2_not_sdxl", "{path} looks like an {label} model ({evidence}), not SDXL; use the SD 1.x/2.x "
            "commands (train_network, fine_tune) with --v2.", **seen,
        ))
    if info.family != "sdxl" and sdxl_command:
        raise ModelMismatchError(msg(
            "model.sd_not_sdxl", "{path} looks like an {label} model ({evidence}), not SDXL; use the SD 1.x/2.x "
            "commands (train_network, fine_tune).", **seen,
        ))
    if v2 and info.family in ("sd1", "sdxl"):
        raise ModelMismatchError(msg(
            "model.v2_given", "{path} looks like an {label} model ({evidence}), but --v2 was given; remove --v2.", **seen
        ))
    if info.family == "sd2" and not v2:
        raise ModelMismatchError(msg(
            "model.v2_missing", "{path} looks like an {label} model ({evidence}), but --v2 was not given; add --v2 (and "
            "--v_parameterization for 768-v models such as SD 2.x 768).", **seen,
        ))
    warnings = []
    if info.v_prediction is True and not v_parameterization:
        warnings.append(msg(
            "model.v_prediction_flag_missing",
            "{path} is marked as a v-prediction model but --v_parameterization was not given.", path=info.path,
        ))
    if info.v_prediction is False and v_parameterization:
        warnings.append(msg(
            "model.epsilon_with_v_flag",
            "{path} is marked as an epsilon-prediction model but --v_parameterization was given.", path=info.path,
        ))
    return warnings
