"""What a tool flag's declaration holds, and the rules a declaration must keep (checked when it is made,
so a broken declaration fails at import, in every test that touches the tool)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# What the value is. The parser takes: text kinds as str, int, float, bool as a switch
# (store_true), choice as one of `choices`, list as one or more values (nargs "+"), rows as a
# repeatable flag with `len(row)` values each (action "append"). The GUI shows file/folder/save with
# a browse button, bool as a checkbox, choice as a dropdown, everything else as a text box.
Kind = Literal["file", "folder", "save", "text", "int", "float", "bool", "choice", "list", "rows"]
ItemKind = Literal["text", "float"]
TEXT_KINDS = ("file", "folder", "save", "text")


class _Same:
    """`Flag.gui_default` when the GUI shows the tool's own default."""

    def __repr__(self) -> str:
        return "SAME"


SAME: Any = _Same()

# The `gui_why` of every caption extension the GUI pre-sets to .txt where the command keeps .caption.
TXT_CAPTIONS = ("every GUI form starts with .txt captions, as kohya_ss's GUI does and as the trainer's forms read "
                "them; the command keeps sd-scripts' default")


@dataclass(frozen=True)
class Range:
    """The values a number flag takes: at least `low` (above it with `low_open`), at most `high`.
    NaN and infinity are always refused (they compare false with everything: a threshold of NaN
    chooses by accident). The messages are `arg_checks.at_least` / `in_range` / `finite`."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False


FINITE = Range()  # any finite number


@dataclass(frozen=True)
class Flag:
    """One flag (or positional argument) of one tool."""

    name: str  # the flag without "--" (sd-scripts' name), or the positional's name
    kind: Kind
    default: Any = None  # the tool's default (None: not given); bool flags are False
    choices: tuple[str, ...] = ()  # kind "choice" only
    help: str = ""  # the `--help` text (English); the GUI's texts are in the catalogues
    required: bool = False  # a run needs a value: the GUI refuses an empty field, argparse a missing flag
    # "tool": the tool checks `required` itself, after parsing (its message shows an example and is
    # translated), so argparse does not.
    required_by: Literal["parser", "tool"] = "parser"
    positional: bool = False
    item: ItemKind = "text"  # kind "list": the type of each value
    row: tuple[str, ...] = ()  # kind "rows": the name of each value of a row (its metavar)
    metavar: str | None = None
    range: Range | None = None  # numbers (int, float, list of float): checked after parsing
    exclusive: str = ""  # flags with the same group name exclude each other (argparse refuses both)
    aliases: tuple[str, ...] = ()  # other spellings still taken, not shown (sd-scripts' caption_extention)
    suggestions: tuple[str, ...] = ()  # kind "text": values the GUI offers; any other is taken too
    gui: bool = True  # False: command line only (progress switches, compatibility no-ops, JSON output)
    gui_default: Any = SAME  # what the GUI form pre-sets when it differs from `default` ...
    gui_why: str = ""  # ... and why (required with gui_default)

    def __post_init__(self) -> None:
        if self.kind == "bool" and self.default is None:
            object.__setattr__(self, "default", False)  # a switch is off unless given
        problems = _problems(self)
        if problems:
            raise ValueError(f"flag {self.name!r}: " + "; ".join(problems))

    @property
    def form_default(self) -> Any:
        """What the GUI form pre-sets: the tool's default unless `gui_default` says otherwise."""
        return self.default if self.gui_default is SAME else self.gui_default

    @property
    def option(self) -> str:
        """How a user names it: `--name`, or `name` for a positional."""
        return self.name if self.positional else f"--{self.name}"


def _problems(flag: Flag) -> list[str]:
    found = []
    if flag.kind == "choice" and not flag.choices:
        found.append("a choice needs choices")
    if flag.choices and flag.kind != "choice":
        found.append("only kind 'choice' has choices")
    if flag.kind == "choice" and flag.default is not None and flag.default not in flag.choices:
        found.append(f"default {flag.default!r} is not one of the choices")
    if flag.kind == "bool" and (flag.default is not False or flag.positional):
        found.append("a bool flag is a switch: default False, never positional")
    if flag.kind == "rows" and not flag.row:
        found.append("kind 'rows' needs the names of a row's values (row=...)")
    if flag.row and flag.kind != "rows":
        found.append("only kind 'rows' has row")
    if flag.range is not None and not (flag.kind in ("int", "float") or flag.kind == "list" and flag.item == "float"):
        found.append("only numbers have a range")
    if flag.range is not None and flag.range.high is not None and flag.range.low is None:
        found.append("a range with a high bound needs a low bound")
    if flag.range is not None and flag.range.low_open and flag.range.high is None:
        found.append("low_open needs both bounds")
    if flag.suggestions and flag.kind != "text":
        found.append("only kind 'text' has suggestions (a choice takes nothing else)")
    if flag.positional and (flag.exclusive or flag.aliases or not flag.required):
        found.append("a positional is required and has no exclusive group or aliases")
    if flag.gui_default is not SAME and not flag.gui_why:
        found.append("gui_default needs gui_why: say why the GUI pre-sets another value than the tool")
    if flag.gui_default is not SAME and flag.gui_default == flag.default:
        found.append("gui_default equals the tool's default: leave it out")
    if flag.required_by == "tool" and not flag.required:
        found.append("required_by 'tool' is for required flags")
    return found


@dataclass(frozen=True)
class ToolFlags:
    """One tool's command line: `python -m backend.tools.<name>` with `flags` in this order (the
    GUI form's order too: positionals in the order they are given, then the options people change
    most)."""

    name: str
    description: str  # the first line of `--help`
    flags: tuple[Flag, ...]

    def __post_init__(self) -> None:
        names = [flag.name for flag in self.flags] + [alias for flag in self.flags for alias in flag.aliases]
        doubled = sorted({name for name in names if names.count(name) > 1})
        if doubled:
            raise ValueError(f"{self.name}: flags declared twice: {', '.join(doubled)}")

    @property
    def module(self) -> str:
        return f"backend.tools.{self.name}"

    @property
    def prog(self) -> str:
        return f"python -m {self.module}"
