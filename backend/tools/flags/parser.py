"""The one reader that turns a tool's declaration (`spec.ToolFlags`) into its argparse parser, and
checks the declared ranges once the arguments are parsed.

Every tool covered builds its parser here (`build_parser`), so this is the only place their flags
are added; tests/tools/flags/test_tool_flags.py fails on an `add_argument(` elsewhere in those tools.
"""

from __future__ import annotations

import argparse
from typing import Any

from backend.tools.cli.arg_checks import at_least, finite, in_range
from backend.tools.flags.spec import Flag, ToolFlags


def _argparse_options(flag: Flag) -> dict[str, Any]:
    """The keyword arguments of `add_argument` for `flag` (help and names aside)."""
    if flag.kind == "bool":
        return {"action": "store_true"}
    options: dict[str, Any] = {}
    if not flag.positional:
        options["default"] = flag.default
        if flag.required and flag.required_by == "parser":
            options["required"] = True
    if flag.kind in ("int", "float"):
        options["type"] = int if flag.kind == "int" else float
    elif flag.kind == "choice":
        options["choices"] = flag.choices
    elif flag.kind == "list":
        options["nargs"] = "+"
        if flag.item == "float":
            options["type"] = float
    elif flag.kind == "rows":
        # A repeatable flag: each use adds one row. The default is a fresh empty list (argparse
        # copies it before appending), so "no rows" reads as [] rather than None.
        options.update(nargs=len(flag.row), action="append", default=list(flag.default or ()))
        options["metavar"] = flag.row
    if flag.metavar is not None:
        options["metavar"] = flag.metavar
    return options


def build_parser(tool: ToolFlags) -> argparse.ArgumentParser:
    """The parser of `tool`: its flags in declaration order, mutually exclusive groups as declared,
    old spellings taken but not shown."""
    parser = argparse.ArgumentParser(prog=tool.prog, description=tool.description)
    groups: dict[str, Any] = {}
    for flag in tool.flags:
        target: Any = parser
        if flag.exclusive:
            if flag.exclusive not in groups:
                groups[flag.exclusive] = parser.add_mutually_exclusive_group()
            target = groups[flag.exclusive]
        options = _argparse_options(flag)
        if flag.positional:
            target.add_argument(flag.name, help=flag.help or None, **options)
            continue
        target.add_argument(f"--{flag.name}", help=flag.help or None, **options)
        alias_options = {key: value for key, value in options.items() if key != "required"}
        for alias in flag.aliases:
            target.add_argument(f"--{alias}", dest=flag.name, help=argparse.SUPPRESS, **alias_options)
    return parser


def check_ranges(args: argparse.Namespace, tool: ToolFlags) -> None:
    """Refuse a parsed value outside its declared range (an `InputError` naming the flag)."""
    for flag in tool.flags:
        if flag.range is None:
            continue
        value = getattr(args, flag.name)
        for number in value if isinstance(value, list) else [value]:
            _check_number(number, flag)


def _check_number(value: float | None, flag: Flag) -> None:
    if value is None:
        return
    bounds = flag.range
    assert bounds is not None
    if bounds.low is not None and bounds.high is not None:
        in_range(value, flag.option, bounds.low, bounds.high, low_open=bounds.low_open)
        return
    finite(value, flag.option)
    if bounds.low is not None:
        at_least(value, flag.option, bounds.low)
