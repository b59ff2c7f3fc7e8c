"""Reading TOML the way sd-scripts does (the `toml` package), with the positions it does not give.

`load_toml` parses with `toml` (so a file sd-scripts accepts is accepted, and nothing else) and turns
a syntax error into a `TomlSyntaxError` with the real line and column: `toml` reports most errors at
column 1 of a line. The commonest one, a Windows path in a double-quoted string, where each
backslash starts an escape sequence, is found by scanning the strings and said with its fix.

`key_lines`: a light scan of the text that follows `[table]` and `[[array.of.tables]]` headers and
records the first line of each `key = ...`. Keys inside inline tables or multi-line values are not
found; callers then report the problem without a line number.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

import toml

from backend.messages import msg

tomllib: ModuleType | None
try:  # Python 3.11+; on 3.10 errors keep the column `toml` gives
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    tomllib = None

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


class TomlSyntaxError(ValueError):
    """A file that is not valid TOML: where (1-based line and column) and what, with the fix."""

    def __init__(self, line: int, column: int, detail: str) -> None:
        super().__init__(
            msg("options.toml.at", "line {line}, column {column}: {detail}", line=line, column=column, detail=detail)
        )
        self.line, self.column, self.detail = line, column, detail

    def located(self, label: str, what: str | None = None) -> str:
        """'run.toml:3: invalid TOML: ... (column 28)...', the form every TOML reader here reports;
        `what` (a message) replaces "invalid TOML"."""
        if what is None:
            return msg("options.toml.invalid", "{path}:{line}: invalid TOML: {detail}", path=label, line=self.line,
                       detail=self.detail)  # fmt: skip
        return f"{label}:{self.line}: {what}: {self.detail}"


def read_toml_text(path: str | Path) -> str:
    """A TOML file's text: UTF-8, with the BOM Windows editors may add dropped (`toml` would make it part
    of the first key). Not UTF-8: a `TomlSyntaxError` at the first bad byte. OSError as raised."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = len(raw[raw.rfind(b"\n", 0, error.start) + 1 : error.start].decode("utf-8", "replace")) + 1
        raise TomlSyntaxError(
            line, column, msg(
                "options.toml.not_utf8",
                "the file is not UTF-8 text (byte {byte} at column {column}); save it as UTF-8, in Notepad with Save As "
                "and Encoding UTF-8",
                byte=f"0x{raw[error.start]:02x}", column=column,
            ),
        ) from None


def load_toml(text: str) -> dict[str, Any]:
    """`toml.loads(text)`, with a `TomlSyntaxError` that says where and how to fix a broken file."""
    try:
        return toml.loads(text)
    except toml.TomlDecodeError as error:
        raise toml_syntax_error(text, error) from None


def toml_syntax_error(text: str, error: toml.TomlDecodeError) -> TomlSyntaxError:
    if "escape" in error.msg.lower() or "unbalanced quotes" in error.msg.lower():
        found = find_bad_escape(text) or _escaped_closing_quote(text, error.lineno)
        if found is not None:
            return found
    line, column = error.lineno, error.colno
    # `toml` puts most errors at column 1; Python's tomllib knows the column when it fails on the same line.
    located = _tomllib_position(text)
    if located is not None and located[0] == line:
        column = located[1]
    return TomlSyntaxError(line, column, toml_error_text(error.msg, column))


def toml_error_text(message: str, column: int) -> str:
    """The `toml` reader's message (English: the `toml` package's own words), with the fix for its one
    surprise (TOML 0.5 array rule)."""
    if "homogeneous" in message:
        return msg(
            "options.toml.mixed_list",
            "{message} (column {column}); every item of a list must have the same type: write 2.0, not 2, among "
            "decimals",
            message=message, column=column,
        )  # fmt: skip
    return msg("options.toml.reader_said", "{message} (column {column})", message=message, column=column)


def _tomllib_position(text: str) -> tuple[int, int] | None:
    if tomllib is None:
        return None
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(error))
        return (int(match.group(1)), int(match.group(2))) if match else None
    return None


# What may follow a backslash in a double-quoted string, as `toml` 0.10.2 reads it (it also takes \0).
_ESCAPES = frozenset('0bfnrt"\\')
_HEX = frozenset("0123456789abcdefABCDEF")
# Escapes nobody writes by accident in a path (\\, \", \u00e9), unlike the \t of C:\temp.
_INTENDED_ESCAPE = re.compile(r'\\\\|\\"|\\u[0-9a-fA-F]{4}')
# Control characters a valid escape gives, and the escape that wrote them.
_CONTROL_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\b": "\\b", "\f": "\\f", "\0": "\\0"}


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of `index`."""
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def find_bad_escape(text: str) -> TomlSyntaxError | None:
    """The first backslash in a double-quoted string that starts no valid escape, as an error with its
    position and the fix (single quotes or forward slashes), or None."""
    i, n = 0, len(text)
    while i < n:
        if text[i] == "#":
            i = _line_end(text, i)
        elif text.startswith("'''", i):
            end = text.find("'''", i + 3)
            i = n if end < 0 else end + 3
        elif text[i] == "'":
            end = text.find("'", i + 1)
            i = _line_end(text, i) if end < 0 else end + 1
        elif text[i] == '"':
            multiline = text.startswith('"""', i)
            start = i
            i, bad = _scan_basic(text, i + (3 if multiline else 1), multiline)
            if bad is not None:
                return _bad_escape_error(text, start, bad, multiline)
        else:
            i += 1
    return None


