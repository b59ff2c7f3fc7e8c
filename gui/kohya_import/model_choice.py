"""Which of a command's model types an imported config trains, told by its model file (torch-free).

kohya_ss has one checkbox for FLUX.1 ("flux1_checkbox") where we offer dev and schnell apart, as sd-scripts
tells them: by the file (a dev transformer embeds the guidance scale). So the base model decides when it
is here: its header (a .safetensors file) or its configs (a diffusers folder), read through the families'
own detection (backend/families/*/detection.py) without loading a tensor. A file another family claims
(an SDXL checkpoint) or a FLUX.1 part on its own (the autoencoder) refuses the import, naming what the
file is. A model that is not here (a config from another machine, a hub name) or that cannot be read
without torch (a pickle) leaves the choice to its name. The choice and its reason go into the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from backend import families
from backend.families.declaration import FamilyDeclaration
from backend.families.detection import FolderConfigs, Recognised
from backend.messages import msg
from backend.models.configs import read_diffusers_configs
from backend.models.errors import ModelFileError, ModelMismatchError
from backend.models.file_checks import read_safetensors_header
from backend.models.folder_checks import check_diffusers_folder


class ModelChoiceError(ValueError):
    """The model file belongs to a family the config cannot train; the message says what it is."""


@dataclass(frozen=True)
class ModelChoice:
    family: str  # a declaration's name
    reason: str  # why, for the import report (the user's language)


def choose_model_type(
    path: str, candidates: Sequence[FamilyDeclaration], by_name: dict[str, str], checkbox: str
) -> ModelChoice:
    """Of `candidates` (the model types one command trains, the first the default), the one the model
    at `path` is; `by_name` maps a word in the model's name to a candidate's name (for a model that is
    not here). `checkbox` is the kohya_ss key that chose the command, for messages."""
    names = [d.name for d in candidates]
    path = str(path or "").strip()
    local = Path(path) if path else None
    try:
        found = recognise_model(local) if local is not None and local.exists() else None
    except (ModelFileError, OSError) as error:
        # A damaged or unreadable file: the name decides now, preflight will say what is wrong with it.
        return _by_name(path, candidates, by_name, msg(
            "gui.kohya.model_unreadable", "{path} could not be read ({error})", path=path, error=str(error),
        ))  # fmt: skip
    except ModelMismatchError as error:  # a part on its own, a model we know but refuse
        raise ModelChoiceError(msg(
            "gui.kohya.model_refused", "{checkbox} is on, but the base model cannot be trained: {error}",
            checkbox=checkbox, error=str(error),
        )) from None  # fmt: skip
    if found is None:
        if local is not None and local.exists():
            if local.is_file() and local.suffix.lower() != ".safetensors":
                why = msg("gui.kohya.model_not_read", "{path} is not a .safetensors file, whose header the import "
                          "reads", path=path)  # fmt: skip
            else:
                why = msg("gui.kohya.model_not_recognised", "{path} is not recognised as a model file", path=path)
            return _by_name(path, candidates, by_name, why)
        return _by_name(path, candidates, by_name, msg("gui.kohya.model_not_here", "{path} is not on this machine",
                                                      path=path or '""'))
    if found.family not in names:
        label = families.label(found.family)
        raise ModelChoiceError(msg(
            "gui.kohya.model_other_family",
            "{checkbox} is on, but {path} is an {label} model ({evidence}), which {command} does not train. Point "
            "pretrained_model_name_or_path at a {wanted} model, or import a config with {checkbox} off for {label}",
            checkbox=checkbox, path=path, label=label, evidence=found.evidence,
            command=candidates[0].commands["lora"], wanted=families.joint_label(candidates),
        ))  # fmt: skip
    return ModelChoice(found.family, msg(
        "gui.kohya.model_from_file", "{path} is {label}: {evidence}",
        path=path, label=families.label(found.family), evidence=found.evidence,
    ))  # fmt: skip


def recognise_model(path: Path) -> Recognised | None:
    """The family of a local model as the families' detection tells it (torch-free; the Quick LoRA page uses it
    too); None when it cannot be read here."""
    if path.is_dir():
        index = check_diffusers_folder(path)
        layout = families.of_pipeline_index(index)
        if layout.detection is None:
            return None
        read = read_diffusers_configs(path, layout.name)
        return layout.detection.from_folder(FolderConfigs(index, read.unet, tuple(read.text_encoders)))
    if path.suffix.lower() != ".safetensors":
        return None  # a pickle needs torch to read; the GUI never imports it
    shapes = read_safetensors_header(path).shapes()
    detections = list(dict.fromkeys(d.detection for d in families.DECLARATIONS if d.detection is not None))
    for detection in detections:
        found = detection.from_keys(shapes, str(path))
        if found is not None:
            return found
    for detection in detections:  # a part with a flag of its own (FLUX.1's ae, clip_l, t5xxl)
        part = detection.part_message(shapes, str(path))
        if part is not None:
            raise ModelMismatchError(part)
    return None


def _by_name(path: str, candidates: Sequence[FamilyDeclaration], by_name: dict[str, str], why: str) -> ModelChoice:
    stem = Path(path).name.lower() if path else ""
    for word, name in by_name.items():
        if word in stem:
            return ModelChoice(name, msg(
                "gui.kohya.model_by_name", '{why}, so its name decides: "{word}" -> {label}',
                why=why, word=word, label=families.label(name),
            ))  # fmt: skip
    default = candidates[0]
    return ModelChoice(default.name, msg(
        "gui.kohya.model_default", "{why}, and its name does not say {others}, so {label} (change the model type "
        "if it is not)",
        why=why, others=", ".join(f'"{word}"' for word in by_name), label=default.label,
    ))  # fmt: skip
