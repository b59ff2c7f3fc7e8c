"""Resolve option names (and old aliases) and explain names that do not resolve.

An unknown name is one of: an option of another command, an sd-scripts flag (or, for train_video, a
finetrainers flag) this trainer does not implement, a flag finetrainers itself removed, or a typo.
Each gets its own message, because each needs a different fix.
"""

from __future__ import annotations

import difflib

from backend.messages import msg
from backend.options.finetrainers_flags import REMOVED, finetrainers_flags
from backend.options.refused import refusal
from backend.options.schema import VIDEO_COMMANDS, Option, accepted_options, all_options
from backend.options.sd_scripts_flags import sd_scripts_commands_for, sd_scripts_flags


def names_for(command: str) -> dict[str, Option]:
    """Every spelling `command` accepts (names and aliases) -> its option (ignored ones included)."""
    names: dict[str, Option] = {}
    for option in accepted_options(command).values():
        names[option.name] = option
        names.update(dict.fromkeys(option.aliases, option))
    return names


def _owner(name: str) -> Option | None:
    for option in all_options().values():
        if name == option.name or name in option.aliases:
            return option
    return None


def unknown_name_message(name: str, command: str, prefix: str = "") -> str:
    """Why `name` is not accepted by `command`; `prefix` is "--" for command-line flags."""
    flag = f'"{prefix}{name}"'
    owner = _owner(name)
    if owner is not None:
        refused_here = msg(
            "options.name.other_command", "{flag} is not accepted by {command}; only {commands} accept it",
            flag=flag, command=command, commands=", ".join(owner.commands),
        )
        return f"{refused_here}. {owner.other_commands_reason}" if owner.other_commands_reason else refused_here
    if command in VIDEO_COMMANDS:
        video = _finetrainers_message(name, command, flag, prefix)
        if video is not None:
            return video
    sd_commands = sd_scripts_commands_for(name)
    refused = refusal(name, flag) if command in sd_commands else None
    if refused is not None:
        return refused
    if command in sd_commands:
        return msg(
            "options.name.not_implemented", "{flag} is an sd-scripts option that this trainer does not implement; remove it",
            flag=flag,
        )
    if sd_commands:
        return msg(
            "options.name.not_implemented_other_command",
            "{flag} is an sd-scripts option of {commands} only (not {command}), and this trainer does not implement it; "
            "remove it",
            flag=flag, commands=", ".join(sd_commands), command=command,
        )  # fmt: skip
    close = difflib.get_close_matches(name, list(names_for(command)), n=1)
    if close:
        return msg(
            "options.name.unknown_close", 'unknown option {flag} (did you mean "{close}"?)',
            flag=flag, close=prefix + close[0],
        )
    close = difflib.get_close_matches(name, sorted(sd_scripts_flags(command)), n=1)
    if close:
        return msg(
            "options.name.unknown_close_sd_scripts",
            'unknown option {flag} (did you mean "{close}"? That sd-scripts option is not implemented by this trainer)',
            flag=flag, close=prefix + close[0],
        )
    return msg("options.name.unknown", "unknown option {flag}", flag=flag)


def _finetrainers_message(name: str, command: str, flag: str, prefix: str) -> str | None:
    """Why the video command refuses `name` as finetrainers would see it, or None for the caller's messages."""
    if name in finetrainers_flags():
        return msg(
            "options.name.finetrainers_not_implemented",
            "{flag} is a finetrainers option that this trainer does not implement; remove it",
            flag=flag,
        )
    if name in REMOVED:
        return msg(
            "options.name.finetrainers_removed",
            "{flag} is an option of finetrainers v0.0.x that finetrainers v0.1 removed; {command} takes the "
            "current options: use {replacement} instead",
            flag=flag, command=command, replacement=REMOVED[name],
        )  # fmt: skip
    if sd_scripts_commands_for(name) or difflib.get_close_matches(name, list(names_for(command)), n=1):
        return None  # the caller says these: an sd-scripts flag, or "did you mean" one of the command's options
    close = difflib.get_close_matches(name, sorted(finetrainers_flags() - set(names_for(command))), n=1)
    if close:
        return msg(
            "options.name.unknown_close_finetrainers",
            'unknown option {flag} (did you mean "{close}"? That finetrainers option is not implemented by this '
            "trainer)",
            flag=flag, close=prefix + close[0],
        )  # fmt: skip
    return msg("options.name.unknown", "unknown option {flag}", flag=flag)
