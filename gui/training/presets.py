"""Training tab presets (LoRA and fine-tuning): JSON files holding the tab's option values plus its
GUI-only keys.

    {"model_type": "sdxl", "network_type": "LyCORIS/LoKr", "accelerate": {...}, "learning_rate": 0.0001, ...}

Loading a preset gives a defined form: the tab's defaults plus what the preset holds (see
gui/training/preset_load.py). Shipped presets (`presets/<tab>/*.json`) are partial overlays without paths, so
loading one keeps the form's paths and output name; user presets (`user_presets/<tab>/*.json`) hold
the whole tab. Loading checks every key against the option schema: a file that is not a JSON object
or holds an invalid value is refused as a whole (`Preset.problems`, each with its line), unknown
keys are reported; nothing is dropped silently. Saving never writes a secret and writes atomically.

Pure data: no gradio, no torch. Run snapshots written beside each run's outputs
(`gui.training.command_builder.write_snapshot`) load here too (their `command` key picks the model type).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.atomic import atomic_write_json
from backend.messages import msg
from backend.options.names import names_for, unknown_name_message
from backend.options.schema import all_options
from backend.options.values import from_value, show, subject_problem, type_name
from gui.form_text import form_text_problems, text_problem
from gui.training.command_builder import ACCELERATE_FLAGS
from gui.training.network_types import NETWORK_TYPES
from gui.training.training_kinds import LORA, TrainingKind, kind_options

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
    # Why the file cannot be used (not JSON, not an object, invalid values), each naming its key and
    # line: a preset with problems is not loaded at all.
    problems: list[str] = field(default_factory=list)


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
    """Write the preset; ValueError (nothing written) for text a form field could not show back."""
    problems = form_text_problems(values) + form_text_problems(gui.get("accelerate") or {})
    if problems:
        raise ValueError("; ".join(problems))
    atomic_write_json(preset_data(values, gui), path)
    return Path(path)


def parse_preset(data: Mapping[str, Any], kind: TrainingKind = LORA, lines: Mapping[str, int] | None = None) -> Preset:
    """Check a preset's keys and values against the schema of the command its model type trains.

    `lines` (key -> line in the file) puts the line in front of each problem.
    """
    if not isinstance(data, Mapping):
        if isinstance(data, list):
            problem = msg(
                "gui.preset.holds_list", 'holds a list, not a JSON object of settings ({"learning_rate": 0.0001, ...})'
            )
        else:
            problem = msg(
                "gui.preset.holds_other",
                'holds {shape}, not a JSON object of settings ({"learning_rate": 0.0001, ...})',
                shape=type_name(data),
            )
        return Preset(problems=[problem])
    preset = Preset()

    def at(key: str, problem: str) -> str:
        """`problem` with the line of `key` in front, when known."""
        line = (lines or {}).get(key)
        return msg("gui.preset.at_line", "line {line}: {problem}", line=line, problem=problem) if line else problem

    model_type = data.get("model_type")
    if model_type is None:  # the options a model type implies say it ("v2": true: SD 2.x)
        model_type = kind.model_type_implied_by(data)
    if model_type is None and data.get("command") is not None:  # a run snapshot
        model_type = kind.model_type_of(data["command"], data)
        if model_type is None:
            preset.problems.append(at("command", msg(
                "gui.preset.command_other_tab", '"command" {command} is not trained in this tab',
                command=repr(data["command"]),
            )))  # fmt: skip
    if model_type is not None:
        if model_type in kind.model_type_names:
            preset.gui["model_type"] = model_type
        else:
            preset.problems.append(at("model_type", msg(
                "gui.preset.bad_model_type", '"model_type" must be one of {choices}, got {value}',
                choices=", ".join(kind.model_type_names), value=repr(model_type),
            )))  # fmt: skip
    command = kind.command_for(preset.gui.get("model_type"))
    names = names_for(command)
    limited = kind.choice_limits
    implied = kind.implied_values()  # "v2": true is the model type, not an option value to keep
    for key, raw in data.items():
        if key in ("model_type", "command") or (key in implied and (raw is None or raw in implied[key])):
            continue
        if key == "network_type" and kind.networks:
            if raw in NETWORK_TYPES:
                preset.gui[key] = raw
            else:
                preset.problems.append(at(key, msg(
                    "gui.preset.bad_network_type", '"network_type" must be one of {choices}, got {value}',
                    choices=", ".join(NETWORK_TYPES), value=repr(raw),
                )))  # fmt: skip
        elif key == "accelerate":
            _accelerate(raw, preset, lambda problem, key=key: at(key, problem))
        elif key not in names or names[key].cli_only:
            preset.unknown.append(unknown_name_message(key, command))
        elif raw is None:  # a field the user emptied (gui/training/schema_form.py): kept empty, not defaulted
            preset.values[names[key].name] = None
        else:
            option = names[key]
            if option.name in limited:  # a choice this tab's trainers refuse (e.g. a LoRA saved as diffusers)
                option = kind_options(kind)[option.name]
            try:
                preset.values[option.name] = from_value(option, list(raw) if isinstance(raw, tuple) else raw)
            except ValueError as error:
                preset.problems.append(at(key, subject_problem(key, str(error))))
                continue
            if unshowable := text_problem(preset.values[option.name]):  # the field would show something else
                del preset.values[option.name]
                preset.problems.append(at(key, subject_problem(key, unshowable)))
    return preset


def _accelerate(raw: Any, preset: Preset, located: Callable[[str], str] = str) -> None:
    """The "accelerate" table into `preset`; `located` puts the table's line in front of a problem."""
    if not isinstance(raw, Mapping):
        preset.problems.append(located(msg(
            "gui.preset.accelerate_not_object", '"accelerate" must be an object of accelerate launch settings, got {value}',
            value=show(raw),
        )))  # fmt: skip
        return
    settings = {key: value for key, value in raw.items() if key in ACCELERATE_FLAGS}
    for key, value in list(settings.items()):
        if unshowable := text_problem(value):  # left out: the field would show something else
            del settings[key]
            preset.problems.append(located(msg(
                "gui.preset.accelerate_unshowable", '"accelerate" setting "{key}" {problem}', key=key, problem=unshowable
            )))  # fmt: skip
    preset.gui["accelerate"] = settings
    preset.unknown += [
        msg("gui.preset.unknown_accelerate", 'unknown accelerate setting "{key}"', key=key)
        for key in raw
        if key not in ACCELERATE_FLAGS
    ]


