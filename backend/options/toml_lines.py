"""Line numbers of keys in a TOML file, which the `toml` package does not report.

A light scan of the text: it follows `[table]` and `[[array.of.tables]]` headers and records the
first line of each `key = ...`. Keys inside inline tables or multi-line values are not found;
callers then report the problem without a line number.
"""

from __future__ import annotations

import re

import toml

# A table path with array-of-tables indices resolved, e.g. ("datasets", 0, "subsets", 1).
TablePath = tuple[str | int, ...]

_HEADER = re.compile(r"""^\s*(\[\[?)\s*([A-Za-z0-9_.\-"' ]+?)\s*\]\]?\s*(#.*)?$""")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""")


def key_lines(text: str) -> dict[tuple[TablePath, str], int]:
    """(table path, key) -> 1-based line number of its first definition.

    The key "" maps to the line of the table's header, for problems about a whole table.
    """
    lines: dict[tuple[TablePath, str], int] = {}
    arrays: dict[TablePath, int] = {}  # array-of-tables path -> index of its last element
    table: TablePath = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            parts = [part.strip().strip("\"'") for part in header.group(2).split(".")]
            parent = _resolve(parts[:-1], arrays)
            lines.setdefault((parent, parts[-1]), number)  # the table as a key of its parent
            table = parent + (parts[-1],)
            if header.group(1) == "[[":
                arrays[table] = arrays.get(table, -1) + 1
                table += (arrays[table],)
            lines.setdefault((table, ""), number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((table, key.group(1).strip("\"'")), number)
    return lines


def _resolve(parts: list[str], arrays: dict[TablePath, int]) -> TablePath:
    """A dotted header prefix with each array-of-tables component pointing at its last element."""
    path: TablePath = ()
    for part in parts:
        path += (part,)
        if path in arrays:
            path += (arrays[path],)
    return path


def toml_error_text(error: toml.TomlDecodeError) -> str:
    """The `toml` reader's message, with the fix for its one surprise (TOML 0.5 array rule)."""
    text = f"{error.msg} (column {error.colno})"
    if "homogeneous" in error.msg:
        text += "; every item of a list must have the same type: write 2.0, not 2, among decimals"
    return text
