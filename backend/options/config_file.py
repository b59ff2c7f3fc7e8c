"""Read a training `--config_file` TOML the sd-scripts way, but strictly.

As in sd-scripts, every top-level table is flattened and its name ignored (`[model]`, `[basic]`,
... are only for readability), and a path without the `.toml` suffix is accepted. Unlike
sd-scripts, which silently keeps unknown keys, every key must be an option of the command; each
problem is reported with the file and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from backend.messages import msg
from backend.options.names import names_for, unknown_name_message
from backend.options.toml_lines import (
    TablePath,
    TomlSyntaxError,
    escaped_path_problem,
    key_lines,
    load_toml,
    read_toml_text,
)
from backend.options.values import from_value, subject_problem


def find_config_file(value: str) -> Path | None:
    """The file `--config_file value` refers to: as given, else with `.toml` added (sd-scripts)."""
    path = Path(value)
    if path.is_file():
        return path
    with_suffix = Path(value + ".toml")
    if path.suffix != ".toml" and with_suffix.is_file():
        return with_suffix
    return None


def output_config_path(value: str) -> Path:
    """Where `--output_config --config_file value` writes: sd-scripts adds a missing `.toml`."""
    return Path(value if value.endswith(".toml") else value + ".toml")


def read_config_file(path: Path, command: str) -> tuple[dict[str, Any], list[str]]:
    """Converted values by option name, and the problems found (empty when the file is valid)."""
    label = str(path)
    try:
        text = read_toml_text(path)
        data = load_toml(text)
    except OSError as error:
        return {}, [msg("options.config.unreadable", "{path}: cannot read the config file: {error}", path=label, error=error)]
    except TomlSyntaxError as error:
        return {}, [error.located(label)]

    lines = key_lines(text)
    names = names_for(command)
    values: dict[str, Any] = {}
    first_seen: dict[str, str] = {}
    problems: list[str] = []
    for table, key, value in _flatten(data):
        line = lines.get((table, key))
        where = f"{label}:{line}" if line else label
        option = names.get(key)
        if option is None:
            problems.append(f"{where}: {unknown_name_message(key, command)}")
        elif option.cli_only:
            problems.append(msg(
                "options.config.command_line_only",
                '{where}: "{key}" works only on the command line (--{key}); remove it from the file',
                where=where, key=key,
            ))  # fmt: skip
        elif option.name in first_seen:
            problems.append(msg(
                "options.config.set_twice",
                '{where}: "{key}" is set twice (first at {first}); section names are ignored, so keep one',
                where=where, key=key, first=first_seen[option.name],
            ))  # fmt: skip
        else:
            first_seen[option.name] = where
            # Before the value check, which refuses control characters in paths without knowing why.
            escaped = escaped_path_problem(value) if option.kind == "path" and isinstance(value, str) else None
            if escaped:
                problems.append(f"{where}: {subject_problem(key, escaped)}")
                continue
            try:
                values[option.name] = from_value(option, value)
            except ValueError as error:
                problems.append(f"{where}: {subject_problem(key, str(error))}")
    return values, problems


def _flatten(data: dict[str, Any]) -> Iterator[tuple[TablePath, str, Any]]:
    """(table path, key, value) for each top-level key and each key of a top-level table."""
    for key, value in data.items():
        if isinstance(value, dict):
            for inner_key, inner_value in value.items():
                yield (key,), inner_key, inner_value
        else:
            yield (), key, value