def load_preset(path: str | os.PathLike[str], kind: TrainingKind = LORA) -> Preset:
    """The checked preset of the file at `path`; problems name the line (the caller names the file)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        return Preset(problems=[msg(
            "gui.preset.not_utf8", "is not UTF-8 text (byte {byte}); save it as UTF-8 JSON", byte=error.start
        )])  # fmt: skip
    except OSError as error:
        return Preset(problems=[msg("gui.preset.unreadable", "cannot be read: {reason}", reason=str(error.strerror or error))])
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        return Preset(problems=[msg(
            "gui.preset.not_json", "line {line}, column {column}: not valid JSON: {reason}",
            line=error.lineno, column=error.colno, reason=error.msg,
        )])  # fmt: skip
    return parse_preset(data, kind, key_lines(text))


_TOP_KEY = re.compile(r'^\s*[{,]?\s*"((?:[^"\\]|\\.)*)"\s*:', re.MULTILINE)


def key_lines(text: str) -> dict[str, int]:
    """Key -> the line it first appears on (for messages; nested keys may share names, first wins)."""
    found: dict[str, int] = {}
    for match in _TOP_KEY.finditer(text):
        found.setdefault(match.group(1), text.count("\n", 0, match.start(1)) + 1)
    return found


def user_preset_path(name: str, directory: Path = USER_DIR) -> Path:
    """`<user presets>/<name>.json` with a file-system-safe name (Japanese letters are kept)."""
    stem = _SAFE_NAME.sub("_", name.strip()).strip("._") or "preset"
    return directory / f"{stem.removesuffix('.json')}.json"


def list_presets(shipped: Path = SHIPPED_DIR, user: Path = USER_DIR) -> dict[str, Path]:
    """Display name -> file: shipped presets first (marked), then the user's, each sorted."""
    found = {f"[{path.stem}]": path for path in sorted(shipped.glob("*.json"))}
    found.update({path.stem: path for path in sorted(user.glob("*.json"))})
    return found
