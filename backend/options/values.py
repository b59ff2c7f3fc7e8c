"""Convert and check one option value, from a TOML/JSON value or from one command-line token.

Both the training options (`Option`) and the dataset-config keys (`DatasetKey`) go through these
functions, so a value is judged the same way wherever it is written. Problems are raised as
`ValueError` with a message that has no subject ("expects a number, got "abc" (a string)"), a whole
clause in the process language; the caller puts the option's name in front with `subject_problem`
(and the file and line before that).
"""

from __future__ import annotations

import difflib
import json
import math
import unicodedata
from typing import Any, Protocol

from backend.messages import msg, relocalized

LIST_KINDS = {"str_list": "str", "float_list": "float"}
# Text options that become (part of) a file or folder name, a file suffix or a Python name: like
# paths, one line of printable text. A line break there breaks file names, logs and the command
# lines that carry them. Free text (captions, comments, metadata descriptions) may hold anything.
ONE_LINE_TEXT = frozenset(
    {"output_name", "caption_extension", "log_prefix", "log_tracker_name", "network_module", "optimizer_type",
     "lr_scheduler_type"}
)  # fmt: skip
# Invisible characters that reorder how the text around them is displayed (bidirectional embeddings,
# overrides and isolates): a name holding them does not read as it is.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class Spec(Protocol):
    """What value checking needs to know; `Option` and `DatasetKey` both provide it."""

    name: str
    kind: str
    choices: tuple[Any, ...] | None
    minimum: float | None
    maximum: float | None


# Kinds beyond the option kinds, used by dataset-config keys.
#   resolution  an int (square) or [width, height]; normalised to a (width, height) tuple
#   float_pair  [low, high] numbers; normalised to a tuple
#   table       a TOML table / JSON object, passed through
def expected(kind: str) -> str:
    """What a value of `kind` must be, as a noun phrase ("a number") in the process language."""
    return {
        "bool": msg("options.kind.bool", "true or false"),
        "int": msg("options.kind.int", "an integer"),
        "float": msg("options.kind.float", "a number"),
        "int_or_float": msg("options.kind.int_or_float", "a number (an integer count or a decimal ratio)"),
        "str": msg("options.kind.str", "a string"),
        "path": msg("options.kind.path", "a path (a string)"),
        "str_list": msg("options.kind.str_list", "a list of strings"),
        "float_list": msg("options.kind.float_list", "a list of numbers"),
        "resolution": msg("options.kind.resolution", "an integer or [width, height]"),
        "float_pair": msg("options.kind.float_pair", "a list of two numbers [low, high]"),
        "table": msg("options.kind.table", "a table (key = value pairs)"),
    }[kind]


def subject_problem(subject: str, problem: str) -> str:
    """'"learning_rate" must be >= 0, got -1': a problem of this module under the name it belongs to."""
    return msg("options.subject_problem", '"{subject}" {problem}', subject=subject, problem=problem)


def show(value: Any) -> str:
    """A value as the user would write it (TOML and JSON agree on scalars and lists)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def type_name(value: Any) -> str:
    """What `value` is ("a string"), in the process language."""
    if isinstance(value, bool):
        return msg("options.type.bool", "a boolean")
    if isinstance(value, int):
        return msg("options.type.int", "an integer")
    if isinstance(value, float):
        return msg("options.type.float", "a decimal number")
    if isinstance(value, str):
        return msg("options.type.str", "a string")
    if isinstance(value, list):
        return msg("options.type.list", "a list")
    if isinstance(value, dict):
        return msg("options.type.table", "a table")
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_pair(value: Any, item_check: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(item_check(v) for v in value)


def _wrong_type(spec: Spec, value: Any) -> ValueError:
    given = {"expected": expected(spec.kind), "value": show(value), "type": type_name(value)}
    if isinstance(value, str) and spec.kind in ("int", "float", "int_or_float", "bool", "resolution"):
        message = msg("options.value.wrong_type_quoted", "expects {expected}, got {value} ({type}); remove the quotes", **given)
    elif isinstance(value, list) and spec.kind in ("bool", "int", "float", "int_or_float", "str", "path"):
        message = msg(
            "options.value.wrong_type_list", "expects {expected}, got {value} ({type}); give a single value, not a list",
            **given,
        )
    elif spec.kind in LIST_KINDS and not isinstance(value, list):
        message = msg(
            "options.value.wrong_type_single", "expects {expected}, got {value} ({type}); write it as a list: [{value}]",
            **given,
        )
    else:
        message = msg("options.value.wrong_type", "expects {expected}, got {value} ({type})", **given)
    return ValueError(message)


def _shape(spec: Spec, value: Any) -> Any:
    """Check the TOML/JSON type of `value` and convert it like argparse's `type=` would."""
    kind = spec.kind
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "int" and _is_int(value):
        return value
    if kind == "float" and _is_number(value):
        return float(value)
    if kind == "int_or_float" and _is_number(value):
        return value
    if kind in ("str", "path") and isinstance(value, str):
        return value
    if kind == "str_list" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if kind == "float_list" and isinstance(value, list) and all(_is_number(v) for v in value):
        return [float(v) for v in value]
    if kind == "resolution" and _is_int(value):
        return (value, value)
    if kind == "resolution" and _is_pair(value, _is_int):
        return (value[0], value[1])
    if kind == "float_pair" and _is_pair(value, _is_number):
        return (float(value[0]), float(value[1]))
    if kind == "table" and isinstance(value, dict):
        return value
    raise _wrong_type(spec, value)


