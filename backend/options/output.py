"""Write the options of a run as a config TOML (`--output_config`, GUI exports, run snapshots)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from backend.atomic import atomic_write
from backend.options.schema import GROUPS, options_for


def non_default_options(namespace: argparse.Namespace, command: str) -> dict[str, Any]:
    """Options whose value differs from the default, in schema order.

    Secrets and command-line-only options (config_file, output_config) are never included, and
    neither are unset values (TOML has no null).
    """
    result: dict[str, Any] = {}
    for option in options_for(command).values():
        if option.secret or option.cli_only:
            continue
        value = getattr(namespace, option.name, None)
        default = list(option.default) if isinstance(option.default, tuple) else option.default
        if value is None or value == default or (value == [] and default is None):
            continue
        result[option.name] = value
    return result


def write_config(namespace: argparse.Namespace, command: str, path: str | Path) -> Path:
    """Write `non_default_options` as TOML, one table per GUI group, atomically; returns the path.

    The tables are for reading only: loading flattens them again. A reader never sees a
    half-written file: the text goes to a temporary file beside `path`, then replaces it.
    """
    path = Path(path)
    options = options_for(command)
    tables: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
    for name, value in non_default_options(namespace, command).items():
        tables[options[name].group][name] = value
    text = f"# Options for {command} that differ from their defaults.\n"
    text += "# Table names are only for reading; every key is an option name.\n"
    for group, values in tables.items():
        if values:
            text += f"\n[{group}]\n" + "".join(f"{name} = {_toml_value(v)}\n" for name, v in values.items())
    with atomic_write(path) as file:
        file.write(text)
    return path


def _toml_value(value: Any) -> str:
    """One option value as TOML. Not `toml.dumps`: toml 0.10.2 leaves backslashes unescaped,
    which turns Windows paths into invalid TOML. JSON's string escapes are all valid in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) to TOML")
