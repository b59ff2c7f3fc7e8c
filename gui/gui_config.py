"""GUI defaults from a TOML file: `kohya_gui.py --config FILE` (else `config.toml` in the repo root
when it exists, as kohya_ss does; `config.example.toml` documents the format).

    [launch]    # launch flags by name; a flag given on the command line wins
    language = "ja"
    server_port = 7861

    [defaults]  # initial values of the training forms, by option name (sd-scripts flag names)
    pretrained_model_name_or_path = "/models/sd_xl_base_1.0.safetensors"
    output_dir = "/work/loras"

A default is what a field shows when the page opens and what it goes back to when a preset does not
name it. Everything is checked when the GUI starts, so a typo is an error with the file, line and the
nearest known name instead of a value that silently never applies. Light: no gradio, no torch.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.options.schema import all_options
from backend.options.toml_lines import (
    TomlSyntaxError,
    escaped_path_problem,
    key_lines,
    load_toml,
    read_toml_text,
)
from backend.options.values import from_value
from gui.form_text import text_problem

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "config.toml"
SECTIONS = ("launch", "defaults")


class GuiConfigError(ValueError):
    """The GUI config cannot be used; `messages` lists every problem with its file and line."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


@dataclass
class GuiConfig:
    path: Path | None = None
    launch: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)  # option name -> value, schema-checked


def _nearest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def load_gui_config(path: str | Path, launch_types: Mapping[str, type]) -> GuiConfig:
    """Read and check `path`; `launch_types` maps each launch flag that may appear in [launch] to its type."""
    path = Path(path)
    try:
        text = read_toml_text(path)
        data = load_toml(text)
    except OSError as error:
        raise GuiConfigError([f"{path}: cannot read the GUI config: {error.strerror or error}"]) from None
    except TomlSyntaxError as error:
        raise GuiConfigError([error.located(str(path), "not valid TOML")]) from None
    lines = key_lines(text)
    problems: list[str] = []

    def where(table: tuple[str, ...], key: str) -> str:
        line = lines.get((table, key))
        return f"{path}:{line}" if line else str(path)

    config = GuiConfig(path=path)
    for section, body in data.items():
        if section not in SECTIONS or not isinstance(body, dict):
            problems.append(
                f"{where((), section)}: unknown table [{section}]; a GUI config has [launch] and [defaults]"
                + _nearest(section, list(SECTIONS))
            )
    for key, value in (data.get("launch") or {}).items():
        expected = launch_types.get(key)
        if expected is None:
            problems.append(
                f"{where(('launch',), key)}: [launch] has no key {key!r}" + _nearest(key, sorted(launch_types))
            )
        elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            problems.append(f"{where(('launch',), key)}: {key} must be a {expected.__name__}, got {value!r}")
        else:
            config.launch[key] = value
    options = all_options()
    for key, value in (data.get("defaults") or {}).items():
        option = options.get(key)
        if option is None:
            problems.append(
                f"{where(('defaults',), key)}: [defaults] names no training option {key!r}"
                + _nearest(key, sorted(options))
            )
            continue
        if option.secret:
            problems.append(f"{where(('defaults',), key)}: {key} is a secret; the GUI never stores secrets")
            continue
        # Before the value check, which refuses control characters in paths without knowing why.
        escaped = escaped_path_problem(value) if option.kind == "path" and isinstance(value, str) else None
        if escaped:
            problems.append(f"{where(('defaults',), key)}: {key} {escaped}")
            continue
        try:
            config.defaults[key] = from_value(option, value)
        except ValueError as error:
            problems.append(f"{where(('defaults',), key)}: {key} {error}")
            continue
        if unshowable := text_problem(config.defaults[key]):  # its form field would show something else
            problems.append(f"{where(('defaults',), key)}: {key} {unshowable}")
    if problems:
        raise GuiConfigError(problems)
    return config