def _check_limits(spec: Spec, value: Any) -> None:
    # Lists and pairs are checked element by element.
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(msg("options.value.not_finite", "must be a finite number, got {value}", value=show(item)))
        if (spec.minimum is not None and item < spec.minimum) or (
            spec.maximum is not None and item > spec.maximum
        ):
            raise ValueError(_out_of_range(spec, item))
        if spec.choices is not None and item not in spec.choices:
            raise ValueError(_with_reason(spec, _not_a_choice(spec.choices, item)))


def _not_a_choice(choices: tuple[Any, ...], value: Any) -> str:
    given = {"choices": ", ".join(str(c) for c in choices), "value": show(value)}
    folded = {str(c).lower(): c for c in choices}
    close = folded.get(str(value).lower())
    if close is None:
        close = next(iter(difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)), None)
    if close is not None:
        return msg(
            "options.value.not_a_choice_close", "must be one of {choices}; got {value} (did you mean {close}?)",
            close=show(close), **given,
        )
    return msg("options.value.not_a_choice", "must be one of {choices}; got {value}", **given)


def _out_of_range(spec: Spec, value: Any) -> str:
    given = {"minimum": _num(spec.minimum), "maximum": _num(spec.maximum), "value": show(value)}
    if spec.minimum is not None and spec.maximum is not None:
        problem = msg("options.value.not_between", "must be between {minimum} and {maximum}, got {value}", **given)
    elif spec.minimum is not None:
        problem = msg("options.value.below_minimum", "must be >= {minimum}, got {value}", **given)
    else:
        problem = msg("options.value.above_maximum", "must be <= {maximum}, got {value}", **given)
    return _with_reason(spec, problem)


def _with_reason(spec: Spec, problem: str) -> str:
    """`problem` with why this spec refuses what sd-scripts' parser would take (its `range_reason`)."""
    # The reason is a message made when the schema was imported: said again in the language of now.
    reason = relocalized(getattr(spec, "range_reason", ""))
    if not reason:
        return problem
    return msg("options.value.refused_because", "{problem} ({reason})", problem=problem, reason=reason)


def _num(x: float | None) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else str(x)


def control_character(text: str) -> str | None:
    """What the first control character in `text` is and where ("a line break (\\n) at character 3"),
    or None. Control characters: C0 (tab, line breaks, NUL ...), DEL, C1, the Unicode line and
    paragraph separators and the bidirectional controls."""
    for index, ch in enumerate(text, 1):
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI_CONTROLS:
            return msg("options.control.at", "{character} at character {index}", character=_control_name(ch), index=index)
    return None


def _control_name(ch: str) -> str:
    named = {
        "\n": msg("options.control.line_break", "a line break (\\n)"),
        "\r": msg("options.control.carriage_return", "a carriage return (\\r)"),
        "\t": msg("options.control.tab", "a tab (\\t)"),
        "\0": msg("options.control.nul", "a NUL character"),
        "\u2028": msg("options.control.line_separator", "a line separator (U+2028)"),
        "\u2029": msg("options.control.paragraph_separator", "a paragraph separator (U+2029)"),
    }
    return named.get(ch) or msg("options.control.other", "the control character U+{code}", code=f"{ord(ch):04X}")


def one_line_text(spec: Spec) -> bool:
    """Whether `spec` holds a path or a name (one line of printable text) rather than free text."""
    return LIST_KINDS.get(spec.kind, spec.kind) == "path" or spec.name in ONE_LINE_TEXT


def _check_text(spec: Spec, value: Any) -> None:
    if not one_line_text(spec):
        return
    for item in value if isinstance(value, list) else [value]:
        found = control_character(item) if isinstance(item, str) else None
        if found and LIST_KINDS.get(spec.kind, spec.kind) == "path":
            raise ValueError(msg(
                "options.value.path_control_character",
                "must be a path on one line without control characters; {text} has {found}: remove it",
                text=visible_text(item), found=found,
            ))  # fmt: skip
        if found:
            raise ValueError(msg(
                "options.value.name_control_character",
                "must be a name on one line without control characters; {text} has {found}: remove it",
                text=visible_text(item), found=found,
            ))  # fmt: skip


def visible_text(text: str) -> str:
    """`text` quoted, with every control character written as an escape, so the message reads as it is."""
    quoted = show(text)
    return "".join(
        f"\\u{ord(ch):04x}" if unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI_CONTROLS else ch
        for ch in quoted
    )


def from_value(spec: Spec, value: Any) -> Any:
    """A value read from TOML/JSON, converted and checked; raises ValueError."""
    converted = _shape(spec, value)
    _check_text(spec, converted)
    _check_limits(spec, converted)
    return converted


def from_text(spec: Spec, text: str) -> Any:
    """One command-line token (one element for list kinds), converted and checked."""
    kind = LIST_KINDS.get(spec.kind, spec.kind)
    try:
        if kind == "int":
            value: Any = int(text)
        elif kind == "float":
            value = float(text)
        elif kind == "int_or_float":
            value = int(text) if text.strip().lstrip("+-").isdigit() else float(text)
        else:
            value = text
    except ValueError:
        raise ValueError(
            msg("options.value.not_convertible", "expects {expected}, got {value}", expected=expected(kind), value=show(text))
        ) from None
    _check_text(spec, value)
    _check_limits(spec, value)
    return value


def check_default(spec: Spec) -> None:
    """Schema sanity check: a declared default must itself be a valid value (or None)."""
    default = getattr(spec, "default", None)
    if default is None or spec.kind == "bool":
        return
    try:
        from_value(spec, list(default) if isinstance(default, tuple) else default)
    except ValueError as error:
        raise ValueError(f"option {spec.name!r}: default {show(default)} {error}") from None
