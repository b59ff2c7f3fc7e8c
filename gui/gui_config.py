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

from backend.messages import msg
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


def _nearest(name: str, known: list[str]) -> str | None:
    close = difflib.get_close_matches(name, known, n=1)
    return repr(close[0]) if close else None


def load_gui_config(path: str | Path, launch_types: Mapping[str, type]) -> GuiConfig:
    """Read and check `path`; `launch_types` maps each launch flag that may appear in [launch] to its type."""
    path = Path(path)
    try:
        text = read_toml_text(path)
        data = load_toml(text)
    except OSError as error:
        raise GuiConfigError([msg(
            "gui.config.unreadable", "{path}: cannot read the GUI config: {reason}", path=path,
            reason=str(error.strerror or error),
        )]) from None  # fmt: skip
    except TomlSyntaxError as error:
        raise GuiConfigError([msg(
            "gui.config.not_toml", "{path}:{line}: not valid TOML: {detail}", path=path, line=error.line,
            detail=error.detail,
        )]) from None  # fmt: skip
    lines = key_lines(text)
    problems: list[str] = []

    def where(table: tuple[str, ...], key: str) -> str:
        line = lines.get((table, key))
        return f"{path}:{line}" if line else str(path)

    config = GuiConfig(path=path)
    for section, body in data.items():
        if section not in SECTIONS or not isinstance(body, dict):
            fields = {"where": where((), section), "section": section, "near": _nearest(section, list(SECTIONS))}
            problems.append(
                msg(
                    "gui.config.unknown_table_near",
                    "{where}: unknown table [{section}]; a GUI config has [launch] and [defaults]; did you mean {near}?",
                    **fields,
                )
                if fields["near"]
                else msg(
                    "gui.config.unknown_table",
                    "{where}: unknown table [{section}]; a GUI config has [launch] and [defaults]", **fields
                )
            )  # fmt: skip
    for key, value in (data.get("launch") or {}).items():
        expected = launch_types.get(key)
        if expected is None:
            fields = {"where": where(("launch",), key), "key": repr(key), "near": _nearest(key, sorted(launch_types))}
            problems.append(
                msg("gui.config.unknown_launch_key_near", "{where}: [launch] has no key {key}; did you mean {near}?", **fields)
                if fields["near"]
                else msg("gui.config.unknown_launch_key", "{where}: [launch] has no key {key}", **fields)
            )
        elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            problems.append(msg(
                "gui.config.launch_type", "{where}: {key} must be a {type}, got {value}",
                where=where(("launch",), key), key=key, type=expected.__name__, value=repr(value),
            ))  # fmt: skip
        else:
            config.launch[key] = value
    options = all_options()
    for key, value in (data.get("defaults") or {}).items():
        option = options.get(key)
        at = where(("defaults",), key)
        if option is None:
            fields = {"where": at, "key": repr(key), "near": _nearest(key, sorted(options))}
            problems.append(
                msg(
                    "gui.config.unknown_default_near",
                    "{where}: [defaults] names no training option {key}; did you mean {near}?", **fields,
                )
                if fields["near"]
                else msg("gui.config.unknown_default", "{where}: [defaults] names no training option {key}", **fields)
            )  # fmt: skip
            continue
        if option.secret:
            problems.append(msg(
                "gui.config.secret", "{where}: {key} is a secret; the GUI never stores secrets", where=at, key=key
            ))  # fmt: skip
            continue
        # Before the value check, which refuses control characters in paths without knowing why.
        escaped = escaped_path_problem(value) if option.kind == "path" and isinstance(value, str) else None
        if escaped:
            problems.append(msg("gui.config.value_problem", "{where}: {key} {problem}", where=at, key=key, problem=escaped))
            continue
        try:
            config.defaults[key] = from_value(option, value)
        except ValueError as error:
            problems.append(msg("gui.config.value_problem", "{where}: {key} {problem}", where=at, key=key, problem=str(error)))
            continue
        if unshowable := text_problem(config.defaults[key]):  # its form field would show something else
            problems.append(msg("gui.config.value_problem", "{where}: {key} {problem}", where=at, key=key, problem=unshowable))
    if problems:
        raise GuiConfigError(problems)
    return config
