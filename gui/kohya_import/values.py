"""kohya_ss config values -> values of our option kinds, and raw trainer flags -> option values.

kohya_ss saves what its widgets held: numbers, or (older versions, text boxes) numbers as text
("0.0001", "10"), booleans, and free text for list options ("weight_decay=0.01 betas=0.9,0.999").
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from backend.messages import msg
from backend.options.schema import Option
from backend.options.values import from_text, from_value


def plain(value: Any) -> Any:
    """Numbers saved as text become numbers ("10" -> 10, "5e-5" -> 5e-05); anything else is kept."""
    if isinstance(value, str):
        text = value.strip()
        for convert in (int, float):
            try:
                return convert(text)
            except ValueError:
                pass
    return value


def is_empty(value: Any) -> bool:
    """What kohya_ss leaves out of the TOML: "", None, False and 0 (`value not in ["", False, None]`)."""
    value = plain(value)
    return value is None or value == "" or value is False or value == 0 or value == []


def coerce(option: Option, value: Any) -> Any:
    """`value` in the shape `option` expects, then checked against the schema; ValueError if it cannot be."""
    kind = option.kind
    if kind not in ("str", "path", "str_list"):  # a name such as "007" stays text
        value = plain(value)
    if kind == "bool" and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = bool(value)  # persistent_data_loader_workers was an int in some versions
    elif kind == "bool" and isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    elif kind == "int" and isinstance(value, float) and value.is_integer():
        value = int(value)  # Gradio numbers: 1.0 for 1
    elif kind in ("str", "path") and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # e.g. max_resolution 512
    elif kind in ("str", "path") and isinstance(value, str):
        # As the GUI's text fields read it, so the command-line and GUI imports give the same run.
        # sd-scripts joins prefix/suffix with a space and CLIP folds runs of spaces: nothing is lost.
        value = value.strip()
    elif kind == "str_list" and isinstance(value, str):
        value = value.replace('"', "").split()  # kohya_ss's own split of optimizer_args & co
    elif kind == "float_list" and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    return from_value(option, value)


@dataclass(frozen=True)
class Flag:
    """One flag of a raw command line: its name (no dashes), values, and the option it is (or None)."""

    name: str
    values: list[str]
    option: Option | None
    inline: bool  # written --name=value


def split_flags(text: str, resolve: Callable[[str], Option | None]) -> Iterator[Flag]:
    """The flags of `text` (shlex rules). An option's value count follows its kind, as argparse
    does: none for a bool, all following non-flags for a list, one otherwise. ValueError for text
    shlex cannot split, or a leading value that belongs to no flag."""
    tokens = shlex.split(text)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("--"):
            raise ValueError(msg("gui.kohya.value_without_flag", '"{token}" belongs to no --flag', token=token))
        name, inline, value = token[2:].partition("=")
        option = resolve(name)
        index += 1
        values = [value] if inline else []
        if not inline and (option is None or option.kind != "bool"):
            wanted = (
                1 if option is not None and option.kind not in ("str_list", "float_list") else len(tokens)
            )
            while index < len(tokens) and len(values) < wanted and not tokens[index].startswith("--"):
                values.append(tokens[index])
                index += 1
        yield Flag(name, values, option, bool(inline))


def flag_value(flag: Flag) -> Any:
    """The option value a flag sets; ValueError naming the problem as argparse would see it."""
    option = flag.option
    assert option is not None
    if option.kind == "bool":
        if flag.values:
            raise ValueError(msg("gui.kohya.flag_takes_no_value", "--{flag} takes no value", flag=flag.name))
        return True
    if option.kind in ("str_list", "float_list"):
        return [from_text(option, text) for text in flag.values]
    if not flag.values:
        raise ValueError(msg("gui.kohya.flag_needs_value", "--{flag} needs a value", flag=flag.name))
    return from_text(option, flag.values[0])
