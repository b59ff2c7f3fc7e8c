"""Family detection from keys and configs, and the check that the user's flags agree with the file.

Runs before anything is loaded into a model: single files are inspected through their header
(checked to be complete, see ``file_checks``) and diffusers folders through their JSON configs (every
part checked first, see ``folder_checks``). v-prediction cannot be seen in weights, so it is only known
from metadata (``modelspec.prediction_type``, our stored configs, a ``v_pred`` marker key) or a
folder's scheduler config. A file that is no base model of a supported family (a LoRA, an embedding,
a VAE, FLUX.1, ...) is said to be what it is (``file_kinds``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.families import DECLARATIONS, declaration, for_command, joint_label, of_pipeline_index
from backend.families.declaration import FamilyDeclaration
from backend.families.detection import Detection, FolderConfigs, Recognised, Shapes
from backend.messages import msg
from backend.models.configs import ArchConfigs, Family, read_diffusers_configs
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
        return declaration(self.family).label


def _detections() -> list[Detection]:
    """Every family package's detection once, in the declarations' order."""
    found: list[Detection] = []
    for decl in DECLARATIONS:
        if decl.detection is not None and decl.detection not in found:
            found.append(decl.detection)
    return found


def _by_cross_attention_width(shapes: Shapes) -> Recognised | None:
    """A U-Net alone (original layout): its cross-attention width is its family's context width."""
    widths: dict[int, str] = {}
    for decl in DECLARATIONS:
        if decl.denoiser_folder == "unet":  # attn2 keys are a U-Net's; a transformer's width says nothing here
            widths.setdefault(decl.cross_attention_width, decl.name)
    for key, shape in shapes.items():
        if key.startswith("model.diffusion_model.") and key.endswith("attn2.to_k.weight"):
            family = widths.get(shape[-1])
            if family:
                return Recognised(family, msg("model.evidence_width", "{width}-wide U-Net cross-attention",
                                              width=shape[-1]))
    return None


def _family_from_keys(shapes: Shapes, path: str, metadata: dict[str, str] | None = None) -> Recognised:
    for detection in _detections():
        found = detection.from_keys(shapes, path)
        if found is not None:
            return found
    found = _by_cross_attention_width(shapes)
    if found is not None:
        return found
    for detection in _detections():  # a part some family takes by a flag of its own (FLUX.1's --ae)
        part = detection.part_message(shapes, path)
        if part is not None:
            raise ModelMismatchError(part)
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
    layout = of_pipeline_index(index)
    read = read_diffusers_configs(folder, layout.name)
    assert layout.detection is not None  # a family with folders says how to tell them
    found = layout.detection.from_folder(FolderConfigs(index, read.unet, tuple(read.text_encoders)))
    configs = read if found.family == layout.name else read_diffusers_configs(folder, found.family)
    evidence = msg("model.evidence_folder", "its model_index.json and configs ({evidence})", evidence=found.evidence)
    return ModelInfo(
        str(folder), "diffusers", found.family, configs.prediction_type == "v_prediction", configs, evidence
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
    found = _family_from_keys(shapes, str(path), metadata)
    configs = (
        ArchConfigs.from_json(metadata[CONFIG_METADATA_KEY]) if CONFIG_METADATA_KEY in metadata else None
    )
    v_prediction = _v_from_metadata(metadata, shapes)
    if configs is not None:
        v_prediction = configs.prediction_type == "v_prediction"
    fmt = "ckpt" if path.suffix.lower() in PICKLE_SUFFIXES else "safetensors"
    return ModelInfo(str(path), fmt, found.family, v_prediction, configs, found.evidence)


def _command_error(family: FamilyDeclaration, command: str, seen: dict[str, str]) -> ModelMismatchError:
    """The command does not train the model's family: name the commands that do (and the flags its model
    type implies: SD 2.x's --v2)."""
    trains = for_command(command)
    sharing = [d for d in DECLARATIONS if d.commands == family.commands]
    own = {"other": joint_label(trains) if trains else command, "family": joint_label(sharing),
           "commands": ", ".join(family.commands.values())}
    # A switch as itself (--v2), a valued option with its value (--model_name wan).
    flags = [f"--{option}" if value is True else f"--{option} {value}" for option, value in family.implied_options.items()
             if value]
    if flags:
        return ModelMismatchError(msg(
            "model.command_not_for_family_flags", "{path} looks like an {label} model ({evidence}), not {other}; use "
            "the {family} commands ({commands}) with {flags}.", flags=" ".join(flags), **seen, **own,
        ))
    return ModelMismatchError(msg(
        "model.command_not_for_family", "{path} looks like an {label} model ({evidence}), not {other}; use the "
        "{family} commands ({commands}).", **seen, **own,
    ))


def _option_error(family: FamilyDeclaration, option: str, wanted: bool, seen: dict[str, str]) -> ModelMismatchError:
    """A flag the model type implies (sd-scripts has no model-type flag: SD 2.x is --v2) was not given as it."""
    if not wanted:
        return ModelMismatchError(msg(
            "model.v2_given", "{path} looks like an {label} model ({evidence}), but --{option} was given; remove "
            "--{option}.", option=option, **seen,
        ))
    if family.v_prediction is not None:
        return ModelMismatchError(msg(
            "model.v2_missing", "{path} looks like an {label} model ({evidence}), but --{option} was not given; add "
            "--{option} (and --v_parameterization for {resolution}-v models such as {label} {resolution}).",
            option=option, resolution=family.v_prediction.native_resolution, **seen,
        ))
    return ModelMismatchError(msg(
        "model.option_missing", "{path} looks like an {label} model ({evidence}), but --{option} was not given; add "
        "--{option}.", option=option, **seen,
    ))


def _value_error(option: str, wanted: Any, given: Any, seen: dict[str, str]) -> ModelMismatchError:
    """A valued flag naming another model type than the file is (sd-scripts' --model_type flux|chroma)."""
    return ModelMismatchError(msg(
        "model.option_contradicts", "{path} looks like an {label} model ({evidence}), but --{option} is {given} "
        "(given or its default); use --{option} {wanted} for it.", option=option, given=given, wanted=wanted, **seen,
    ))


def check_model_flags(info: ModelInfo, *, command: str, v2: bool, v_parameterization: bool,
                      options: Mapping[str, Any] | None = None) -> list[str]:
    """Raise ``ModelMismatchError`` when the training command or flags do not fit the model; return warnings.

    The command must be one that trains the model's family, and the flags its model type implies
    (`FamilyDeclaration.implied_options`) must be given as it implies them: the boolean ones (`v2`) always,
    valued ones (FLUX.1/Chroma's `model_type`) when the command has them (`options`: the run's values)."""
    family = declaration(info.family)
    seen = {"path": info.path, "label": info.label, "evidence": info.evidence}
    if command not in family.commands.values():
        raise _command_error(family, command, seen)
    given = {"v2": v2, "v_parameterization": v_parameterization}  # the model-type flags sd-scripts has
    for option, wanted in family.implied_options.items():
        if option in given and bool(given[option]) != bool(wanted):
            raise _option_error(family, option, bool(wanted), seen)
        value = (options or {}).get(option)
        if option not in given and value is not None and value != wanted:
            raise _value_error(option, wanted, value, seen)
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
