"""Training tab presets (LoRA and fine-tuning): JSON files holding the tab's option values plus its
GUI-only keys.

    {"model_type": "sdxl", "network_type": "LyCORIS/LoKr", "accelerate": {...}, "learning_rate": 0.0001, ...}

Shipped presets (`presets/<tab>/*.json`) are partial overlays without paths: loading one changes only
the keys it names. User presets (`user_presets/<tab>/*.json`) hold the whole tab. Loading checks
every key against the option schema and reports unknown keys and invalid values instead of
dropping them silently; saving never writes a secret and writes atomically.

Pure data: no gradio, no torch. Run snapshots written beside each run's outputs
(`gui.command_builder.write_snapshot`) load here too (their `command` key picks the model type).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.atomic import atomic_write_json
from backend.options.names import names_for, unknown_name_message
from backend.options.schema import all_options
from backend.options.values import from_value
from gui.command_builder import ACCELERATE_FLAGS
from gui.network_types import NETWORK_TYPES
from gui.training_kinds import LORA, MODEL_TYPES, TrainingKind

SHIPPED_DIR = LORA.shipped_presets
USER_DIR = LORA.user_presets
GUI_KEYS = ("model_type", "network_type", "accelerate")
_SAFE_NAME = re.compile(r"[^\w.-]+", re.UNICODE)


def command_for(model_type: str, kind: TrainingKind = LORA) -> str:
    return kind.command_for(model_type)


@dataclass
class Preset:
    values: dict[str, Any] = field(default_factory=dict)  # option name -> checked value
    gui: dict[str, Any] = field(default_factory=dict)  # GUI_KEYS that the file sets
    unknown: list[str] = field(default_factory=list)  # keys that are neither options nor GUI keys
    problems: list[str] = field(default_factory=list)  # invalid values, each naming its key


def preset_data(values: Mapping[str, Any], gui: Mapping[str, Any]) -> dict[str, Any]:
    """What a preset file holds: the GUI keys first, then option values; secrets and CLI-only left out."""
    options = all_options()
    data: dict[str, Any] = {key: gui[key] for key in GUI_KEYS if key in gui}
    for name, value in values.items():
        option = options.get(name)
        if option is not None and (option.secret or option.cli_only):
            continue
        data[name] = os.fspath(value) if isinstance(value, os.PathLike) else value
    return data


def save_preset(path: str | os.PathLike[str], values: Mapping[str, Any], gui: Mapping[str, Any]) -> Path:
    atomic_write_json(preset_data(values, gui), path)
    return Path(path)


def parse_preset(data: Mapping[str, Any], kind: TrainingKind = LORA) -> Preset:
    """Check a preset's keys and values against the schema of the command its model type trains."""
    if not isinstance(data, Mapping):
        return Preset(problems=["a preset must be a JSON object"])
    preset = Preset()
    model_type = data.get("model_type")
    if model_type is None and data.get("v2") is True:
        model_type = "sd2"
    elif model_type is None and data.get("command") is not None:  # a run snapshot
        model_type = kind.model_type_of(data["command"])
        if model_type is None:
            preset.problems.append(f'"command" {data["command"]!r} is not trained in this tab')
    if model_type is not None:
        if model_type in MODEL_TYPES:
            preset.gui["model_type"] = model_type
        else:
            preset.problems.append(f'"model_type" must be one of {", ".join(MODEL_TYPES)}, got {model_type!r}')
    command = kind.command_for(preset.gui.get("model_type", "sd1"))
    names = names_for(command)
    for key, raw in data.items():
        if key in ("model_type", "command") or (key == "v2" and raw in (True, None)):  # v2 = the model type
            continue
        if key == "network_type" and kind.networks:
            if raw in NETWORK_TYPES:
                preset.gui[key] = raw
            else:
                preset.problems.append(f'"network_type" must be one of {", ".join(NETWORK_TYPES)}, got {raw!r}')
        elif key == "accelerate":
            _accelerate(raw, preset)
        elif key not in names or names[key].cli_only:
            preset.unknown.append(unknown_name_message(key, command))
        elif raw is not None:
            option = names[key]
            try:
                preset.values[option.name] = from_value(option, list(raw) if isinstance(raw, tuple) else raw)
            except ValueError as error:
                preset.problems.append(f'"{key}" {error}')
    return preset


def _accelerate(raw: Any, preset: Preset) -> None:
    if not isinstance(raw, Mapping):
        preset.problems.append('"accelerate" must be an object of accelerate launch settings')
        return
    preset.gui["accelerate"] = {key: value for key, value in raw.items() if key in ACCELERATE_FLAGS}
    preset.unknown += [f'unknown accelerate setting "{key}"' for key in raw if key not in ACCELERATE_FLAGS]


def load_preset(path: str | os.PathLike[str], kind: TrainingKind = LORA) -> Preset:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return Preset(problems=[f"{path}: {error}"])
    return parse_preset(data, kind)


def user_preset_path(name: str, directory: Path = USER_DIR) -> Path:
    """`<user presets>/<name>.json` with a file-system-safe name (Japanese letters are kept)."""
    stem = _SAFE_NAME.sub("_", name.strip()).strip("._") or "preset"
    return directory / f"{stem.removesuffix('.json')}.json"


def list_presets(shipped: Path = SHIPPED_DIR, user: Path = USER_DIR) -> dict[str, Path]:
    """Display name -> file: shipped presets first (marked), then the user's, each sorted."""
    found = {f"[{path.stem}]": path for path in sorted(shipped.glob("*.json"))}
    found.update({path.stem: path for path in sorted(user.glob("*.json"))})
    return found