def _line_end(text: str, i: int) -> int:
    end = text.find("\n", i)
    return len(text) if end < 0 else end


def _scan_basic(text: str, i: int, multiline: bool) -> tuple[int, int | None]:
    """(index after the string, index of a bad backslash or None)."""
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            nxt = text[i + 1] if i + 1 < n else ""
            if nxt in _ESCAPES and nxt:
                i += 2
            elif nxt in ("u", "U"):
                digits = text[i + 2 : i + 2 + (4 if nxt == "u" else 8)]
                if len(digits) != (4 if nxt == "u" else 8) or not set(digits) <= _HEX:
                    return i, i
                i += 2 + len(digits)
            elif multiline and text[i + 1 : _line_end(text, i)].strip() == "":
                i += 1  # a line-ending backslash joins lines
            else:
                return i, i
        elif multiline and text.startswith('"""', i):
            return i + 3, None
        elif not multiline and c == '"':
            return i + 1, None
        elif not multiline and c == "\n":
            return i, None  # unterminated: `toml` reports that itself
        else:
            i += 1
    return n, None


def _bad_escape_error(text: str, start: int, bad: int, multiline: bool) -> TomlSyntaxError:
    line, column = _position(text, bad)
    end = _line_end(text, bad)
    single = forward = ""
    if multiline:
        shown = text[bad:end].strip()
    else:
        close = text.find('"', bad + 1, end)
        shown = text[start : end if close < 0 else close + 1]
        inner = shown[1:-1] if shown.endswith('"') and len(shown) > 1 else shown[1:]
        if not _INTENDED_ESCAPE.search(inner):  # else the string mixes in real escapes: no rewritten copy
            single, forward = f"'{inner}'", '"' + inner.replace("\\", "/") + '"'
    escape = text[bad : bad + 2]
    given = {"shown": shown, "column": column, "escape": escape}
    if single:
        return TomlSyntaxError(line, column, msg(
            "options.toml.bad_escape_path",
            "{shown} (column {column}): a backslash in a double-quoted TOML string starts an escape sequence, and "
            "{escape} is not one; write Windows paths in single quotes ({single}) or with forward slashes ({forward})",
            single=single, forward=forward, **given,
        ))  # fmt: skip
    return TomlSyntaxError(line, column, msg(
        "options.toml.bad_escape",
        "{shown} (column {column}): a backslash in a double-quoted TOML string starts an escape sequence, and "
        "{escape} is not one; write Windows paths in single quotes or with forward slashes",
        **given,
    ))  # fmt: skip


def _escaped_closing_quote(text: str, line: int) -> TomlSyntaxError | None:
    """'dir = "C:\\out\\"': the last backslash escapes the closing quote, so the string never ends."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    content = lines[line - 1].split(" #")[0].rstrip()
    if not content.endswith('\\"'):
        return None
    column = len(content) - 1
    return TomlSyntaxError(line, column, msg(
        "options.toml.escaped_quote",
        "{shown} (column {column}): the string does not end, because the backslash before the last quote escapes "
        "it; write Windows paths in single quotes ('C:\\out\\') or with forward slashes",
        shown=content.strip(), column=column,
    ))  # fmt: skip


def escaped_path_problem(value: str) -> str | None:
    """For a path read from TOML that holds a tab, newline, ...: a Windows path in a double-quoted string
    whose backslashes happened to form valid escapes (D:\\train reads as D:<tab>rain). Such a path is never
    meant and never found, so this says why, with the fix; None for a normal path."""
    found = [written for char, written in _CONTROL_ESCAPES.items() if char in value]
    if not found:
        return None
    written = "".join(_CONTROL_ESCAPES.get(char, char) for char in value)
    forward = written.replace("\\", "/")
    given = {"escapes": ", ".join(found), "single": f"'{written}'", "forward": f'"{forward}"'}
    if len(found) == 1:
        return msg(
            "options.toml.path_with_escape",
            "reads as a path with control characters: {escapes} in a double-quoted TOML string is an escape "
            "sequence; write Windows paths in single quotes ({single}) or with forward slashes ({forward})",
            **given,
        )  # fmt: skip
    return msg(
        "options.toml.path_with_escapes",
        "reads as a path with control characters: {escapes} in a double-quoted TOML string are escape sequences; "
        "write Windows paths in single quotes ({single}) or with forward slashes ({forward})",
        **given,
    )  # fmt: skip
