"""argparse parsers built from the option schema.

The parser reports every bad flag and value of a command line at once, as one `OptionError`:
values that fail conversion are kept as `_Invalid` markers during parsing and collected
afterwards, and unknown flags come back from `parse_known_args` and are explained. What argparse
itself refuses (a flag without its value, a value given to an on/off flag) is said in our words, in
the process language, like every other problem.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from backend.messages import msg
from backend.options.errors import OptionError
from backend.options.names import unknown_name_message
from backend.options.schema import GROUPS, Option, accepted_options
from backend.options.values import LIST_KINDS, from_text, show, subject_problem

_EXPLICIT_ARGUMENT = re.compile(r"ignored explicit argument (?P<value>.*)")


class _Invalid:
    """A command-line token that failed conversion, with the reason."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _converter(option: Option) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return from_text(option, text)
        except ValueError as error:
            return _Invalid(str(error))

    convert.__name__ = option.kind  # argparse shows it in its own messages
    return convert


class OptionParser(argparse.ArgumentParser):
    """An ArgumentParser that raises `OptionError` with all problems instead of exiting."""

    def __init__(self, command: str, add_help: bool = True) -> None:
        # allow_abbrev=False: a typo such as --learning_rat must not silently match a prefix.
        # exit_on_error=False: argparse's refusals come back as ArgumentError, to be said in our words.
        super().__init__(
            prog=f"python -m backend.{command}", allow_abbrev=False, add_help=add_help, exit_on_error=False
        )
        self.command = command

    def error(self, message: str) -> NoReturn:
        """What argparse reports without an ArgumentError (none of our parsers' usual cases)."""
        raise OptionError(
            [msg("options.cli.unreadable", "the command line cannot be read: {detail}", detail=message)]
        )

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        try:
            return super().parse_known_args(args, namespace)
        except argparse.ArgumentError as error:
            raise OptionError([argument_problem(error)]) from None

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, problems = self.parse_collecting(args, namespace)
        if problems:
            raise OptionError(problems)
        return parsed

    def parse_collecting(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """The namespace and the problems with the command line (a malformed one still raises)."""
        parsed, extras = self.parse_known_args(args, namespace)
        return parsed, _extra_problems(extras, self.command) + _invalid_values(parsed, self.command)


def build_parser(command: str) -> OptionParser:
    """The parser for `python -m backend.<command>`, one argument group per GUI group."""
    parser = OptionParser(command)
    groups = {group: parser.add_argument_group(group) for group in GROUPS}
    for option in accepted_options(command).values():
        flags = [f"--{option.name}", *(f"--{alias}" for alias in option.aliases)]
        help_text = option.help.replace("%", "%%")  # argparse %-formats help strings
        group = groups[option.group]
        if option.kind == "bool":
            group.add_argument(*flags, dest=option.name, action="store_true", help=help_text)
            continue
        default = list(option.default) if isinstance(option.default, tuple) else option.default
        group.add_argument(
            *flags,
            dest=option.name,
            type=_converter(option),
            default=default,
            nargs="*" if option.kind in LIST_KINDS else None,
            metavar="{" + ",".join(map(str, option.choices)) + "}" if option.choices else option.kind.upper(),
            help=help_text,
        )
    return parser


def argument_problem(error: argparse.ArgumentError) -> str:
    """argparse's refusal of one flag, said as our other problems are (its own words are English only)."""
    flag = (error.argument_name or "").split("/")[0]  # "--caption_extension/--caption_extention"
    if error.message == "expected one argument":
        return msg(
            "options.cli.needs_value",
            '"{flag}" needs a value: write {flag} VALUE (a value that starts with "-" as {flag}=VALUE)',
            flag=flag,
        )
    explicit = _EXPLICIT_ARGUMENT.fullmatch(error.message)
    if explicit:
        return msg(
            "options.cli.flag_takes_no_value",
            '"{flag}" is an on/off flag and takes no value (got {value}): give {flag} alone to turn it on, '
            "leave it out to keep it off",
            flag=flag, value=explicit["value"],
        )  # fmt: skip
    return msg("options.cli.flag_unreadable", '"{flag}" cannot be read: {detail}', flag=flag, detail=error.message)


def _extra_problems(extras: list[str], command: str) -> list[str]:
    problems = []
    after_unknown_flag = False  # the values of an unknown flag are not reported separately
    for token in extras:
        if token.startswith("-") and not _is_number(token):
            name = token.lstrip("-").split("=", 1)[0]
            problems.append(unknown_name_message(name, command, prefix="--"))
            after_unknown_flag = True
        elif not after_unknown_flag and token.lower() in ("true", "false"):
            problems.append(msg(
                "options.cli.unexpected_boolean",
                "unexpected argument {token} (on/off flags take no value: give the flag to turn it on)",
                token=show(token),
            ))  # fmt: skip
        elif not after_unknown_flag:
            problems.append(msg("options.cli.unexpected", "unexpected argument {token}", token=show(token)))
    return problems


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _invalid_values(namespace: argparse.Namespace, command: str) -> list[str]:
    problems = []
    for option in accepted_options(command).values():
        value = getattr(namespace, option.name, None)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, _Invalid):
                problems.append(subject_problem(f"--{option.name}", item.problem))
    return problems
